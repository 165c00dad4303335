"""Where training features come from: a store's feature sets, or arrays in memory.

A :class:`FeatureSource` is a picklable description; ``open()`` gives a
:class:`FeatureReader` for the calling process. Only the URL and names of a store source
are pickled, so every dataloader worker opens its own store handle. Several feature sets
are concatenated per snippet ([set 1, set 2, ...], each in its stream order) only when
their timestamps agree; otherwise :class:`FeatureAlignmentError` names the video and the
snippet.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from cachetools import LRUCache

from talkit.errors import InputError, StoreError

STREAM_CHOICES = ("rgb", "flow", "both", "all")


class FeatureAlignmentError(StoreError):
    """Feature sets that cannot be concatenated: their snippets cover different times."""


def resolve_streams(
    selection: str | Sequence[str], available: Sequence[str], where: str
) -> list[str]:
    """Stream names for a selection: rgb, flow, both (rgb+flow), all, or explicit names."""
    if isinstance(selection, str):
        if selection == "all":
            return list(available)
        names = ["rgb", "flow"] if selection == "both" else selection.split(",")
    else:
        names = list(selection)
    missing = [n for n in names if n not in available]
    if missing:
        raise InputError(
            f"feature set {where} has no stream {', '.join(map(repr, missing))} "
            f"(it has {', '.join(available)})",
            hint="choose data.streams from those, or 'all' for every stream",
        )
    return names


class FeatureReader:
    """An open handle: read snippets and timestamps of one video (joined across sets)."""

    def num_snippets(self, video_id: str) -> int:
        raise NotImplementedError

    def timestamps(self, video_id: str) -> np.ndarray:
        raise NotImplementedError

    def read(self, video_id: str, start: int | None = None, stop: int | None = None) -> np.ndarray:
        raise NotImplementedError


class FeatureSource:
    """A picklable description of features; ``open()`` gives a reader (one per worker)."""

    dim: int
    dims: dict[str, int]  # feature set -> dim it contributes

    def video_ids(self) -> list[str]:
        raise NotImplementedError

    def open(self) -> FeatureReader:
        raise NotImplementedError

    def check_alignment(self, video_ids: Iterable[str]) -> None:
        """Raise FeatureAlignmentError if the sets disagree on any video's snippets."""


class ArrayFeatureSource(FeatureSource, FeatureReader):
    """Features held in memory: ``{video_id: (T, D) array}`` and their timestamps.

    The baseline for the loader benchmark, and handy for features that came from elsewhere.
    Without timestamps, snippet i covers [i·step, (i+1)·step) seconds.
    """

    def __init__(
        self,
        features: Mapping[str, np.ndarray],
        timestamps: Mapping[str, np.ndarray] | None = None,
        *,
        step_s: float = 16 / 25,
        name: str = "memory",
    ) -> None:
        self._features = {k: np.asarray(v, dtype=np.float32) for k, v in features.items()}
        if not self._features:
            raise InputError("no features given to ArrayFeatureSource")
        dims = {v.shape[1] for v in self._features.values()}
        if len(dims) != 1:
            raise InputError(f"in-memory features have different dims {sorted(dims)}")
        self.dim = dims.pop()
        self.dims = {name: self.dim}
        self._timestamps: dict[str, np.ndarray] = {}
        for vid, feats in self._features.items():
            if timestamps is not None and vid in timestamps:
                self._timestamps[vid] = np.asarray(timestamps[vid], dtype=np.float64)
            else:
                s = np.arange(len(feats)) * step_s
                self._timestamps[vid] = np.stack([s, s + step_s], axis=1)

    def video_ids(self) -> list[str]:
        return sorted(self._features)

    def open(self) -> ArrayFeatureSource:
        return self

    def num_snippets(self, video_id: str) -> int:
        return len(self._features[video_id])

    def timestamps(self, video_id: str) -> np.ndarray:
        return self._timestamps[video_id]

    def read(self, video_id: str, start: int | None = None, stop: int | None = None) -> np.ndarray:
        return self._features[video_id][start:stop]


def _open_store(url: str, version: str | None) -> Any:
    from talkit.store import FeatureStore  # the store component's one entry point

    return FeatureStore.open(url, version=version)


