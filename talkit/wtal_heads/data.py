"""Joining a store and an annotation file into train / validation / test video lists.

Every check that can fail on bad input runs here, before any training: feature dims
against the config, annotated videos missing from the store, empty splits, classes the
test split has but training never sees, and feature sets that do not align.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from talkit.datasets.model import Dataset
from talkit.datasets.store_dataset import FeatureSource, StoreFeatureSource
from talkit.errors import ConfigError, InputError
from talkit.wtal_heads.config import DataConfig, RunConfig

SHOW_IDS = 5


class MissingVideosError(InputError):
    """Annotated videos that the feature store does not have."""


class EmptySplitError(InputError):
    """A split (train, validation or test) with no usable video."""


class ClassMismatchError(InputError):
    """Train and test disagree on the class list."""


@dataclass
class PreparedData:
    """The annotation set, its class list, the feature source and the three video lists."""

    annotations: Dataset
    classes: list[str]
    source: FeatureSource
    train_ids: list[str]
    val_ids: list[str]
    test_ids: list[str]
    notes: list[str] = field(default_factory=list)

    def split_ids(self, split: str) -> list[str]:
        """Video ids of ``train``, ``val`` or ``test``."""
        table = {"train": self.train_ids, "val": self.val_ids, "test": self.test_ids}
        if split not in table:
            raise InputError(f"unknown split {split!r}", hint="use train, val or test")
        return table[split]

    def ground_truth(self, ids: Sequence[str]) -> Dataset:
        """The annotation set restricted to ``ids`` (what a split is scored against)."""
        keep = {v: self.annotations.videos[v] for v in ids}
        return self.annotations.model_copy(update={"videos": keep})


def load_dataset(annotations: str | Path | Dataset) -> Dataset:
    if isinstance(annotations, Dataset):
        return annotations
    from talkit.datasets import load_annotations

    return load_annotations(annotations)


def carve_validation(
    ids: Sequence[str], labels: dict[str, list[str]], fraction: float, seed: int
) -> tuple[list[str], list[str]]:
    """Hold out ``fraction`` of the training videos, stratified by each video's first label.

    Deterministic for a seed and independent of the order ids come in. Every label group
    with at least two videos gives at least one to validation when the budget allows, so
    model selection sees most classes; training always keeps at least one video.
    """
    rng = np.random.default_rng(seed)
    groups: dict[str, list[str]] = {}
    for vid in sorted(ids):
        groups.setdefault(labels[vid][0] if labels[vid] else "", []).append(vid)
    n_val = min(max(1, round(fraction * len(ids))), len(ids) - 1)
    shuffled = {k: list(rng.permutation(v)) for k, v in sorted(groups.items())}
    val: list[str] = []
    # Round-robin over label groups so the held-out share is spread across classes, never
    # taking a group's last training video while another group can still give one.
    while len(val) < n_val:
        progressed = False
        for members in shuffled.values():
            if len(val) >= n_val:
                break
            if len(members) > 1:
                val.append(members.pop())
                progressed = True
        if not progressed:
            break
    if len(val) < n_val:  # many single-video classes: fill from what is left, at random
        rest = [v for members in shuffled.values() for v in members]
        val += list(rng.permutation(rest)[: n_val - len(val)])
    held = set(val)
    return [v for v in sorted(ids) if v not in held], sorted(val)


def store_source(url: str, data: DataConfig) -> StoreFeatureSource:
    """The feature source a config's ``data`` section describes, on store ``url``."""
    return StoreFeatureSource(
        url,
        data.feature_sets,
        streams=data.streams,
        version=data.store_version,
        tolerance_s=data.alignment_tolerance_s,
        cache_mb=data.cache_mb,
    )


def _ids_line(ids: Sequence[str]) -> str:
    more = f" and {len(ids) - SHOW_IDS} more" if len(ids) > SHOW_IDS else ""
    return ", ".join(ids[:SHOW_IDS]) + more


def check_dims(config: RunConfig, source: FeatureSource) -> None:
    """The feature dim the store gives must be the one the config expects."""
    expected = config.model.in_dim
    if expected is not None and expected != source.dim:
        parts = ", ".join(f"{k}: {d}" for k, d in source.dims.items())
        raise ConfigError(
            f"feature dim mismatch: config {config.name!r} expects model.in_dim={expected} but "
            f"the store gives {source.dim} ({parts}; streams={config.data.streams!r})",
            hint="pick the preset made for these features, set data.streams, or override "
            f"model.in_dim={source.dim}",
        )


