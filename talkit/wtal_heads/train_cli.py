"""`talkit train` and `talkit predict`: WS-TAL heads on a feature store.

    talkit train --config configs/train/lgbm_thumos14.yaml --store feats.store \\
        --annotations gt.json --out runs/lgbm [--iterations 300] [--set model.params.cas_dim=512]
    talkit predict --run runs/lgbm --split test
    talkit ensemble runs/lgbm_csn runs/lgbm_slowfast --out runs/ens [--mode merge|average]
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from talkit.cli_options import command_line
from talkit.errors import Interrupted, TalkitError


def _overrides(
    sets: list[str] | None, shorthands: dict[str, tuple[str, Any]]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The dotted overrides, and the command-line text behind each (for error messages).

    ``shorthands`` maps a dotted key to (option, value), e.g. ``{"train.iterations":
    ("--iterations", 0)}``; they win over ``--set`` of the same key.
    """
    from talkit.wtal_heads.config import parse_override

    out: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for text in sets or []:
        key, value = parse_override(text)
        out[key] = value
        sources[key] = f"--set {text}"
    for key, (option, value) in shorthands.items():
        if value is not None:
            out[key] = value
            sources[key] = f"{option} {value}"
    return out, sources


def print_report(report: dict[str, Any], console: Console) -> None:
    """The mAP table of a run's report, with the whole-video baseline beside it, and its
    warnings (e.g. why a run gave no detection)."""
    result = report["result"]
    gt = result["gt"]
    table = Table(
        title=f"{escape(report['split'])} split: {gt['videos']} videos, {gt['instances']} instances, "
        f"{gt['classes']} classes",
        caption="baseline: one whole-video detection per predicted class",
        box=None,
        padding=(0, 0, 0, 1),
        pad_edge=False,
    )
    table.add_column("tIoU", no_wrap=True)
    for t in result["mAP"]:
        table.add_column(t, justify="right", no_wrap=True)
    table.add_row("mAP (%)", *[f"{100 * v:.2f}" for v in result["mAP"].values()])
    base = report["baseline_whole_video"]["mAP"]
    table.add_row("baseline (%)", *[f"{100 * base[t]:.2f}" for t in result["mAP"]])
    console.print(table)
    for name, value in result["average_mAP"].items():
        b = report["baseline_whole_video"]["average_mAP"].get(name, 0.0)
        console.print(f"average mAP {name}: [bold]{100 * value:.2f}[/] (baseline {100 * b:.2f})")
    for warning in report.get("warnings", []):
        console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)


def training_interrupted(run_dir: Path) -> Interrupted:
    """What a Ctrl-C during ``talkit train`` kept (``last.pt`` and its iteration), and how
    to go on: the same command with ``--resume``."""
    from talkit.wtal_heads.rundir import load_checkpoint_file

    saved = []
    for path in sorted(run_dir.glob("**/checkpoints/last.pt")):
        try:
            iteration = load_checkpoint_file(path).get("iteration")
        except TalkitError:  # a second Ctrl-C while it was written: the old one stays
            iteration = None
        saved.append(f"{path} (iteration {iteration if iteration is not None else '?'})")
    command = command_line()
    if "--resume" not in command:
        command.append("--resume")
    if not saved:
        return Interrupted(
            f"interrupted before the first training iteration; nothing was saved in {run_dir}",
            hint="run the same command again",
        )
    return Interrupted(
        f"interrupted: training stopped; its state is saved in {', '.join(saved)}",
        hint=f"resume with: {shlex.join(command)}",
    )


