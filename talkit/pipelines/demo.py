"""``talkit demo``: the whole extraction path on a laptop in a few minutes, no downloads.

1. Generate small synthetic untrimmed action videos with ground truth
   (talkit.datasets.synthetic; tiny frames so it runs anywhere).
2. Extract I3D RGB + TV-L1 flow features with *random weights* on embedded Ray into a
   versioned store (``backbones=`` picks others, e.g. I3D and the four backbones of
   LGBM-Net's report, each at a tiny input size, from one decode of each video). The
   feature set's spec says ``random_weights: true`` with the seed in place of a
   checkpoint hash: these features exercise the machinery, they are not real.
3. Print the run summary and the store summary.
4. Train LGBM-Net on the store's training videos (on the first backbone's features; a
   narrowed model, about a minute of CPU) and print its mAP on the test videos against
   the synthetic ground truth, beside the whole-video baseline.

Re-running the demo on the same folder reuses the videos and resumes the store: nothing
is extracted twice (a finished training run is replaced).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from talkit.pipelines.config import ExtractConfig
from talkit.pipelines.plan import plan_videos
from talkit.pipelines.progress import RichProgress, print_summary
from talkit.pipelines.report import RunReport
from talkit.pipelines.run import ExtractJob, run_extraction

DEMO_DATASET = "synthetic"
DEMO_SIZE = (64, 48)  # frames: tiny, so that TV-L1 (~0.1 s per pair here) fits on 2 cores
DEMO_DURATION_S = (6.0, 10.0)
DEMO_CLASSES = 3
DEMO_TEST_FRACTION = 0.25  # most videos train: every test class must occur in training
DEMO_INPUT = 48  # px: every backbone's crop in the demo (ViViT needs a multiple of 16)
DEMO_CONFIG = {
    "name": "demo_i3d_random",
    "backbones": {
        "i3d": {
            "streams": ["rgb", "flow"],
            "input_size": DEMO_INPUT,
            "resize_short": DEMO_INPUT,
            "flow_method": "tvl1",
        }
    },
    "random_weights_seed": 0,
    "batch_size": 8,
}
# ``--backbones all``: I3D and the four backbones of LGBM-Net's HACS ensemble.
DEMO_ALL_BACKBONES = ("i3d", "slowfast_r50", "csn_r101", "tdn_r50", "vivit_b16x2")


def demo_backbones(names: Sequence[str] | None) -> dict[str, dict[str, object]]:
    """Each named backbone's demo options: I3D's two streams as above; any other backbone
    its own defaults at the demo's input size (short side and crop ``DEMO_INPUT`` px)."""
    from talkit.extractors.registry import default_options

    if not names:
        return dict(DEMO_CONFIG["backbones"])  # type: ignore[arg-type]
    if list(names) == ["all"]:
        names = DEMO_ALL_BACKBONES
    chosen: dict[str, dict[str, object]] = {}
    for name in names:
        if name == "i3d":
            chosen[name] = dict(DEMO_CONFIG["backbones"]["i3d"])  # type: ignore[index]
            continue
        defaults = default_options(name)  # an unknown name: InputError listing the known
        chosen[name] = {k: DEMO_INPUT for k in ("input_size", "resize_short") if k in defaults}
    return chosen


def demo_config(
    num_workers: int | None = None, backbones: Sequence[str] | None = None
) -> ExtractConfig:
    """The demo's extraction settings: I3D conventions (or ``backbones``) at a tiny size."""
    return ExtractConfig.model_validate(
        {**DEMO_CONFIG, "backbones": demo_backbones(backbones), "num_workers": num_workers}
    )


# LGBM-Net narrowed to the demo's size: 16 short videos of 9-15 snippets each.
DEMO_TRAIN_OVERRIDES = {
    "name": "demo_lgbm",
    "data.val_fraction": 0.25,
    "data.sampling": "crop",
    "data.num_segments": 32,
    "data.eval_sampling": "full",
    "data.standardize": True,
    "data.num_workers": 0,
    "model.in_dim": None,
    "model.params.attention_dim": 16,
    "model.params.cas_dim": 32,
    "optim.lr": 1e-3,
    "train.batch_size": 4,
    "train.eval_every": 50,
    "train.device": "cpu",
}


