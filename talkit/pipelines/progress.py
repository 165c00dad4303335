"""Progress of a run as it happens (a live bar) and at its end (a summary table).

The pipeline reports events to a :class:`RunObserver`; the CLI passes a
:class:`RichProgress`, tests pass their own observers (e.g. to kill a worker once the
first video is done). Keeping display out of the pipeline also keeps the pipeline quiet
when it runs inside other programs.
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from talkit.pipelines.failures import Failure
from talkit.pipelines.report import RunReport, VideoDone


class RunObserver:
    """Hooks the pipeline calls; every method is optional (no-ops here)."""

    report: RunReport | None = None  # the final report, set by on_finish

    def on_start(self, report: RunReport, todo: int) -> None:
        """Planning is done: ``todo`` videos will be extracted."""

    def on_workers(self, num_workers: int, num_nodes: int) -> None:
        """Workers were placed on the cluster."""

    def on_worker_ready(self, name: str, node_id: str, pid: int) -> None:
        """A worker (Ray actor ``name``) loaded its models on ``node_id``, process ``pid``."""

    def on_note(self, message: str) -> None:
        """Something the user should know that does not stop the run (one line)."""

    def on_video(self, done: VideoDone) -> None:
        """One video was extracted (its arrays go into the next commit)."""

    def on_failure(self, failure: Failure) -> None:
        """One video failed for good."""

    def on_retry(self, video_id: str, reason: str) -> None:
        """A worker died with this video; it goes back in the queue."""

    def on_commit(self, snapshot_id: str | None, videos: int) -> None:
        """A commit landed with ``videos`` new videos."""

    def on_done_elsewhere(self, video_ids: list[str]) -> None:
        """Queued videos that another run committed meanwhile: not extracted here."""

    def on_interrupt(self) -> None:
        """A Ctrl-C asked the run to stop: nothing more is handed out."""

    def on_finish(self, report: RunReport) -> None:
        """The run is over (also after an abort); keeps the report."""
        self.report = report


class QuietProgress(RunObserver):
    """``--quiet``: no progress bar, but warnings still reach the user."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)

    def on_note(self, message: str) -> None:
        self.console.print(f"[yellow]warning:[/] {escape(message)}", highlight=False)


class _SnippetRate(ProgressColumn):
    def __init__(self, started: list[float]) -> None:
        super().__init__()
        self._started = started

    def render(self, task: Task) -> Text:
        elapsed = time.perf_counter() - self._started[0]
        snippets = task.fields.get("snippets", 0)
        rate = snippets / elapsed if elapsed > 0 else 0.0
        return Text(f"{rate:7.1f} snippets/s", style="cyan")


class _Failures(ProgressColumn):
    def render(self, task: Task) -> Text:
        n = task.fields.get("failed", 0)
        return Text(f"{n} failed", style="bold red" if n else "dim")


