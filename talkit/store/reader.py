"""Reading a feature set: lazy, sliceable views over one snapshot of the store.

Nothing is loaded until sliced: ``video.stream("rgb")[a:b]`` reads only the chunks that
cover snippets a..b, which is what training's random crops need.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from functools import cached_property
from typing import Any

import numpy as np
import zarr
from zarr import AsyncArray
from zarr.core.sync import sync

from talkit.store import fastread
from talkit.store.chunk_cache import ChunkCache
from talkit.store.codecs import quiet_codec_warnings
from talkit.store.errors import FeatureSetNotFoundError, StoreError, VideoNotFoundError
from talkit.store.spec import (
    STATUS_COMPLETE,
    TIMESTAMPS,
    FeatureSetSpec,
    StorageOptions,
)


def _row_range(key: Any, rows: int) -> tuple[int, int] | None:
    """``(start, stop)`` when ``key`` selects a contiguous run of whole rows, else None."""
    if isinstance(key, tuple):
        if (len(key) == 2 and isinstance(key[1], slice) and key[1] == slice(None)) or len(key) == 1:
            key = key[0]
        else:
            return None
    if key is Ellipsis:
        return 0, rows
    if not isinstance(key, slice) or key.step not in (None, 1):
        return None
    start, stop, _ = key.indices(rows)
    return start, max(start, stop)


class StreamView:
    """One (T, D) stream of one video; index it like a numpy array to read."""

    def __init__(
        self, array: zarr.Array, name: str, where: str, cache: ChunkCache | None = None
    ) -> None:
        self._array = array
        self.name = name
        self._where = where
        self._cache = cache
        self._plan: fastread.ArrayPlan | bool | None = False  # False: not planned yet

    @property
    def plan(self) -> fastread.ArrayPlan | None:
        """The lean read path for this array, or None when zarr's own path must read it."""
        if self._plan is False:
            self._plan = fastread.plan(self._array, self._cache) if fastread.ENABLED else None
        return self._plan  # type: ignore[return-value]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._array.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self._array.dtype)

    def __len__(self) -> int:
        return int(self._array.shape[0])

    def __getitem__(self, key: Any) -> np.ndarray:
        rows = _row_range(key, len(self))
        plan = self.plan
        if rows is not None and plan is not None:
            return fastread.read_rows([plan], *rows, joint=False)[0]
        return np.asarray(self._array[key])

    def read(self) -> np.ndarray:
        """The whole (T, D) array."""
        return self[:]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        data = self.read()
        return data if dtype is None else data.astype(dtype, copy=False)

    @property
    def zarr_array(self) -> zarr.Array:
        """The underlying zarr array (chunking, codecs, stored bytes)."""
        return self._array

    def __repr__(self) -> str:
        return f"StreamView({self._where}/{self.name}, shape={self.shape}, dtype={self.dtype})"


