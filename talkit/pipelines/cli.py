"""``talkit extract`` (videos -> feature set in a store, on Ray) and ``talkit demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
import yaml
from rich.console import Console

from talkit.cli_options import comma_list, command_line, key_value
from talkit.errors import InputError, TalkitError, WorkFailedError


class ExtractFailuresError(WorkFailedError):
    """Some videos failed; the others are in the store."""


def _split(text: str | None) -> list[str] | None:
    if text is None:
        return None
    items = comma_list(text)
    if not items:
        raise InputError(f"empty list {text!r}", hint="give comma-separated names, e.g. rgb,flow")
    return items


def _resize_short(text: str | None) -> int | str | None:
    if text is None:
        return None
    if text.strip().lower() == "none":
        return "none"  # a square resize; the config turns it into None for the backbone
    try:
        return int(text)
    except ValueError:
        raise InputError(
            f"--resize-short {text!r} is neither a number nor 'none'", hint="e.g. 256"
        ) from None


def parse_checkpoints(values: list[str]) -> dict[str, str]:
    """``["i3d.flow=b.pt", "slowfast_r50=s.pyth", "rgb=a.pt"]`` -> ``{key: path}``.

    Keys are ``BACKBONE.STREAM``, ``BACKBONE`` (its only stream) or, when the run has a
    single backbone, ``STREAM``; the config resolves them (``ExtractConfig``).
    """
    out: dict[str, str] = {}
    for value in values:
        key, path = key_value(
            value,
            option="--checkpoint",
            form="BACKBONE.STREAM=PATH, BACKBONE=PATH or STREAM=PATH",
            example="--checkpoint i3d.rgb=rgb_imagenet.pt --checkpoint slowfast_r50=SLOWFAST_8x8_R50.pyth",
        )
        if not Path(path).expanduser().is_file():
            raise InputError(f"--checkpoint {value}: no such file {path}")
        out[key] = str(Path(path).expanduser())
    return out


def parse_options(values: list[str]) -> dict[str, dict[str, Any]]:
    """``["slowfast_r50.input_size=64"]`` -> ``{"slowfast_r50": {"input_size": 64}}``.

    Values are read as YAML scalars or lists (``64``, ``true``, ``[rgb]``; ``none`` is None).
    """
    out: dict[str, dict[str, Any]] = {}
    for value in values:
        key, text = key_value(
            value,
            option="--option",
            form="BACKBONE.KEY=VALUE",
            example="--option slowfast_r50.input_size=224 --option i3d.streams=[rgb]",
        )
        name, _, option = key.partition(".")
        if not name or not option:
            raise InputError(
                f"--option {value!r} is not BACKBONE.KEY=VALUE",
                hint="e.g. --option i3d.flow_method=tvl1_torch",
            )
        try:
            parsed = yaml.safe_load(text)
        except yaml.YAMLError:
            parsed = text
        if isinstance(parsed, str) and parsed.lower() == "none":
            parsed = None
        out.setdefault(name, {})[option] = parsed
    return out


def extract_command(
    videos: str = typer.Option(
        ...,
        "--videos",
        help="A folder or s3:// prefix of videos, a text list of paths/URLs, or an annotation file.",
    ),
    dataset: str = typer.Option(..., "--dataset", help="Dataset name in the store, e.g. thumos14."),
    store: str = typer.Option(..., "--store", help="Store path or URL (created if absent)."),
    backbone: str | None = typer.Option(
        None, "--backbone", help="Backbone(s), comma-separated (default: the config's, i3d)."
    ),
    checkpoint: list[str] = typer.Option(
        [],
        "--checkpoint",
        help="Weights file, repeatable: BACKBONE.STREAM=PATH (i3d.flow=flow_imagenet.pt), "
        "BACKBONE=PATH (slowfast_r50=SLOWFAST_8x8_R50.pyth), or STREAM=PATH with one backbone.",
    ),
    weights: list[str] = typer.Option(
        [],
        "--weights",
        help="A known public checkpoint, repeatable: NAME (its file in $TALKIT_WEIGHTS or "
        "~/.cache/talkit/weights) or NAME=PATH; e.g. slowfast_r50.kinetics400 (see docs/backbones.md).",
    ),
    option: list[str] = typer.Option(
        [],
        "--option",
        help="One backbone's option, repeatable: BACKBONE.KEY=VALUE (slowfast_r50.input_size=224).",
    ),
    config: str | None = typer.Option(
        None, "--config", help="YAML config or preset name (configs/extract/thumos14_i3d.yaml)."
    ),
    streams: str | None = typer.Option(
        None, "--streams", help="Streams of the backbones that have them (i3d), e.g. rgb,flow."
    ),
    flow: str | None = typer.Option(
        None,
        "--flow",
        help="Optical flow: tvl1 (OpenCV), tvl1_torch (batched, CPU or GPU), tvl1_torch_fast, "
        "farneback or dis.",
    ),
    flow_device: str | None = typer.Option(
        None, "--flow-device", help="Where tvl1_torch runs: auto (the --device), cpu or cuda."
    ),
    flow_batch: int | None = typer.Option(
        None, "--flow-batch", help="tvl1_torch pairs per batch (default: sized by memory)."
    ),
    flow_compile: bool | None = typer.Option(
        None, "--flow-compile/--no-flow-compile", help="torch.compile tvl1_torch (default: on)."
    ),
    input_size: int | None = typer.Option(
        None, "--input-size", help="Crop size, for every backbone (default: each backbone's own)."
    ),
    resize_short: str | None = typer.Option(
        None,
        "--resize-short",
        help="Short side before the crop, for every backbone (default: each backbone's own), "
        "or 'none' for a square resize.",
    ),
    random_weights: int | None = typer.Option(
        None, "--random-weights", help="Seeded random weights (test features, labelled so)."
    ),
    feature_set: str | None = typer.Option(
        None, "--feature-set", help="Feature set name (default: the backbone's name)."
    ),
    video_dir: str | None = typer.Option(
        None,
        "--video-dir",
        help="Where an annotation file's videos are (a folder or s3:// prefix; matched by stem).",
    ),
    frames_fps: float | None = typer.Option(
        None, "--frames-fps", help="Frame rate of frame folders named in a text list."
    ),
    subset: list[str] = typer.Option(
        [], "--subset", help="Only these annotation subsets (e.g. test); repeatable."
    ),
    ray_address: str | None = typer.Option(
        None, "--ray-address", help="Join a Ray cluster (auto or HOST:PORT); default: embedded."
    ),
    num_workers: int | None = typer.Option(
        None, "--num-workers", help="Workers (default: one per CPU, or per GPU with cuda)."
    ),
    threads: int | None = typer.Option(
        None, "--threads", help="Torch threads per worker (default: its share of the CPUs)."
    ),
    batch_size: str | None = typer.Option(
        None,
        "--batch-size",
        help="Snippets per forward: a number, or auto (the default: bounded by each "
        "worker's memory share).",
    ),
    device: str | None = typer.Option(None, "--device", help="cpu or cuda."),
    niceness: int | None = typer.Option(
        None,
        "--niceness",
        help="CPU niceness of the workers, -20..19 (default 0; Ray's own is 15). "
        "Below the node's own needs root.",
    ),
    force: bool = typer.Option(False, "--force", help="Extract again even videos already done."),
    max_failures: int | None = typer.Option(
        None, "--max-failures", help="Stop once more than N videos failed."
    ),
    max_consecutive_failures: int | None = typer.Option(
        None,
        "--max-consecutive-failures",
        help="Stop after N failures in a row of one error type (default 20; 0: never).",
    ),
    commit_every: int | None = typer.Option(
        None, "--commit-every", help="Commit every N videos (a crash loses at most these)."
    ),
    report: Path | None = typer.Option(
        None, "--report", help="JSON report (default: talkit-extract-DATASET.json here)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Extract snippet features of VIDEOS into a feature set of STORE, in parallel on Ray.

    Re-running the same command resumes: videos already in the store from the same file and with the same spec are skipped. Exits 1 if any video failed (listed at the end and in the report); the others are committed. Ctrl-C commits the finished videos and exits 130; a second Ctrl-C stops at once.
    """
    from talkit.pipelines.startup import ray_started_early

    flags = {  # config field -> (option, the text the user gave)
        "backbones": ("--backbone", backbone),
        "streams": ("--streams", streams),
        "flow": ("--flow", flow),
        "flow_device": ("--flow-device", flow_device),
        "flow_batch": ("--flow-batch", flow_batch),
        "flow_compile": ("--flow-compile", flow_compile),
        "input_size": ("--input-size", input_size),
        "resize_short": ("--resize-short", resize_short),
        "random_weights_seed": ("--random-weights", random_weights),
        "num_workers": ("--num-workers", num_workers),
        "torch_threads": ("--threads", threads),
        "batch_size": ("--batch-size", batch_size),
        "device": ("--device", device),
        "niceness": ("--niceness", niceness),
        "max_failures": ("--max-failures", max_failures),
        "max_consecutive_failures": ("--max-consecutive-failures", max_consecutive_failures),
        "commit_every": ("--commit-every", commit_every),
        "frames_fps": ("--frames-fps", frames_fps),
        "checkpoints": ("--checkpoint", " --checkpoint ".join(checkpoint) or None),
        "weights": ("--weights", " --weights ".join(weights) or None),
    }
    # Ray starts now, while this process imports torch, the backbones and the modules
    # below (startup.py); the run uses it, and it stops when the command ends.
    with ray_started_early(ray_address) as runtime:
        from talkit.pipelines.config import load_extract_config
        from talkit.pipelines.plan import plan_videos
        from talkit.pipelines.progress import QuietProgress, RichProgress, print_summary
        from talkit.pipelines.run import ExtractJob, run_extraction

        cfg = load_extract_config(
            config,
            {
                "backbones": _split(backbone),
                "streams": _split(streams),
                "flow": flow,
                "flow_device": flow_device,
                "flow_batch": flow_batch,
                "flow_compile": flow_compile,
                "input_size": input_size,
                "resize_short": _resize_short(resize_short),
                "random_weights_seed": random_weights,
                "num_workers": num_workers,
                "torch_threads": threads,
                "batch_size": batch_size,
                "device": device,
                "niceness": niceness,
                "max_failures": max_failures,
                "max_consecutive_failures": max_consecutive_failures,
                "commit_every": commit_every,
                "frames_fps": frames_fps,
                "checkpoints": parse_checkpoints(checkpoint) or None,
                "weights": list(weights) or None,
            },
            sources={k: f"{opt} {text}" for k, (opt, text) in flags.items() if text is not None},
            options=parse_options(option),
        )
        plan = plan_videos(videos, video_dir=video_dir, subsets=subset)
        report_path = report or Path(f"talkit-extract-{dataset}.json")
        job = ExtractJob(
            plan=plan,
            store=store,
            dataset=dataset,
            config=cfg,
            feature_set=feature_set,
            force=force,
            ray_address=ray_address,
            report_path=report_path,
            command=command_line(),
            runtime=runtime,
        )
        console = Console()
        observer = RichProgress() if not quiet else QuietProgress()
        try:
            result = run_extraction(job, observer)
        except TalkitError:  # stopped (failures, Ctrl-C, the store): say what is done first
            if observer.report is not None:
                print_summary(observer.report, console, str(report_path))
            raise
        print_summary(result, console, str(report_path))
        if result.clashes:
            raise ExtractFailuresError(
                f"{len(result.clashes)} video(s) were committed meanwhile by another run from "
                f"other files than this run's (listed in {report_path}); the committed ones were "
                "kept",
                hint="re-run the same command: it re-extracts every video whose file differs from "
                "what the store holds",
            )
        if result.failures:
            raise ExtractFailuresError(
                f"{len(result.failures)} of {result.planned} videos failed; the other "
                f"{len(result.extracted) + len(result.skipped)} are in {store}",
                hint=f"see the table above and {report_path}; fix the files and re-run the same "
                "command to extract only what is missing",
            )