def register(app: typer.Typer) -> None:
    """Add ``train`` and ``predict`` to the root ``talkit`` app."""

    @app.command("train")
    def train_cmd(
        config: str = typer.Option(
            ..., "--config", "-c", help="YAML preset path or name, e.g. lgbm_thumos14."
        ),
        store: str = typer.Option(..., "--store", help="Feature store path or URL."),
        annotations: Path = typer.Option(
            ..., "--annotations", help="Ground-truth annotation file."
        ),
        out: Path | None = typer.Option(
            None, "--out", help="Run directory (default runs/<config name>)."
        ),
        allow_missing: bool = typer.Option(
            False,
            "--allow-missing",
            help="Train on the videos both the store and the annotations have.",
        ),
        resume: bool = typer.Option(
            False, "--resume", help="Continue the run in --out from its last checkpoint."
        ),
        iterations: int | None = typer.Option(
            None, "--iterations", help="Override train.iterations."
        ),
        batch_size: int | None = typer.Option(
            None, "--batch-size", help="Override train.batch_size."
        ),
        lr: float | None = typer.Option(None, "--lr", help="Override optim.lr."),
        seed: int | None = typer.Option(None, "--seed", help="Override train.seed."),
        device: str | None = typer.Option(None, "--device", help="cpu, cuda, cuda:N or auto."),
        eval_every: int | None = typer.Option(
            None, "--eval-every", help="Override train.eval_every."
        ),
        workers: int | None = typer.Option(None, "--workers", help="Override data.num_workers."),
        stop_after: int | None = typer.Option(
            None, "--stop-after", help="Stop (resumably) after this many iterations."
        ),
        sets: list[str] | None = typer.Option(
            None,
            "--set",
            help="Any override as dotted KEY=VALUE, e.g. model.params.global_op=nonlocal.",
        ),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    ) -> None:
        """Train a WS-TAL head (BaSNet, LGBM-Net) on a store's features."""
        from talkit.wtal_heads.config import load_config
        from talkit.wtal_heads.train import train

        overrides, sources = _overrides(
            sets,
            {
                "train.iterations": ("--iterations", iterations),
                "train.batch_size": ("--batch-size", batch_size),
                "optim.lr": ("--lr", lr),
                "train.seed": ("--seed", seed),
                "train.device": ("--device", device),
                "train.eval_every": ("--eval-every", eval_every),
                "data.num_workers": ("--workers", workers),
            },
        )
        cfg = load_config(config, overrides, sources=sources)
        run_dir = out or Path("runs") / cfg.name
        console = Console(stderr=True)
        try:
            result = train(
                cfg,
                store=store,
                annotations=annotations,
                out=run_dir,
                allow_missing=allow_missing,
                resume=resume,
                stop_after=stop_after,
                show_progress=not quiet,
                console=console,
            )
        except KeyboardInterrupt:
            raise training_interrupted(run_dir) from None
        for m in result.members:
            best = (
                "-"
                if m.best_metric is None
                else f"{100 * m.best_metric:.2f} at iteration {m.best_iteration}"
            )
            console.print(
                f"{escape(m.name)}: {m.iterations_done} iterations; best validation mAP {best}",
                highlight=False,
            )
        if result.interrupted:
            console.print(
                f"stopped early; resume with: talkit train ... --out {escape(str(run_dir))} --resume",
                highlight=False,
            )
            return
        if result.report is not None:
            print_report(result.report, Console())
        Console().print(f"run directory: {escape(str(run_dir))}", highlight=False)

    @app.command("predict")
    def predict_cmd(
        run: Path = typer.Option(..., "--run", help="Run directory written by `talkit train`."),
        split: str = typer.Option("test", "--split", help="test, val or train."),
        store: str | None = typer.Option(None, "--store", help="Store (default: the run's)."),
        annotations: Path | None = typer.Option(
            None, "--annotations", help="Annotation file (default: the run's)."
        ),
        checkpoint: str = typer.Option("best", "--checkpoint", help="best or last."),
        allow_missing: bool = typer.Option(False, "--allow-missing"),
        device: str = typer.Option("auto", "--device"),
    ) -> None:
        """Write detections (ActivityNet JSON) and the mAP report of a trained run."""
        from talkit.wtal_heads.predict import predict_run

        report = predict_run(
            run,
            split=split,
            store=store,
            annotations=annotations,
            checkpoint=checkpoint,
            allow_missing=allow_missing,
            device=device,
        )
        print_report(report, Console())
        Console().print(
            f"detections: {escape(str(run / f'detections_{split}.json'))}", highlight=False
        )

    @app.command("ensemble")
    def ensemble_cmd(
        runs: list[Path] = typer.Argument(
            ..., metavar="RUN_DIR...", help="Run directories written by `talkit train`."
        ),
        out: Path = typer.Option(..., "--out", help="Directory for detections and the table."),
        mode: str = typer.Option(
            "merge",
            "--mode",
            help="merge: pool the members' detections, then NMS; average: average their "
            "class scores and CAS, then post-process once.",
        ),
        nms_iou: float = typer.Option(0.5, "--nms", help="tIoU of the NMS after merging."),
        split: str = typer.Option("test", "--split", help="test, val or train."),
        store: str | None = typer.Option(None, "--store", help="Store (default: each run's)."),
        annotations: Path | None = typer.Option(
            None, "--annotations", help="Annotation file (default: the first run's)."
        ),
        checkpoint: str = typer.Option("best", "--checkpoint", help="best or last."),
        device: str = typer.Option("auto", "--device"),
    ) -> None:
        """Combine trained runs (one model per feature set): each member's mAP and the ensemble's."""
        from talkit.wtal_heads.ensemble import ensemble_runs

        report = ensemble_runs(
            list(runs),
            out=out,
            split=split,
            mode=mode,
            nms_iou=nms_iou,
            store=store,
            annotations=annotations,
            checkpoint=checkpoint,
            device=device,
        )
        print_ensemble(report, Console())
        Console().print(
            f"detections: {escape(str(out / f'detections_{split}.json'))}; table: "
            f"{escape(str(out / f'report_{split}.md'))}",
            highlight=False,
        )


def print_ensemble(report: dict[str, Any], console: Console) -> None:
    """Each member's and the ensemble's mAP (%) per threshold, and the averages."""
    ens = report["ensemble"]
    thresholds = list(ens["mAP"])
    averages = list(ens["average_mAP"])
    table = Table(
        title=f"{escape(report['split'])} split, {report['videos']} videos: mAP (%), "
        f"ensemble by {report['mode']}",
        box=None,
        padding=(0, 0, 0, 1),
        pad_edge=False,
    )
    table.add_column("model", no_wrap=True)
    for t in thresholds:
        table.add_column(t, justify="right", no_wrap=True)
    for a in averages:
        table.add_column(f"avg {a}", justify="right", no_wrap=True)
    rows = [(escape(n), m) for n, m in report["members"].items()]
    rows.append(("[bold]ensemble[/]", ens))
    for name, r in rows:
        table.add_row(
            name,
            *[f"{100 * r['mAP'][t]:.2f}" for t in thresholds],
            *[f"{100 * r['average_mAP'].get(a, 0.0):.2f}" for a in averages],
        )
    console.print(table)
