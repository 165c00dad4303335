"""The record of one extraction run: what was done, where, and what failed.

The same record goes two places. Each commit the run makes carries its slice in the
commit metadata under ``talkit_run`` (run id, videos extracted in that commit, failures so
far), so the store's history says which run wrote which video. The whole record is written
as a JSON report (``--report``), rewritten after every commit so that even a killed run
leaves an up-to-date file behind.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from talkit.pipelines.failures import Failure

REPORT_FORMAT = "talkit-extract-report"
REPORT_VERSION = 1
RUN_KEY = "talkit_run"


def new_run_id() -> str:
    """Sortable and unique: UTC time plus random hex."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


@dataclass(frozen=True)
class VideoDone:
    """One video extracted by this run, and where it ran."""

    video_id: str
    path: str
    snippets: int
    seconds: float
    node_id: str
    worker_pid: int
    attempts: int = 1
    frames_decoded: int | None = None  # by its one decode, for all the run's backbones


@dataclass
class RunReport:
    """Everything a user (or a test) needs to know about one run."""

    run_id: str
    store: str
    dataset: str
    feature_sets: list[str]
    command: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    finished_at: str | None = None
    planned: int = 0
    skipped: list[str] = field(default_factory=list)
    redo: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extracted: list[VideoDone] = field(default_factory=list)
    # Extracted here too, but committed first by another run from the same source (the
    # same result): not written again.
    concurrent: list[str] = field(default_factory=list)
    # Committed meanwhile by another run from a *different* source: theirs was kept.
    clashes: list[dict[str, Any]] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    commits: list[str] = field(default_factory=list)
    ray: dict[str, Any] = field(default_factory=dict)
    elapsed_s: float = 0.0
    extract_s: float = 0.0  # from the first worker ready to the last result
    aborted: str | None = None  # why the run stopped early ("interrupted" for Ctrl-C)
    stopped_by: str | None = None  # interrupt, max-failures, systematic, setup, error
    uncommitted: list[str] = field(default_factory=list)  # finished, lost to a hard stop
    batch_size: int | None = None  # snippets per forward the workers used (auto: resolved)
    peak_rss: dict[str, int] = field(default_factory=dict)  # worker -> peak resident bytes
    # worker -> torch thread changes at the end of the run (from, to, at_s, video, ...)
    thread_changes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def note_peak_rss(self, worker: str, nbytes: int) -> None:
        """Keep the highest peak resident memory a worker reported."""
        self.peak_rss[worker] = max(int(nbytes), self.peak_rss.get(worker, 0))

    def note_thread_change(self, worker: str, change: dict[str, Any], *, since: float) -> None:
        """Record a worker's change of torch threads; ``at_s`` counts from ``since`` (epoch)."""
        entry = {k: v for k, v in change.items() if k != "time"}
        if "time" in change:
            entry["at_s"] = round(float(change["time"]) - since, 3)
        self.thread_changes.setdefault(worker, []).append(entry)

    @property
    def max_peak_rss(self) -> int | None:
        """The largest peak resident memory of any worker (bytes), None before any result."""
        return max(self.peak_rss.values()) if self.peak_rss else None

    @property
    def snippets(self) -> int:
        return sum(v.snippets for v in self.extracted)

    @property
    def version(self) -> str | None:
        """The last snapshot this run committed (None if it committed nothing)."""
        return self.commits[-1] if self.commits else None

    @property
    def snippets_per_s(self) -> float:
        """Throughput of the extraction itself (Ray and model start-up excluded)."""
        span = self.extract_s or self.elapsed_s
        return self.snippets / span if span > 0 else 0.0

    @property
    def ok(self) -> bool:
        return not self.failures and not self.clashes and self.aborted is None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(
            format=REPORT_FORMAT,
            version=REPORT_VERSION,
            store_version=self.version,
            totals={
                "planned": self.planned,
                "extracted": len(self.extracted),
                "skipped": len(self.skipped),
                "concurrent": len(self.concurrent),
                "clashes": len(self.clashes),
                "failed": len(self.failures),
                "missing": len(self.missing),
                "snippets": self.snippets,
                "frames_decoded": sum(v.frames_decoded or 0 for v in self.extracted),
                "snippets_per_s": self.snippets_per_s,
                "max_worker_peak_rss": self.max_peak_rss,
            },
        )
        return data

    def write(self, path: Path) -> None:
        """Write atomically (temp file + rename): a reader never sees half a report."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".report-", dir=path.parent)
        with os.fdopen(fd, "w") as fh:
            json.dump(self.to_dict(), fh, indent=1)
            fh.write("\n")
        os.replace(tmp, path)


def commit_record(
    report: RunReport, part: int, extracted: list[str], *, final: bool
) -> dict[str, Any]:
    """The ``talkit_run`` commit metadata for one commit of a run."""
    return {
        RUN_KEY: {
            "run_id": report.run_id,
            "part": part,
            "final": final,
            "feature_sets": report.feature_sets,
            "extracted": extracted,
            "skipped": len(report.skipped),
            "failed": [f.to_dict() for f in report.failures],
            "missing": len(report.missing),
            "command": report.command,
        }
    }


def read_report(path: str | Path) -> dict[str, Any]:
    """Load a JSON report written by :meth:`RunReport.write`."""
    return json.loads(Path(path).read_text())