def demo_command(
    out: Path = typer.Option(Path("talkit-demo"), "--out", help="Folder for videos and store."),
    videos: int = typer.Option(16, "--videos", help="Synthetic videos to generate."),
    num_workers: int | None = typer.Option(None, "--num-workers", help="Ray workers."),
    duration: float | None = typer.Option(
        None, "--duration", help="Length of each video in seconds (default 6-10)."
    ),
    train_iterations: int = typer.Option(
        200, "--train-iterations", min=0, help="LGBM-Net training iterations (0: no training)."
    ),
    backbones: str | None = typer.Option(
        None,
        "--backbones",
        help="Comma-separated backbones to extract in one pass, each at 48 px (default: i3d "
        "rgb + flow); 'all' = i3d,slowfast_r50,csn_r101,tdn_r50,vivit_b16x2.",
    ),
) -> None:
    """Synthetic videos -> random-weight I3D RGB + flow on Ray -> store -> LGBM-Net -> mAP.

    Runs embedded Ray on this machine (a few minutes on 2 cores), prints the run and store
    summaries, then trains LGBM-Net on the store and prints its test mAP beside the
    whole-video baseline. The features come from random weights, and the store's spec
    says so. With --backbones, every video is decoded once for all of them, and LGBM-Net
    trains on the first one's features.
    """
    from talkit.pipelines.demo import run_demo

    run_demo(
        out,
        num_videos=videos,
        num_workers=num_workers,
        duration_s=duration,
        train_iterations=train_iterations,
        backbones=_split(backbones),
    )


def register(app: typer.Typer) -> None:
    """Add ``talkit extract`` and ``talkit demo`` to the root app."""
    app.command("extract")(extract_command)
    app.command("demo")(demo_command)