class VideoFeatures:
    """The features of one video: its streams, timestamps and attrs."""

    def __init__(self, group: zarr.Group, video_id: str, feature_set: FeatureSet) -> None:
        self._group = group
        self.id = video_id
        self.feature_set = feature_set
        self._streams: dict[str, StreamView] = {}

    @cached_property
    def attrs(self) -> dict[str, Any]:
        """Source (path, size, sha256), native fps, frame count, duration, status, ..."""
        return dict(self._group.attrs)

    @property
    def streams(self) -> list[str]:
        """Stream names in the feature set's order (the joint-feature order)."""
        return list(self.feature_set.spec.streams)

    @property
    def num_snippets(self) -> int:
        return int(self.attrs.get("num_snippets", len(self.stream(self.streams[0]))))

    def __len__(self) -> int:
        return self.num_snippets

    def stream(self, name: str) -> StreamView:
        """A lazy view of one stream (``rgb``, ``flow``, ...)."""
        if name not in self._streams:
            if name not in self.feature_set.spec.streams:
                raise StoreError(
                    f"feature set {self.feature_set.key} has no stream {name!r}",
                    hint=f"streams are: {', '.join(self.streams)}",
                )
            try:
                with quiet_codec_warnings():
                    array = self._group[name]
            except KeyError as exc:
                raise StoreError(
                    f"video {self.id} in {self.feature_set.key} lacks its {name!r} array"
                ) from exc
            except ImportError as exc:  # a codec whose package is not installed
                raise StoreError(
                    f"cannot decode {self.feature_set.key}/{self.id}/{name}: {exc}",
                    hint=f"install the codec package (storage: {self.feature_set.storage.codec})",
                ) from exc
            self._streams[name] = self._view(array, name)
        return self._streams[name]

    def _open_streams(self, names: list[str]) -> None:
        """Open the arrays of several streams in one round trip (a first read pays it once).

        Anything that fails here is left for :meth:`stream`, which raises the clear error.
        """
        missing = [
            n for n in names if n not in self._streams and n in self.feature_set.spec.streams
        ]
        if len(missing) < 2:
            return
        where = self._group.store_path

        async def gather() -> list[Any]:
            return await asyncio.gather(
                *(AsyncArray.open(where / n, zarr_format=3) for n in missing),
                return_exceptions=True,
            )

        with quiet_codec_warnings():
            opened = sync(gather())
        for name, array in zip(missing, opened, strict=True):
            if isinstance(array, AsyncArray):
                self._streams[name] = self._view(zarr.Array(array), name)

    def _view(self, array: zarr.Array, name: str) -> StreamView:
        where = f"{self.feature_set.key}/{self.id}"
        return StreamView(array, name, where, self.feature_set.chunk_cache)

    @cached_property
    def timestamps(self) -> np.ndarray:
        """(T, 2) snippet start and end, in seconds."""
        return np.asarray(self._group[TIMESTAMPS][...])

    def read(self, streams: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Whole arrays of the given streams (all by default)."""
        names = list(streams or self.streams)
        return dict(zip(names, self._read_concurrently(names, slice(None)), strict=True))

    def _read_concurrently(
        self, names: list[str], rows: slice, *, joint: bool = False
    ) -> list[np.ndarray]:
        """Read the same rows of several streams in one round trip to the store.

        Each read has a fixed cost (a hop to zarr's I/O loop, chunk lookups); reading the
        streams together pays it once. With ``joint`` the result is one array with the
        streams side by side, written in place (no concatenation copy).
        """
        self._open_streams(names)
        views = [self.stream(n) for n in names]
        plans = [v.plan for v in views]
        span = _row_range(rows, len(views[0]))
        if (
            span is not None
            and all(p is not None for p in plans)
            and len({(p.rows, p.dtype) for p in plans if p is not None}) == 1
        ):
            return fastread.read_rows(plans, *span, joint=joint)  # type: ignore[arg-type]
        if len(views) == 1:
            parts = [np.asarray(views[0].zarr_array[rows])]
        else:
            arrays = [v.zarr_array.async_array for v in views]

            async def gather() -> list[Any]:
                return await asyncio.gather(*(a.getitem((rows, slice(None))) for a in arrays))

            parts = [np.asarray(part) for part in sync(gather())]
        if joint and len(parts) > 1:
            return [np.concatenate(parts, axis=1)]
        return parts

    def features(
        self,
        streams: Sequence[str] | None = None,
        start: int | None = None,
        stop: int | None = None,
    ) -> np.ndarray:
        """Snippets start..stop of the streams, concatenated along dim ([rgb, flow] order)."""
        names = list(streams or self.streams)
        return self._read_concurrently(names, slice(start, stop), joint=True)[0]

    def __repr__(self) -> str:
        return f"VideoFeatures({self.feature_set.key}/{self.id}, T={self.num_snippets})"


class FeatureSet:
    """A ``dataset/feature_set`` group: its spec and its complete videos."""

    def __init__(
        self, group: zarr.Group, dataset: str, name: str, chunk_cache: ChunkCache | None = None
    ) -> None:
        self._group = group
        self.dataset = dataset
        self.name = name
        self.key = f"{dataset}/{name}"
        self.chunk_cache = chunk_cache  # the open store's, shared by its feature sets
        attrs = dict(group.attrs)
        if "spec" not in attrs:
            raise FeatureSetNotFoundError(
                f"{self.key} is a group without a feature-set spec",
                hint="it was not created by talkit; create feature sets with create_feature_set",
            )
        self.spec = FeatureSetSpec.from_attrs(attrs["spec"], where=self.key)
        self.storage = StorageOptions.from_attrs(attrs.get("storage", {}))
        self._status: dict[str, str] | None = None
        self._videos: dict[str, VideoFeatures] = {}  # a snapshot never changes: cache handles

    def _statuses(self) -> dict[str, str]:
        if self._status is None:
            self._status = {
                name: str(child.attrs.get("status", "")) for name, child in self._group.groups()
            }
        return self._status

    def videos(self) -> list[str]:
        """Ids of the videos whose arrays are all written, sorted."""
        return sorted(v for v, s in self._statuses().items() if s == STATUS_COMPLETE)

    def incomplete(self) -> list[str]:
        """Ids of half-written videos (only a plain zarr store can have them)."""
        return sorted(v for v, s in self._statuses().items() if s != STATUS_COMPLETE)

    def __len__(self) -> int:
        return len(self.videos())

    def __contains__(self, video_id: object) -> bool:
        return self._statuses().get(str(video_id)) == STATUS_COMPLETE

    def __iter__(self) -> Iterator[VideoFeatures]:
        for video_id in self.videos():
            yield self.video(video_id)

    def video(self, video_id: str) -> VideoFeatures:
        """The features of one complete video."""
        cached = self._videos.get(video_id)
        if cached is not None:
            return cached
        try:
            group = self._group[video_id]
        except KeyError:
            group = None
        if not isinstance(group, zarr.Group):
            raise VideoNotFoundError(
                f"video {video_id!r} is not in feature set {self.key}",
                hint=f"it has {len(self)} videos; list them with `.videos()`",
            )
        if group.attrs.get("status") != STATUS_COMPLETE:
            raise VideoNotFoundError(
                f"video {video_id!r} in {self.key} is incomplete (a writer stopped mid-way)",
                hint="write it again with overwrite=True",
            )
        video = VideoFeatures(group, video_id, self)
        self._videos[video_id] = video
        return video

    @property
    def group(self) -> zarr.Group:
        """The underlying zarr group."""
        return self._group

    def __repr__(self) -> str:
        return f"FeatureSet({self.key}, backbone={self.spec.backbone!r}, videos={len(self)})"
