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