class StoreFeatureSource(FeatureSource):
    """Feature sets of a store (``"thumos14/i3d"``), streams chosen per set, concatenated.

    Only the URL, version and names are pickled, so each dataloader worker opens its own
    handle on first use. ``cache_mb`` > 0 keeps up to that many MB of decoded videos per
    process (least recently used out first): training revisits every video each epoch, and
    decoding compressed chunks costs more than the forward pass of a small head.
    """

    def __init__(
        self,
        url: str,
        feature_sets: Sequence[str],
        *,
        streams: str | Sequence[str] = "all",
        version: str | None = None,
        tolerance_s: float = 0.01,
        cache_mb: float = 0,
    ) -> None:
        from talkit.store.spec import split_feature_set

        if not feature_sets:
            raise InputError("no feature set given", hint="e.g. data.feature_sets: [thumos14/i3d]")
        self.url = str(url)
        self.version = version
        self.feature_sets = list(feature_sets)
        self.tolerance_s = tolerance_s
        self.cache_mb = cache_mb
        store = _open_store(self.url, version)
        self.streams: dict[str, list[str]] = {}
        self.dims = {}
        self.specs: dict[str, Any] = {}
        ids: set[str] | None = None
        for key in self.feature_sets:
            dataset, name = split_feature_set(key)
            fs = store.feature_set(dataset, name)
            spec = fs.spec
            self.specs[key] = spec
            self.streams[key] = resolve_streams(streams, list(spec.streams), key)
            self.dims[key] = sum(spec.streams[s] for s in self.streams[key])
            vids = set(fs.videos())
            ids = vids if ids is None else ids & vids
        self.dim = sum(self.dims.values())
        self._ids = sorted(ids or ())
        self._reader: StoreReader | None = None

    def video_ids(self) -> list[str]:
        """Videos complete in every feature set."""
        return list(self._ids)

    def open(self) -> StoreReader:
        if self._reader is None:
            self._reader = StoreReader(self)
        return self._reader

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_reader"] = None  # never ship an open store to a worker
        return state

    def check_alignment(self, video_ids: Iterable[str]) -> None:
        if len(self.feature_sets) < 2:
            return
        reader = self.open()
        for vid in video_ids:
            reader.aligned_timestamps(vid)


class StoreReader(FeatureReader):
    """An open store handle for one process; caches timestamps and, if asked, videos."""

    def __init__(self, source: StoreFeatureSource) -> None:
        from talkit.store.spec import split_feature_set

        self.source = source
        store = _open_store(source.url, source.version)
        self._sets = [store.feature_set(*split_feature_set(k)) for k in source.feature_sets]
        self._ts: dict[str, np.ndarray] = {}
        self._budget = int(source.cache_mb * 2**20)
        # Decoded videos, least recently read dropped past the budget (in bytes).
        self._cache: LRUCache[str, np.ndarray] = LRUCache(
            maxsize=max(self._budget, 1), getsizeof=lambda a: a.nbytes
        )

    def _video(self, i: int, video_id: str) -> Any:
        return self._sets[i].video(video_id)

    def aligned_timestamps(self, video_id: str) -> np.ndarray:
        if video_id in self._ts:
            return self._ts[video_id]
        keys = self.source.feature_sets
        first = np.asarray(self._video(0, video_id).timestamps, dtype=np.float64)
        for i in range(1, len(keys)):
            other = np.asarray(self._video(i, video_id).timestamps, dtype=np.float64)
            if other.shape != first.shape:
                raise FeatureAlignmentError(
                    f"video {video_id}: {keys[0]} has {len(first)} snippets but {keys[i]} has "
                    f"{len(other)}, so their features cannot be concatenated per snippet",
                    hint="extract both with the same fps, clip length and stride, or train one "
                    "model per feature set (ensemble: true)",
                )
            diff = np.abs(other - first)
            if diff.max(initial=0.0) > self.source.tolerance_s:
                j = int(np.flatnonzero(diff.max(axis=1) > self.source.tolerance_s)[0])
                raise FeatureAlignmentError(
                    f"video {video_id}: snippet {j} covers {first[j].round(3).tolist()} s in "
                    f"{keys[0]} but {other[j].round(3).tolist()} s in {keys[i]}",
                    hint="extract both with the same fps, clip length and stride, or train one "
                    "model per feature set (ensemble: true)",
                )
        self._ts[video_id] = first
        return first

    def num_snippets(self, video_id: str) -> int:
        return len(self.timestamps(video_id))

    def timestamps(self, video_id: str) -> np.ndarray:
        return self.aligned_timestamps(video_id)

    def _read_store(self, video_id: str, start: int | None, stop: int | None) -> np.ndarray:
        parts = [
            self._video(i, video_id).features(self.source.streams[key], start, stop)
            for i, key in enumerate(self.source.feature_sets)
        ]
        out = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
        return np.asarray(out, dtype=np.float32)

    def read(self, video_id: str, start: int | None = None, stop: int | None = None) -> np.ndarray:
        if self._budget <= 0:
            return self._read_store(video_id, start, stop)
        whole = self._cache.get(video_id)  # a hit becomes the most recently used
        if whole is None:
            whole = self._read_store(video_id, None, None)
            if whole.nbytes <= self._budget:  # one video larger than the budget is not kept
                self._cache[video_id] = whole
        return whole[start:stop]


def feature_stats(
    source: FeatureSource, video_ids: Sequence[str], *, per_video: int = 64, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Per-dim mean and std over up to ``per_video`` random snippets of each video.

    A sample keeps this cheap on large stores; the std has a small floor so constant
    dims do not blow up.
    """
    reader = source.open()
    rng = np.random.default_rng(seed)
    total = np.zeros(source.dim)
    total_sq = np.zeros(source.dim)
    count = 0
    for vid in video_ids:
        x = reader.read(vid).astype(np.float64)
        if len(x) > per_video:
            x = x[np.sort(rng.choice(len(x), per_video, replace=False))]
        total += x.sum(0)
        total_sq += (x * x).sum(0)
        count += len(x)
    if count == 0:
        raise InputError("cannot compute feature statistics: no snippets")
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean * mean, 0.0))
    return mean.astype(np.float32), np.maximum(std, 1e-3).astype(np.float32)
