"""Shared pieces of the training tests: THUMOS-shaped synthetic stores and small configs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from talkit.datasets import Dataset, load_annotations, write_activitynet_json
from talkit.datasets.synthetic.features import write_features_to_store
from talkit.wtal_heads.config import RunConfig, load_config


def thumos_every(real_data: Path, step: int, offset: int = 0) -> Dataset:
    """Every ``step``-th THUMOS14 video of the real gt.json (real timelines, both subsets)."""
    ds = load_annotations(real_data / "thumos14" / "gt.json")
    ids = sorted(ds.videos)[offset::step]
    return ds.model_copy(update={"videos": {v: ds.videos[v] for v in ids}})


def thumos_few_classes(
    real_data: Path,
    classes: tuple[str, ...] = ("BaseballPitch", "Billiards", "HighJump"),
    per_class: int = 2,
) -> Dataset:
    """``per_class`` single-class THUMOS14 videos of each class, per subset (class list kept)."""
    ds = load_annotations(real_data / "thumos14" / "gt.json")
    keep: dict[str, Any] = {}
    for subset in ("train", "test"):
        for c in classes:
            ids = [
                v
                for v in sorted(ds.videos)
                if ds.videos[v].subset == subset and ds.videos[v].labels == [c]
            ]
            keep.update({v: ds.videos[v] for v in ids[:per_class]})
    return ds.model_copy(update={"videos": keep})


def make_store(
    root: Path, dataset: Dataset, *, dim: int = 2048, seed: int = 0
) -> tuple[str, Path, Dataset]:
    """Write synthetic features of ``dataset`` as ``thumos14/i3d`` and its GT as JSON.

    Returns the store URL, the annotation file (durations filled in) and the dataset.
    """
    url = str(root / "feats.store")
    filled, _ = write_features_to_store(
        url, dataset, dataset_name="thumos14", feature_set="i3d", dim=dim, seed=seed
    )
    gt = root / "gt.json"
    write_activitynet_json(filled, gt)
    return url, gt, filled


def tiny_config(head: str = "basnet", **overrides: Any) -> RunConfig:
    """A seconds-long config on 64-d features: for loop mechanics, not for accuracy."""
    base: dict[str, Any] = {
        "model.in_dim": 64,
        "model.params.cas_dim": 16,
        "data.num_segments": 16,
        "data.eval_num_segments": 16,
        "data.num_workers": 0,
        "data.val_fraction": 0.25,
        "train.batch_size": 4,
        "train.iterations": 8,
        "train.eval_every": 4,
        "train.log_every": 2,
        "train.device": "cpu",
        "optim.lr": 1e-3,
    }
    base["model.params.filter_dim" if head == "basnet" else "model.params.attention_dim"] = 8
    base.update(overrides)
    return load_config(f"{head}_thumos14", base)


def train_from_cli(
    capsys: Any, preset: str, url: str, gt: Path, run: Path, tiny: dict[str, Any]
) -> list[dict[str, Any]]:
    """`talkit train --config PRESET` with ``tiny``'s settings (its iterations, eval period,
    batch and device as their own flags, the rest as ``--set``); returns the train records
    of the metrics log after checking the run succeeded and printed its mAP."""
    import json

    from cli_helpers import run_cli

    flags = ("train.iterations", "train.eval_every", "train.batch_size", "train.device")
    sets = [a for k, v in tiny.items() if k not in flags for a in ("--set", f"{k}={v}")]
    code, out, err = run_cli(
        capsys,
        "train",
        "--config",
        preset,
        "--store",
        url,
        "--annotations",
        str(gt),
        "--out",
        str(run),
        "--iterations",
        str(tiny["train.iterations"]),
        "--eval-every",
        str(tiny["train.eval_every"]),
        "--batch-size",
        str(tiny["train.batch_size"]),
        "--device",
        "cpu",
        "--quiet",
        *sets,
    )
    assert code == 0, err
    assert "average mAP 0.1:0.7" in out
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if r["split"] == "train"]


def predict_and_eval_from_cli(capsys: Any, run: Path, gt: Path) -> dict[str, Any]:
    """`talkit predict --run RUN --split test` then `talkit eval` of its detections: the
    evaluation report, after checking both succeeded."""
    import json

    from cli_helpers import run_cli

    code, _out, err = run_cli(
        capsys, "predict", "--run", str(run), "--split", "test", "--device", "cpu"
    )
    assert code == 0, err
    dets = run / "detections_test.json"
    assert dets.is_file()
    code, out, err = run_cli(
        capsys, "eval", str(dets), "--gt", str(gt), "--subset", "test", "--json"
    )
    assert code == 0, err
    return json.loads(out)


def oracle_whole_video(gt_path: Path, average: str = "0.1:0.7") -> float:
    """Average mAP of one whole-video detection per ground-truth class of each test video,
    score 1: the whole-video baseline that knows the classes (no model involved)."""
    from talkit.wtal_heads.evaluation import evaluate
    from talkit.wtal_heads.evaluation.detections import DetectionSet

    ds = load_annotations(gt_path).subset("test")
    records = [
        {
            "video": vid,
            "label": label,
            "score": 1.0,
            "segment": [0.0, float(v.duration_s or max(s.end_s for s in v.annotations))],
        }
        for vid, v in ds.videos.items()
        for label in v.labels
    ]
    dets = DetectionSet.from_records(records)
    return evaluate(ds, dets, thresholds="thumos14").averages[average]
