"""`talkit eval`: score any ActivityNet-format detections file against a ground truth.

    talkit eval DETECTIONS.json --gt GT_FILE [--subset test] [--preset thumos14|activitynet]
        [--exclude-videos ...] [--ambiguous FILE] [--json] [--plots DIR] [--out REPORT.json]

The report records which GT file, subset, counts and options produced the numbers, because
the field reports numbers against several different THUMOS14 ground truths.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from talkit.errors import InputError

if TYPE_CHECKING:  # evaluation imports NumPy: loaded when `talkit eval` runs, not for --help
    from talkit.wtal_heads.evaluation import EvalResult


class Preset(StrEnum):
    auto = "auto"
    thumos14 = "thumos14"
    activitynet = "activitynet"
    hacs = "hacs"


class UnknownVideoHandling(StrEnum):
    fp = "fp"
    drop = "drop"
    error = "error"


def _split_list(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for v in values or []:
        out.extend(x.strip() for x in v.split(",") if x.strip())
    return out


def _exclusions(values: list[str] | None) -> list[str]:
    from talkit.wtal_heads.evaluation import THUMOS14_BAD_VIDEOS

    aliases = {"thumos14": THUMOS14_BAD_VIDEOS, "thumos14-bad": THUMOS14_BAD_VIDEOS}
    out: list[str] = []
    for v in _split_list(values):
        out.extend(aliases.get(v.lower(), (v,)))
    return list(dict.fromkeys(out))


def _thresholds(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(
            f"--thresholds {text!r} is not a comma-separated list of numbers",
            hint="e.g. 0.3,0.5,0.7",
        ) from None


def _likely_subset(dataset: Any, detection_videos: Any) -> str:
    """The subset the detections are most likely for: the one holding most of their videos,
    else the subset whose role is test (THUMOS14's test, ActivityNet's validation)."""
    counts = dataset.subset_counts()
    hits = {s: 0 for s in counts}
    for vid in detection_videos:
        video = dataset.videos.get(vid)
        if video is not None:
            hits[video.subset] += 1
    best = max(hits, key=lambda s: hits[s])
    if hits[best] > 0:
        return best
    for role in ("test", "val"):
        for s in counts:
            if dataset.canonical_split(s) == role and counts[s]["instances"] > 0:
                return s
    return next(iter(counts))


def _pick_subset(
    dataset: Any, subset: str | None, gt_path: Path, detection_videos: Any = ()
) -> tuple[Any, str | None]:
    counts = dataset.subset_counts()
    listing = ", ".join(f"{s} ({c['videos']} videos)" for s, c in counts.items())
    if subset is None:
        if len(counts) > 1:
            likely = _likely_subset(dataset, detection_videos)
            raise InputError(
                f"{gt_path} holds several subsets: {listing}; --subset says which one the "
                "detections are for",
                hint=f"e.g. --subset {likely}",
            )
        return dataset, next(iter(counts), None)
    chosen = dataset.subset(subset)
    if not chosen.videos:
        raise InputError(f"{gt_path} has no video in subset {subset!r}", hint=f"subsets: {listing}")
    return chosen, subset


def _auto_preset(dataset: Any) -> str:
    """The tIoU thresholds the ground truth's own dataset is scored with.

    The convention the annotation file records or its layout implies
    (``Dataset.eval_preset``: THUMOS14 ids, per-class text files, talkit's synthetic
    data -> thumos14; ActivityNet -> activitynet; HACS -> hacs); failing that, thumos14
    for a set named thumos or of 20 classes, hacs for one named hacs, else activitynet.
    """
    if dataset.eval_preset:
        return str(dataset.eval_preset)
    name = dataset.name.lower()
    if "thumos" in name or len(dataset.classes) == 20:
        return "thumos14"
    return "hacs" if "hacs" in name else "activitynet"


def _warn(console: Console, result: EvalResult, subset: str | None) -> None:
    acc = result.accounting
    where = f"subset {subset!r} of the GT" if subset else "the GT"
    if "videos_not_in_gt" in acc:
        a = acc["videos_not_in_gt"]
        what = {
            "fp": "scored as false positives (as the reference evaluator does)",
            "drop": "not scored (--unknown-videos drop)",
        }.get(a["handling"], "")
        console.print(
            f"[yellow]warning:[/] {a['predictions']} detections in {a['videos']} videos not in "
            f"{escape(where)} ({escape(', '.join(a['examples'][:3]))}"
            f"{', ...' if a['videos'] > 3 else ''}): {what}. "
            "Use --unknown-videos fp|drop|error to choose.",
            highlight=False,
            soft_wrap=True,
        )
    if "labels_without_gt" in acc:
        labels = acc["labels_without_gt"]
        console.print(
            f"[yellow]warning:[/] {sum(labels.values())} detections carry {len(labels)} labels "
            f"with no instance in {escape(where)} ({escape(', '.join(list(labels)[:3]))}); "
            "they cannot change any AP",
            highlight=False,
            soft_wrap=True,
        )
    if "excluded_videos" in acc:
        a = acc["excluded_videos"]
        console.print(
            f"excluded {len(a['videos'])} videos: {a['predictions']} detections not scored",
            highlight=False,
        )
    if "ambiguous" in acc:
        a = acc["ambiguous"]
        console.print(
            f"ambiguous intervals: {a['intervals']}; {a['predictions_dropped']} overlapping detections dropped",
            highlight=False,
        )


def _print_table(console: Console, result: EvalResult, report: dict[str, Any]) -> None:
    gt = report["gt"]
    console.print(
        f"[bold]GT[/] {escape(gt['file'])} subset={escape(str(gt['subset']))}: {gt['videos']} videos, "
        f"{gt['instances']} instances, {gt['classes']} classes",
        highlight=False,
        soft_wrap=True,
    )
    det = report["detections"]
    console.print(
        f"[bold]detections[/] {escape(det['file'])}: {det['predictions']} in {det['videos']} videos, "
        f"{report['accounting']['predictions_scored']} scored",
        highlight=False,
        soft_wrap=True,
    )
    table = Table(
        title=f"AP (%) per class, preset {result.options['threshold_preset'] or 'custom'}"
    )
    table.add_column("class", no_wrap=True)
    table.add_column("GT", justify="right")
    table.add_column("pred", justify="right")
    for t in result.thresholds:
        table.add_column(f"{t:g}", justify="right", min_width=6, no_wrap=True)
    for i, c in enumerate(result.classes):
        table.add_row(
            escape(c),
            str(result.npos[i]),
            str(result.num_predictions[i]),
            *(f"{100 * x:.2f}" for x in result.ap[:, i]),
        )
    table.add_row(
        "[bold]mAP[/]", "", "", *(f"[bold]{100 * m:.2f}[/]" for m in result.map), end_section=True
    )
    console.print(table)
    for name, value in result.averages.items():
        console.print(f"average mAP {name}: [bold]{100 * value:.2f}[/]", highlight=False)


def _write_plots(
    result: EvalResult, dataset: Any, detections: Any, out_dir: Path, n_videos: int
) -> int:
    from talkit.wtal_heads.evaluation.plots import (
        plot_map_by_threshold,
        plot_pr_curves,
        plot_video_timeline,
        safe_filename,
    )

    count = 0
    plot_map_by_threshold(result, out_dir / "map_by_threshold.png")
    count += 1
    preferred = (0.3, 0.5, 0.7) if min(result.thresholds) < 0.5 else (0.5, 0.75, 0.95)
    chosen = [t for t in preferred if min(abs(t - x) for x in result.thresholds) < 1e-9]
    chosen = chosen or list(result.thresholds[:3])
    for c in result.classes:
        plot_pr_curves(result, c, out_dir / "pr" / f"{safe_filename(c)}.png", thresholds=chosen)
        count += 1
    videos = sorted(dataset.videos, key=lambda v: (-len(dataset.videos[v].annotations), v))
    for vid in videos[:n_videos]:
        plot_video_timeline(
            vid,
            dataset.videos[vid].annotations,
            detections.for_video(vid),
            out_dir / "timelines" / f"{safe_filename(vid)}.png",
        )
        count += 1
    return count


def register(app: typer.Typer) -> None:
    """Add ``eval`` to the root ``talkit`` app."""

    @app.command("eval")
    def eval_cmd(
        detections_file: Path = typer.Argument(
            ...,
            metavar="DETECTIONS.json",
            help="ActivityNet result JSON: {results: {video: [{label, score, segment}]}}.",
        ),
        gt: Path = typer.Option(
            ..., "--gt", help="Ground truth: any annotation format talkit reads."
        ),
        subset: str | None = typer.Option(
            None, "--subset", help="GT subset to score (as written, e.g. test, or train/val/test)."
        ),
        preset: Preset = typer.Option(
            Preset.auto,
            "--preset",
            help="tIoU thresholds: thumos14 (0.1..0.9; averages 0.1:0.7, 0.1:0.5, 0.1:0.9), "
            "activitynet/hacs (0.5:0.05:0.95). auto: the GT's own convention (thumos14 for "
            "THUMOS14 and talkit's synthetic data, activitynet for ActivityNet, hacs for HACS).",
        ),
        thresholds: str | None = typer.Option(
            None,
            "--thresholds",
            help="Explicit comma-separated tIoU thresholds (overrides --preset).",
        ),
        exclude_videos: list[str] | None = typer.Option(
            None,
            "--exclude-videos",
            help="Video ids to leave out (GT and detections), comma-separated or repeated; "
            "'thumos14' means video_test_0000270, _0001292, _0001496.",
        ),
        ambiguous: Path | None = typer.Option(
            None,
            "--ambiguous",
            help="THUMOS14 Ambiguous_test.txt: drop detections overlapping its intervals.",
        ),
        unknown_videos: UnknownVideoHandling = typer.Option(
            UnknownVideoHandling.fp,
            "--unknown-videos",
            help="Detections in videos outside the GT subset: fp (reference behaviour), drop, error.",
        ),
        as_json: bool = typer.Option(
            False, "--json", help="Print the JSON report instead of tables."
        ),
        plots: Path | None = typer.Option(
            None, "--plots", help="Write PNG plots into this directory."
        ),
        plot_videos: int = typer.Option(
            10, "--plot-videos", help="How many per-video timelines --plots draws."
        ),
        out: Path | None = typer.Option(
            None, "--out", help="Also write the JSON report to this file."
        ),
    ) -> None:
        """Detection mAP of DETECTIONS.json against a ground truth, ActivityNet semantics."""
        from talkit import __version__
        from talkit.datasets import load_ambiguous, load_annotations
        from talkit.wtal_heads.evaluation import THRESHOLD_PRESETS, evaluate
        from talkit.wtal_heads.evaluation.detections import read_detections

        err = Console(stderr=True)
        dets = read_detections(detections_file)
        dataset, subset_name = _pick_subset(load_annotations(gt), subset, gt, dets.videos)
        thr = _thresholds(thresholds)
        preset_name = _auto_preset(dataset) if preset == Preset.auto else preset.value
        amb = load_ambiguous(ambiguous) if ambiguous is not None else None
        excluded = _exclusions(exclude_videos)
        result = evaluate(
            dataset,
            dets,
            thresholds=thr if thr is not None else preset_name,
            averages=THRESHOLD_PRESETS[preset_name].averages if thr is None else None,
            exclude_videos=excluded,
            ambiguous=amb,
            unknown_videos=unknown_videos.value,
        )
        report = result.to_dict()
        report["talkit_version"] = __version__
        report["gt"] = {
            "file": str(gt),
            "format": dataset.source_format,
            "subset": subset_name,
            **result.gt_summary,
            "excluded_videos": [v for v in excluded if v in dataset.videos],
        }
        report["detections"] = {
            "file": str(detections_file),
            "predictions": len(dets),
            "videos": len(dets.videos),
        }
        report["options"]["ambiguous_file"] = str(ambiguous) if ambiguous is not None else None
        _warn(err, result, subset_name)
        if plots is not None:
            n = _write_plots(result, dataset, dets, plots, plot_videos)
            report["plots"] = {"dir": str(plots), "files": n}
            err.print(f"wrote {n} plots to {escape(str(plots))}", highlight=False)
        text = json.dumps(report, indent=2)
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text + "\n")
        if as_json:
            typer.echo(text)
        else:
            console = Console()
            wanted = 30 + 14 + 9 * len(result.thresholds)
            if console.width < wanted:
                console = Console(width=wanted)
            _print_table(console, result, report)
            if out is not None:
                console.print(f"report: {escape(str(out))}", highlight=False)