def run_demo(
    out: str | Path,
    *,
    num_videos: int = 16,
    num_workers: int | None = None,
    duration_s: float | None = None,
    train_iterations: int = 200,
    backbones: Sequence[str] | None = None,
    console: Console | None = None,
) -> RunReport:
    """Generate, extract, summarise, train (see module docstring); returns the run report.

    ``train_iterations=0`` stops after the store summary; ``backbones`` (default I3D
    rgb + flow; ``["all"]`` for ``DEMO_ALL_BACKBONES``) are extracted in one pass.
    """
    from talkit.datasets.synthetic.videos import generate_videos

    console = console or Console()
    out = Path(out)
    data = out / "data"
    store = out / "features.store"
    manifest = data / "synthetic.json"
    duration = (duration_s, duration_s) if duration_s else DEMO_DURATION_S
    steps = 4 if train_iterations > 0 else 3
    if manifest.is_file() and len(list((data / "videos").glob("*"))) == num_videos:
        console.print(
            f"[bold]1/{steps}[/] reusing the {num_videos} synthetic videos in {escape(str(data))}"
        )
    else:
        console.print(
            f"[bold]1/{steps}[/] generating {num_videos} synthetic action videos in "
            f"{escape(str(data))}"
        )
        generate_videos(
            data,
            num_videos=num_videos,
            size=DEMO_SIZE,
            duration_s=duration,
            classes=DEMO_CLASSES,
            test_fraction=DEMO_TEST_FRACTION,
            seed=0,
        )
    annotations = data / "annotations" / "gt.json"
    config = demo_config(num_workers, backbones)
    names = list(config.backbones)
    what = "I3D rgb + flow (TV-L1)" if names == ["i3d"] else f"{', '.join(names)} (one decode)"
    console.print(
        f"[bold]2/{steps}[/] extracting random-weight {what} features of the videos "
        f"named in {escape(str(annotations))} into {escape(str(store))}"
    )
    job = ExtractJob(
        plan=plan_videos(annotations),
        store=str(store),
        dataset=DEMO_DATASET,
        config=config,
        report_path=out / "extract-report.json",
        command=["talkit", "demo", "--out", str(out)],
    )
    report = run_extraction(job, RichProgress(console))
    print_summary(report, console, str(job.report_path))
    console.print(f"[bold]3/{steps}[/] the store:")
    print_store_summary(str(store), console)
    if train_iterations > 0:
        console.print(
            f"[bold]4/4[/] training LGBM-Net ({train_iterations} iterations) on the training "
            f"videos' {names[0]} features; mAP on the test videos:"
        )
        from talkit.wtal_heads.data import ClassMismatchError, EmptySplitError

        try:
            train_demo_model(
                store, annotations, out / "train-lgbm", train_iterations, console, names[0]
            )
        except (ClassMismatchError, EmptySplitError) as exc:
            console.print(
                f"[yellow]training skipped:[/] {escape(str(exc))}. These {num_videos} videos "
                "are too few "
                "to train on; the default (16 videos of 6-10 s) trains."
            )
    console.print(
        "\n[yellow]These features come from random weights[/] (the spec says so): use them to "
        "try the tools, not to measure anything.\nNext: "
        f"`talkit store log {escape(str(store))}`, `talkit store info {escape(str(store))}`; "
        "real features need "
        "`talkit extract ... --checkpoint rgb=rgb_imagenet.pt --checkpoint flow=flow_imagenet.pt`."
    )
    return report


def train_demo_model(
    store: Path,
    annotations: Path,
    run_dir: Path,
    iterations: int,
    console: Console,
    feature_set: str = "i3d",
) -> dict:
    """Train the narrowed LGBM-Net on one of the demo store's feature sets; print and
    return its test report."""
    import shutil

    from talkit.wtal_heads.config import load_config
    from talkit.wtal_heads.train import train
    from talkit.wtal_heads.train_cli import print_report

    overrides = {
        **DEMO_TRAIN_OVERRIDES,
        "data.feature_sets": [f"{DEMO_DATASET}/{feature_set}"],
        "train.iterations": iterations,
    }
    cfg = load_config("lgbm_thumos14", overrides)
    if run_dir.exists():
        shutil.rmtree(run_dir)  # the demo's own run, re-made from the same seed
    result = train(cfg, store=str(store), annotations=annotations, out=run_dir, show_progress=False)
    print_report(result.report, console)
    console.print(
        f"run directory: {escape(str(run_dir))} (config, checkpoints, metrics, detections, plots)"
    )
    return result.report


def print_store_summary(url: str, console: Console) -> None:
    """Per feature set: videos, snippets, streams, weights, flow, bytes; then the history."""
    from rich.table import Table

    from talkit.store import FeatureStore
    from talkit.store.describe import spec_rows

    store = FeatureStore.open(url)
    info = store.info()
    for key, fs in info["feature_sets"].items():
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold")
        grid.add_column(overflow="fold")
        grid.add_row("videos", f"{fs['videos']} ({fs['snippets']} snippets)")
        grid.add_row("streams", escape(", ".join(f"{n}={d}" for n, d in fs["streams"].items())))
        for label, text in spec_rows(fs["spec"]):
            grid.add_row(label, escape(text) if label != "note" else f"[yellow]{escape(text)}[/]")
        grid.add_row(
            "stored", f"{fs['bytes_stored'] / 1024:.0f} KiB of {fs['bytes_logical'] / 1024:.0f} KiB"
        )
        console.print(f"[bold cyan]{escape(key)}[/]")
        console.print(grid)
    log = store.log()
    if log:
        head = log[0]
        console.print(
            f"version {head.id} ({head.written_at:%Y-%m-%d %H:%M:%S}): {escape(head.message)}; "
            f"{len(log)} commits in all"
        )