def prepare_data(
    config: RunConfig,
    *,
    store: str | FeatureSource,
    annotations: str | Path | Dataset,
    allow_missing: bool = False,
    log: Callable[[str], None] = lambda _m: None,
) -> PreparedData:
    """Open the features, parse the annotations, and carve the splits, checking everything."""
    data: DataConfig = config.data
    dataset = load_dataset(annotations)
    source = store if isinstance(store, FeatureSource) else store_source(store, data)
    if not config.ensemble:  # ensemble members each check their own set
        check_dims(config, source)
    classes = list(dataset.classes)
    if not classes:
        raise InputError(f"annotation set {dataset.name!r} has no classes")

    train_all = sorted(dataset.subset(data.train_subset).videos)
    test_all = sorted(dataset.subset(data.test_subset).videos)
    subsets = ", ".join(f"{k} ({v['videos']})" for k, v in dataset.subset_counts().items())
    if not train_all:
        raise EmptySplitError(
            f"no annotated video is in the training subset {data.train_subset!r}",
            hint=f"the annotation file's subsets are: {subsets}; set data.train_subset",
        )
    overlap = set(train_all) & set(test_all)
    if overlap:
        raise InputError(
            f"{len(overlap)} videos are in both the train and test subsets "
            f"({_ids_line(sorted(overlap))})",
            hint="train_subset and test_subset must name different subsets",
        )

    stored = set(source.video_ids())
    wanted = train_all + test_all
    missing = [v for v in wanted if v not in stored]
    notes: list[str] = []
    if missing:
        msg = (
            f"{len(missing)} of {len(wanted)} annotated videos are not in the store "
            f"({', '.join(data.feature_sets)}): {_ids_line(missing)}"
        )
        if not allow_missing:
            raise MissingVideosError(
                msg, hint="extract them, or pass --allow-missing to train on the intersection"
            )
        notes.append(msg + "; using the intersection (--allow-missing)")
        log(notes[-1])
    train_all = [v for v in train_all if v in stored]
    test_all = [v for v in test_all if v in stored]

    labels = {v: dataset.videos[v].labels for v in train_all}
    unlabeled = [v for v in train_all if not labels[v]]
    if unlabeled:
        notes.append(
            f"{len(unlabeled)} training videos have no action and are skipped "
            "(weak supervision needs at least one label per video)"
        )
        log(notes[-1])
        train_all = [v for v in train_all if labels[v]]
    if not train_all:
        raise EmptySplitError(
            f"no training video of subset {data.train_subset!r} is both stored and labelled",
            hint="check the store's videos against the annotation file",
        )
    if len(train_all) < 2:
        raise EmptySplitError(
            f"only {len(train_all)} usable training video; a validation split needs at least 2",
            hint="add training videos",
        )
    train_ids, val_ids = carve_validation(train_all, labels, data.val_fraction, data.val_seed)
    if not val_ids or not train_ids:
        raise EmptySplitError(
            f"validation fraction {data.val_fraction} of {len(train_all)} videos leaves an "
            "empty train or validation split",
            hint="change data.val_fraction",
        )
    if config.eval.predict_split == "test" and not test_all:
        raise EmptySplitError(
            f"the test subset {data.test_subset!r} has no stored video",
            hint=f"subsets in the file: {subsets}; set data.test_subset, or eval.predict_split: null",
        )

    trained = {lab for v in train_all for lab in labels[v]}
    tested = {lab for v in test_all for lab in dataset.videos[v].labels}
    unseen = sorted(tested - trained)
    if unseen:
        raise ClassMismatchError(
            f"{len(unseen)} classes of the test split never occur in training: {_ids_line(unseen)}",
            hint="train and test must share one class list; check the subsets and the file",
        )

    if not config.ensemble:  # members never concatenate, so need not align
        source.check_alignment(train_ids + val_ids + test_all)
    return PreparedData(dataset, classes, source, train_ids, val_ids, test_all, notes)


def check_same_classes(run_classes: Sequence[str], dataset: Dataset, where: str) -> None:
    """A model trained on one class list cannot be scored against another."""
    if list(run_classes) != list(dataset.classes):
        extra = sorted(set(dataset.classes) - set(run_classes))
        lost = sorted(set(run_classes) - set(dataset.classes))
        detail = []
        if extra:
            detail.append(f"new: {_ids_line(extra)}")
        if lost:
            detail.append(f"absent: {_ids_line(lost)}")
        if not detail:
            detail.append("same names in a different order")
        raise ClassMismatchError(
            f"the class list of {where} ({len(dataset.classes)} classes) differs from the one "
            f"the model was trained on ({len(run_classes)}): {'; '.join(detail)}",
            hint="predict with the annotation file the run was trained with",
        )