class RichProgress(RunObserver):
    """A live bar: videos done/total, snippets/s, ETA and failures."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self._started = [time.perf_counter()]
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("videos"),
            _SnippetRate(self._started),
            _Failures(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self._task: int | None = None
        self._snippets = 0
        self._failed = 0

    def on_start(self, report: RunReport, todo: int) -> None:
        self._started[0] = time.perf_counter()
        if report.skipped:
            self.console.print(
                f"resuming: {len(report.skipped)} of {report.planned} videos are already in "
                f"the store with the same source and spec; extracting {todo}",
                highlight=False,
            )
        if report.missing:
            self.console.print(
                f"[yellow]{len(report.missing)} video(s) named in the annotations have no "
                f"file[/] (listed in the report): {escape(', '.join(report.missing[:5]))}"
                + (" ..." if len(report.missing) > 5 else ""),
                highlight=False,
            )
        self._progress.start()
        self._task = self._progress.add_task(
            f"extract {escape(report.dataset)}", total=todo, snippets=0, failed=0
        )

    def on_workers(self, num_workers: int, num_nodes: int) -> None:
        self.console.print(f"{num_workers} worker(s) on {num_nodes} Ray node(s)")

    def on_note(self, message: str) -> None:
        self.console.print(f"[yellow]warning:[/] {escape(message)}", highlight=False)

    def on_video(self, done: VideoDone) -> None:
        self._snippets += done.snippets
        if self._task is not None:
            self._progress.update(self._task, advance=1, snippets=self._snippets)

    def on_failure(self, failure: Failure) -> None:
        self._failed += 1
        if self._task is not None:
            self._progress.update(self._task, advance=1, failed=self._failed)
        self._progress.console.print(
            f"[red]failed[/] {escape(f'{failure.video_id}: {failure.error_type}: {failure.message}')}",
            highlight=False,
            soft_wrap=True,
        )

    def on_retry(self, video_id: str, reason: str) -> None:
        self._progress.console.print(
            f"[yellow]retrying[/] {escape(f'{video_id}: {reason}')}", highlight=False
        )

    def on_done_elsewhere(self, video_ids: list[str]) -> None:
        if self._task is not None:
            self._progress.update(self._task, advance=len(video_ids))

    def on_interrupt(self) -> None:
        self._progress.console.print(
            "[yellow]interrupted:[/] stopping; committing the finished videos "
            "(Ctrl-C again to stop at once without committing them)",
            highlight=False,
        )

    def on_finish(self, report: RunReport) -> None:
        super().on_finish(report)
        self._progress.stop()


def summary_table(report: RunReport) -> Table:
    """Videos, snippets, time, throughput, failures and the store version written."""
    table = Table(
        title=f"talkit extract: {escape(report.dataset)} -> {escape(report.store)}",
        show_header=False,
    )
    table.add_column("", style="bold")
    table.add_column("")
    extracted = len(report.extracted)
    table.add_row("feature sets", escape(", ".join(report.feature_sets)))
    table.add_row(
        "videos",
        f"{report.planned} planned: {extracted} extracted, {len(report.skipped)} already done, "
        f"{len(report.failures)} failed"
        + (f"; {len(report.missing)} named but missing" if report.missing else ""),
    )
    if report.concurrent:
        table.add_row(
            "concurrent",
            f"{len(report.concurrent)} committed meanwhile by another run from the same files "
            "(not written again)",
        )
    if report.clashes:
        table.add_row(
            "clashes",
            f"[red]{len(report.clashes)} committed meanwhile by another run from other files; "
            "theirs kept (see the report)[/]",
        )
    if report.uncommitted:
        table.add_row(
            "not committed",
            f"[red]{len(report.uncommitted)} finished videos (stopped at once)[/]",
        )
    table.add_row("snippets", f"{report.snippets}")
    table.add_row(
        "time",
        f"{report.elapsed_s:.1f} s in all"
        + (f", {report.extract_s:.1f} s extracting" if report.extract_s else ""),
    )
    span = report.extract_s or report.elapsed_s
    vrate = extracted / span if span > 0 else 0.0
    table.add_row("throughput", f"{report.snippets_per_s:.1f} snippets/s, {vrate:.2f} videos/s")
    if report.ray:
        table.add_row(
            "ray",
            f"{report.ray.get('workers')} workers on {report.ray.get('nodes')} node(s); "
            f"Ray start-up {report.ray.get('startup_s', 0.0):.1f} s, models loaded "
            f"{report.ray.get('workers_ready_s', 0.0):.1f} s",
        )
        threads = report.ray.get("torch_threads")
        table.add_row(
            "workers",
            f"{threads} torch thread(s) each"
            + (f", batch {report.batch_size}" if report.batch_size is not None else "")
            + (f" ({report.config.get('batch_size')})" if report.config.get("batch_size") == "auto"
               else ""),
        )  # fmt: skip
    if report.thread_changes:
        moves = [
            f"{worker.rsplit('-', 1)[-1]}: {c['from']}->{c['to']} at {c.get('at_s', 0.0):.1f} s"
            for worker, changes in report.thread_changes.items()
            for c in changes
        ]
        table.add_row(
            "threads",
            "idle workers' cores given to busy ones: "
            + ", ".join(moves[:4])
            + (", ..." if len(moves) > 4 else ""),
        )
    if report.peak_rss:
        peaks = sorted(report.peak_rss.values(), reverse=True)
        shown = ", ".join(_gib(p) for p in peaks[:4]) + (", ..." if len(peaks) > 4 else "")
        table.add_row("peak memory", f"{_gib(peaks[0])} largest worker (each: {shown})")
    table.add_row(
        "store version",
        report.version or "unchanged (nothing new to commit)",
    )
    if report.aborted:
        table.add_row("stopped", f"[red]{escape(report.aborted)}[/]")
    return table


def _gib(nbytes: int) -> str:
    return f"{nbytes / 2**30:.2f} GiB"


def failures_table(failures: list[Failure], limit: int = 20) -> Table:
    """The failed videos with their error type and message."""
    table = Table(title=f"{len(failures)} failed video(s)", title_style="bold red")
    table.add_column("video")
    table.add_column("error")
    table.add_column("message", overflow="fold")
    for f in failures[:limit]:
        kind = f" ({f.kind})" if f.kind else ""
        table.add_row(escape(f.video_id), escape(f"{f.error_type}{kind}"), escape(f.message))
    if len(failures) > limit:
        table.add_row("...", "", f"{len(failures) - limit} more in the JSON report")
    return table


def print_summary(report: RunReport, console: Console, report_path: str | None = None) -> None:
    """The end-of-run summary (and failures, and where the report is)."""
    console.print(summary_table(report))
    if report.failures:
        console.print(failures_table(report.failures))
    if report_path:
        console.print(f"report: {escape(report_path)}", highlight=False)
