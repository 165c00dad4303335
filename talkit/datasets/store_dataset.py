"""Torch datasets over a feature store: snippets of a video plus its video-level labels.

Training reads straight from the store. A :class:`FeatureSource` says where features come
from (a store URL and feature sets, or in-memory arrays); a :class:`SnippetDataset` joins
it with an annotation :class:`~talkit.datasets.model.Dataset` and applies the sampling each
method uses:

- ``stratified``: BaSNet's training sampling. T bins over the video, one random snippet
  per bin (snippets repeat when the video is shorter than T).
- ``crop``: D2-Net's. A random contiguous window of at most T snippets; shorter videos
  are kept whole and padded in the batch (a mask says which steps are real).
- ``uniform``: BaSNet's test sampling. T evenly spaced snippets, floor(i·L/T).
- ``full``: every snippet, no resampling.

Several feature sets are concatenated per snippet ([set 1, set 2, ...], each in its stream
order) only when their timestamps agree; otherwise :class:`FeatureAlignmentError` says which
video and where. Each dataloader worker opens its own store handle: the dataset pickles the
URL, not the open store.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from talkit.datasets.feature_sources import (
    ArrayFeatureSource,
    FeatureAlignmentError,
    FeatureReader,
    FeatureSource,
    StoreFeatureSource,
    StoreReader,
    feature_stats,
    resolve_streams,
)
from talkit.datasets.model import Dataset
from talkit.errors import InputError, StoreError

__all__ = [
    "SAMPLINGS",
    "ArrayFeatureSource",
    "FeatureAlignmentError",
    "FeatureReader",
    "FeatureSource",
    "Item",
    "SnippetDataset",
    "StoreFeatureSource",
    "StoreReader",
    "collate_items",
    "crop_window",
    "feature_stats",
    "multi_hot",
    "position_times",
    "resolve_streams",
    "stratified_indices",
    "uniform_indices",
]

Sampling = Literal["stratified", "crop", "uniform", "full"]
SAMPLINGS: tuple[str, ...] = ("stratified", "crop", "uniform", "full")
# ---------------------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------------------


def stratified_indices(length: int, num: int, rng: np.random.Generator) -> np.ndarray:
    """``num`` snippet indices, one drawn at random from each of ``num`` equal bins.

    Bin i spans [i·L/num, (i+1)·L/num]; its pick is uniform over the integer snippets from
    floor of its start to floor of its end (inclusive), as BaSNet's training sampler does.
    """
    if length == num:
        return np.arange(num)
    edges = np.arange(num + 1) * length / num
    lo = np.floor(edges[:-1]).astype(np.int64)
    hi = np.floor(edges[1:]).astype(np.int64)
    hi[-1] = length - 1
    hi = np.maximum(np.minimum(hi, length - 1), lo)
    return lo + np.floor(rng.random(num) * (hi - lo + 1)).astype(np.int64)


def uniform_indices(length: int, num: int) -> np.ndarray:
    """``num`` evenly spaced snippet indices, floor(i·L/num)."""
    if length == num:
        return np.arange(num)
    return np.floor(np.arange(num) * length / num).astype(np.int64)


def crop_window(length: int, max_len: int, rng: np.random.Generator) -> tuple[int, int]:
    """A random contiguous [start, stop) of at most ``max_len`` snippets."""
    if length <= max_len:
        return 0, length
    start = int(rng.integers(0, length - max_len + 1))
    return start, start + max_len


def snippet_spans(timestamps: np.ndarray) -> tuple[float, float]:
    """[start, end) in seconds that a video's snippet sequence covers, one stride per snippet.

    Snippet i owns [start_i, start_{i+1}); the last owns one median stride (its clip end when
    there is only one snippet). With stride = clip length this is the clips' own extent.
    """
    starts = timestamps[:, 0]
    if len(starts) == 1:
        return float(timestamps[0, 0]), float(timestamps[0, 1])
    stride = float(np.median(np.diff(starts)))
    return float(starts[0]), float(starts[-1] + stride)


def position_times(
    timestamps: np.ndarray, num_positions: int, indices: np.ndarray | None
) -> np.ndarray:
    """(N, 2) seconds each output position stands for.

    Resampled sequences (uniform/stratified) split the covered span into N equal parts, the
    mapping BaSNet uses to turn CAS positions back into seconds; ``full`` and ``crop`` keep
    each snippet's own stride-long interval.
    """
    t0, t1 = snippet_spans(timestamps)
    if indices is None:
        starts = timestamps[:, 0]
        ends = np.append(starts[1:], t1) if len(starts) > 1 else timestamps[:, 1]
        return np.stack([starts, ends], axis=1)
    edges = t0 + np.arange(num_positions + 1) * (t1 - t0) / num_positions
    return np.stack([edges[:-1], edges[1:]], axis=1)


# ---------------------------------------------------------------------------------------
# The torch Dataset
# ---------------------------------------------------------------------------------------


def multi_hot(labels: Iterable[str], classes: Sequence[str]) -> np.ndarray:
    """Video-level label vector over ``classes``."""
    index = {c: i for i, c in enumerate(classes)}
    y = np.zeros(len(classes), dtype=np.float32)
    for label in labels:
        y[index[label]] = 1.0
    return y


@dataclass
class Item:
    """One sampled video: features (N, D), label (C,), and the seconds each position covers."""

    video_id: str
    features: np.ndarray
    label: np.ndarray
    times: np.ndarray
    num_snippets: int


class SnippetDataset(torch.utils.data.Dataset):
    """Videos of an annotation set, read from a feature source and sampled per method.

    Index it with an int, or with ``(index, seed)`` so random sampling is decided by the
    caller (the training loop's resumable sampler) and not by worker state.
    """

    def __init__(
        self,
        source: FeatureSource,
        annotations: Dataset,
        video_ids: Sequence[str],
        *,
        classes: Sequence[str] | None = None,
        sampling: Sampling = "full",
        num_segments: int = 750,
        seed: int = 0,
    ) -> None:
        if sampling not in SAMPLINGS:
            raise InputError(f"unknown sampling {sampling!r}", hint=f"use one of {SAMPLINGS}")
        self.source = source
        self.classes = list(classes if classes is not None else annotations.classes)
        self.video_ids = list(video_ids)
        self.labels = {
            vid: multi_hot(annotations.videos[vid].labels, self.classes) for vid in self.video_ids
        }
        self.sampling = sampling
        self.num_segments = num_segments
        self.seed = seed

    def __len__(self) -> int:
        return len(self.video_ids)

    def __getitem__(self, key: int | tuple[int, int]) -> Item:
        index, seed = key if isinstance(key, tuple) else (key, self.seed * 1_000_003 + key)
        vid = self.video_ids[index]
        reader = self.source.open()
        ts = reader.timestamps(vid)
        length = len(ts)
        if length == 0:
            raise StoreError(f"video {vid} has no snippets", hint="re-extract it or leave it out")
        rng = np.random.default_rng(seed)
        if self.sampling == "full":
            feats, times = reader.read(vid), position_times(ts, length, None)
        elif self.sampling == "crop":
            a, b = crop_window(length, self.num_segments, rng)
            feats, times = reader.read(vid, a, b), position_times(ts[a:b], b - a, None)
        else:
            idx = (
                stratified_indices(length, self.num_segments, rng)
                if self.sampling == "stratified"
                else uniform_indices(length, self.num_segments)
            )
            lo, hi = int(idx.min()), int(idx.max()) + 1
            feats = reader.read(vid, lo, hi)[idx - lo]
            times = position_times(ts, self.num_segments, idx)
        return Item(vid, feats, self.labels[vid], times, length)


def collate_items(items: list[Item]) -> dict[str, Any]:
    """Stack items, zero-padding to the longest; ``mask`` is None when nothing was padded."""
    lengths = [len(it.features) for it in items]
    t = max(lengths)
    d = items[0].features.shape[1]
    x = np.zeros((len(items), t, d), dtype=np.float32)
    for i, it in enumerate(items):
        x[i, : lengths[i]] = it.features
    mask = None
    if min(lengths) != t:
        m = np.zeros((len(items), t), dtype=bool)
        for i, n in enumerate(lengths):
            m[i, :n] = True
        mask = torch.from_numpy(m)
    return {
        "features": torch.from_numpy(x),
        "mask": mask,
        "labels": torch.from_numpy(np.stack([it.label for it in items])),
        "video_ids": [it.video_id for it in items],
        "times": [it.times for it in items],
        "num_snippets": [it.num_snippets for it in items],
    }
