"""`talkit synth ...`: synthetic videos, features and broken files with known answers.

Nothing real can be downloaded on every machine, so tests, benchmarks and demos run on
data whose ground truth is known by construction.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from talkit.cli_options import comma_list
from talkit.errors import InputError

synth_app = typer.Typer(
    name="synth",
    help="Synthetic data with known ground truth: action videos, snippet features, broken files.",
    no_args_is_help=True,
)


def _has_module(name: str) -> bool:
    return importlib.util.find_spec(f"talkit.datasets.synthetic.{name}") is not None


def _parse_classes(text: str) -> int | list[str]:
    text = text.strip()
    if text.isdigit():
        if int(text) < 1:
            raise InputError("--classes must be at least 1", hint="e.g. --classes 4")
        return int(text)
    names = comma_list(text)
    if not names:
        raise InputError(
            f"cannot read --classes {text!r}", hint="a count (4) or names (Jump,Throw)"
        )
    return names


@synth_app.command("videos")
def videos_cmd(
    out_dir: Path = typer.Argument(..., help="Folder to write videos/ and annotations/ into."),
    num_videos: int = typer.Option(8, "--num-videos", "-n", help="How many videos."),
    classes: str = typer.Option("4", "--classes", help="Class count, or names: Jump,Throw,Swim."),
    duration: str = typer.Option("20", "--duration", help="Seconds per video, or a range 5:20."),
    fps: str = typer.Option("25", "--fps", help="25, 30, 29.97, any rate, or 'variable'."),
    size: str = typer.Option("320x240", "--size", help="WIDTHxHEIGHT, 64x48 to 1280x720."),
    codec: str = typer.Option("h264", "--codec", help="h264 (MP4), mpeg4 (MP4) or vp9 (WebM)."),
    seed: int = typer.Option(0, "--seed", help="Same seed, same videos and annotations."),
    instances: float = typer.Option(4.0, "--instances", help="Mean action instances per video."),
    instance_duration: float = typer.Option(
        3.0, "--instance-duration", help="Median instance length in seconds (THUMOS14: 3.0)."
    ),
    context_prob: float = typer.Option(
        0.5, "--context-prob", help="Chance of still context frames on each side of an instance."
    ),
    test_fraction: float = typer.Option(0.5, "--test-fraction", help="Share of test videos."),
    signature: bool = typer.Option(
        False,
        "--signature",
        help="Write frame-index signature videos instead (each frame shows its own index).",
    ),
) -> None:
    """Untrimmed action videos with ground truth in every annotation format talkit reads.

    Writes OUT_DIR/videos/*.mp4 (or .webm), OUT_DIR/annotations/{gt.json, thumos/,
    wtalc/, classlist.txt} and OUT_DIR/synthetic.json (class looks, parameters, context
    spans). With --signature: OUT_DIR/videos/signature_*.mp4 and OUT_DIR/signature.json
    with every frame's presentation time.
    """
    if signature:
        _signature_videos(out_dir, num_videos, duration, fps, size, codec, seed)
        return
    from talkit.cli_progress import video_progress
    from talkit.datasets.synthetic.timeline import InstanceDistribution
    from talkit.datasets.synthetic.videos import generate_videos

    try:
        dist = InstanceDistribution(
            count_mean=instances, duration_median_s=instance_duration, context_prob=context_prob
        )
    except ValueError as exc:
        raise InputError(
            f"invalid instance distribution: {exc.errors()[0]['msg'] if hasattr(exc, 'errors') else exc}",
            hint="--instances >= 0, --instance-duration > 0, --context-prob in [0, 1]",
        ) from None
    with video_progress("render + encode", num_videos) as on_video:
        ds = generate_videos(
            out_dir,
            num_videos=num_videos,
            classes=_parse_classes(classes),
            duration_s=duration,
            fps=fps,
            size=size,
            codec=codec,
            seed=seed,
            distribution=dist,
            test_fraction=test_fraction,
            on_video=on_video,
        )
    console = Console(highlight=False, soft_wrap=True)
    table = Table(title=f"{len(ds.videos)} synthetic videos in {escape(str(out_dir))}")
    for col in ("subset", "videos", "instances", "action-free videos"):
        table.add_column(col, justify="left" if col == "subset" else "right")
    for subset in ("validation", "test"):
        vids = [v for v in ds.videos.values() if v.subset == subset]
        table.add_row(
            subset,
            str(len(vids)),
            str(sum(len(v.annotations) for v in vids)),
            str(sum(not v.annotations for v in vids)),
        )
    console.print(table)
    console.print(f"classes: {escape(', '.join(ds.classes))}")
    console.print(
        f"annotations: {escape(str(out_dir / 'annotations'))} (gt.json, thumos/, wtalc/, "
        "classlist.txt)"
    )


def _signature_videos(
    out_dir: Path, num_videos: int, duration: str, fps: str, size: str, codec: str, seed: int
) -> None:
    if not _has_module("signature"):
        raise InputError(
            "signature videos are not available in this talkit build",
            hint="talkit.datasets.synthetic.signature is missing; reinstall talkit",
        )
    from talkit.datasets.synthetic.signature import write_signature_video
    from talkit.datasets.synthetic.videos import parse_duration, parse_fps, parse_size

    lo, hi = parse_duration(duration)
    rate = parse_fps(fps)
    width, height = parse_size(size)
    if num_videos < 1:
        raise InputError(f"--num-videos must be at least 1, got {num_videos}")
    out = out_dir / "videos"
    out.mkdir(parents=True, exist_ok=True)
    ext = "webm" if codec == "vp9" else "mp4"
    record: dict[str, dict[str, object]] = {}
    for i in range(num_videos):
        seconds = lo + (hi - lo) * (i / max(1, num_videos - 1))
        frames = max(1, round(seconds * float(rate or 25)))
        path = out / f"signature_{i:04d}.{ext}"
        times = write_signature_video(
            path,
            num_frames=frames,
            fps=rate or 25,
            size=(width, height),
            codec=codec,
            vfr=rate is None,
            seed=seed + i,
        )
        record[f"videos/{path.name}"] = {
            "frames": frames,
            "fps": "variable" if rate is None else str(rate),
            "times": [round(float(t), 9) for t in times],
        }
    (out_dir / "signature.json").write_text(json.dumps(record) + "\n")
    Console(highlight=False).print(
        f"wrote {num_videos} signature videos to {escape(str(out))} "
        f"(frame times in {escape(str(out_dir / 'signature.json'))})"
    )


@synth_app.command("features")
def features_cmd(
    store: str = typer.Argument(..., help="Feature store path or URL (created if absent)."),
    annotations: Path = typer.Option(
        ..., "--annotations", "-a", help="Annotation file/folder whose timelines to use."
    ),
    dim: int = typer.Option(2048, "--dim", help="Total feature dim, split rgb/flow in half."),
    noise: float = typer.Option(1.0, "--noise", help="Noise scale (difficulty; default 1)."),
    context: float = typer.Option(
        0.6, "--context", help="How much context snippets look like their class."
    ),
    background: float = typer.Option(
        0.3, "--background", help="Share of background mixed into action snippets, [0, 1)."
    ),
    seed: int = typer.Option(0, "--seed", help="Same seed, byte-identical features."),
    dataset: str | None = typer.Option(
        None, "--dataset", "-d", help="Dataset name in the store (default: the file's name)."
    ),
    feature_set: str = typer.Option("synthetic", "--feature-set", "-f", help="Feature set name."),
    dtype: str = typer.Option("float32", "--dtype", help="Storage dtype: float32 or float16."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace videos already stored."),
) -> None:
    """Write synthetic snippet features on real annotation timelines into a store.

    Snippets follow the I3D convention (25 fps, 16 frames, stride 16); the feature set's
    spec records that the features are synthetic, with every parameter and the seed.
    """
    from talkit.cli_progress import video_progress
    from talkit.datasets import load_annotations
    from talkit.datasets.synthetic.features import write_features_to_store

    ds = load_annotations(annotations)
    with video_progress("synthesise", len(ds.videos)) as on_video:
        out, key = write_features_to_store(
            store,
            ds,
            dataset_name=dataset,
            feature_set=feature_set,
            dtype=dtype,
            overwrite=overwrite,
            on_video=on_video,
            dim=dim,
            noise=noise,
            context_strength=context,
            background_fraction=background,
            seed=seed,
        )
    Console(highlight=False, soft_wrap=True).print(
        f"wrote {len(out.videos)} videos ({out.num_instances} instances, "
        f"{len(out.classes)} classes) to {escape(store)} as {escape(key)} (dim {dim}, seed {seed})"
    )


@synth_app.command("broken")
def broken_cmd(
    out_dir: Path = typer.Argument(..., help="Folder to write the broken files into."),
    seed: int = typer.Option(0, "--seed", help="Seed of the source videos."),
) -> None:
    """Deliberately broken video files, one per kind, for reliability tests."""
    if not _has_module("broken"):
        raise InputError(
            "broken-file generation is not available in this talkit build",
            hint="talkit.datasets.synthetic.broken is missing; reinstall talkit",
        )
    from talkit.datasets.synthetic.broken import make_broken_videos

    paths = make_broken_videos(out_dir, seed=seed)
    table = Table(title=f"broken files in {escape(str(out_dir))}")
    table.add_column("kind")
    table.add_column("file")
    table.add_column("bytes", justify="right")
    for kind, path in paths.items():
        table.add_row(kind, escape(str(path)), str(Path(path).stat().st_size))
    Console(highlight=False).print(table)


def register(app: typer.Typer) -> None:
    """Add the ``synth`` group to the root ``talkit`` app."""
    app.add_typer(synth_app, name="synth")
