"""Reading a feature set: lazy, sliceable views over one snapshot of the store.

Nothing is loaded until sliced: ``video.stream("rgb")[a:b]`` reads only the chunks that
cover snippets a..b, which is what training's random crops need.

Every read is checked (:mod:`talkit.store.integrity`): a video's attrs against their
digest when it is opened, each array's shape, dtype and layout against those attrs, each
chunk against its crc32c, and, for arrays written before chunks had checksums, a whole
array against the sha256 recorded when it was written. Whatever fails, and any error of
zarr, icechunk or a codec while reading, is raised as a one-line CorruptDataError.
"""

from __future__ import annotations

import asyncio
import operator
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import zarr
from zarr import AsyncArray
from zarr.core.sync import sync

from talkit.store import fastread
from talkit.store.chunk_cache import ChunkCache
from talkit.store.codecs import quiet_codec_warnings
from talkit.store.errors import (
    FeatureSetNotFoundError,
    StoreError,
    VideoNotFoundError,
)
from talkit.store.integrity import (
    ATTRS_DIGEST,
    cause_line,
    check_array,
    check_attrs,
    check_content,
    corrupt,
    library_error,
    read_error,
    reading,
)
from talkit.store.spec import (
    STATUS_COMPLETE,
    TIMESTAMPS,
    FeatureSetSpec,
    StorageOptions,
    check_video_id,
)

_DAMAGED = "damaged"  # the status of a video whose attrs fail their digest


def _valid_video_id(name: str) -> bool:
    try:
        check_video_id(name)
    except StoreError:
        return False
    return True


@dataclass(frozen=True)
class ReadContext:
    """What every read of one open store shares: where it is, whether to check, its cache."""

    url: str = ""
    verify: bool = True
    cache: ChunkCache | None = None


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
    """One (T, D) array of one video; index it like a numpy array to read."""

    def __init__(self, array: zarr.Array, name: str, video: VideoFeatures) -> None:
        self._array = array
        self.name = name
        self._video = video
        self._context = video.feature_set.context
        self.path = f"{video.path}/{name}"
        self._plan: fastread.ArrayPlan | bool | None = False  # False: not planned yet

    @property
    def plan(self) -> fastread.ArrayPlan | None:
        """The lean read path for this array, or None when zarr's own path must read it."""
        if self._plan is False:
            ctx = self._context
            self._plan = (
                fastread.plan(self._array, ctx.cache, verify=ctx.verify, url=ctx.url)
                if fastread.ENABLED
                else None
            )
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
        if rows is not None:
            return self._rows(*rows)
        if self.plan is None:
            with reading(self._context.url, self.path):
                return np.asarray(self._array[key])
        return self._select(key)

    def _rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start..stop`` (``0 <= start <= stop <= T``), checked."""
        plan = self.plan
        if plan is not None:
            data = fastread.read_rows([plan], start, stop, joint=False)[0]
        else:
            with reading(self._context.url, self.path):
                data = np.asarray(self._array[start:stop])
        if (start, stop) == (0, len(self)):
            self._video.check_whole(self.name, data, plan)
        return data

    def _select(self, key: Any) -> np.ndarray:
        """Any other numpy index: the rows it touches are read through the lean path."""
        n = len(self)
        first, rest = (key[0], key[1:]) if isinstance(key, tuple) else (key, ())
        if first is Ellipsis or first is None or any(k is Ellipsis or k is None for k in rest):
            return self._rows(0, n)[key]
        if isinstance(first, int | np.integer):
            i = operator.index(first)
            if not -n <= i < n:
                raise IndexError(f"index {i} is out of bounds for {self.path} with {n} snippets")
            i %= n
            return self._rows(i, i + 1)[(0, *rest)]
        if isinstance(first, slice):
            picked = range(*first.indices(n))
            if not picked:
                return self._rows(0, 0)[(slice(None), *rest)]
            lo, hi = min(picked), max(picked) + 1
            return self._rows(lo, hi)[(slice(picked.start - lo, None, picked.step), *rest)]
        picked_rows = np.arange(n)[first]  # index arrays and boolean masks, as numpy does
        if picked_rows.size == 0:
            return self._rows(0, 0)[(picked_rows, *rest)]
        lo, hi = int(picked_rows.min()), int(picked_rows.max()) + 1
        return self._rows(lo, hi)[(picked_rows - lo, *rest)]

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
        return f"StreamView({self.path}, shape={self.shape}, dtype={self.dtype})"


class VideoFeatures:
    """The features of one video: its streams, timestamps and attrs."""

    def __init__(
        self,
        group: zarr.Group,
        video_id: str,
        feature_set: FeatureSet,
        attrs: dict[str, Any] | None = None,
    ) -> None:
        self._group = group
        self.id = video_id
        self.feature_set = feature_set
        self.path = f"{feature_set.key}/{video_id}"
        self._attrs = attrs
        self._streams: dict[str, StreamView] = {}
        self._timestamps: np.ndarray | None = None

    @property
    def attrs(self) -> dict[str, Any]:
        """Source (path, size, sha256), native fps, frame count, duration, status, ..."""
        if self._attrs is None:
            with reading(self.feature_set.context.url, self.path):
                self._attrs = dict(self._group.attrs)
        return self._attrs

    @property
    def sealed(self) -> bool:
        """Whether this video was written with chunk checksums and an attrs digest."""
        return ATTRS_DIGEST in self.attrs

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
            self._streams[name] = self._view(self._open_array(name), name)
        return self._streams[name]

    def _open_array(self, name: str) -> zarr.Array:
        """Open one array of this video, with errors that name it."""
        url = self.feature_set.context.url
        try:
            with quiet_codec_warnings():
                array = self._group[name]
        except KeyError as exc:
            if self.sealed:  # it was written: the store lost it
                raise corrupt(url, f"{self.path}/{name}", "the array is missing") from exc
            raise StoreError(
                f"video {self.id} in {self.feature_set.key} lacks its {name!r} array"
            ) from exc
        except ImportError as exc:  # a codec whose package is not installed
            raise StoreError(
                f"cannot decode {self.feature_set.key}/{self.id}/{name}: {exc}",
                hint=f"install the codec package (storage: {self.feature_set.storage.codec})",
            ) from exc
        except BaseException as exc:  # metadata that does not parse, an unreadable manifest
            if not library_error(exc):
                raise
            raise read_error(url, f"{self.path}/{name}", exc) from exc
        if not isinstance(array, zarr.Array):
            raise corrupt(url, f"{self.path}/{name}", "it is a group, not an array")
        return array

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

        try:
            with quiet_codec_warnings():
                opened = sync(gather())
        except BaseException as exc:
            if not library_error(exc):
                raise
            return
        for name, array in zip(missing, opened, strict=True):
            if isinstance(array, AsyncArray):
                self._streams[name] = self._view(zarr.Array(array), name)

    def _view(self, array: zarr.Array, name: str) -> StreamView:
        self._check_array(array, name)
        return StreamView(array, name, self)

    def _check_array(self, array: zarr.Array, name: str) -> None:
        """An array's metadata must agree with the video's attrs (and, sealed, its layout)."""
        fs = self.feature_set
        rows = self.attrs.get("num_snippets")
        if name == TIMESTAMPS:
            dim, dtype = 2, np.dtype("float64")
            layout = ((rows, 2), None) if isinstance(rows, int) else None
        else:
            dim, dtype = fs.spec.streams[name], np.dtype(fs.spec.dtype)
            layout = fs.storage.chunking(rows, dim) if isinstance(rows, int) else None
        check_array(
            fs.context.url,
            f"{self.path}/{name}",
            array,
            shape=(rows, dim) if isinstance(rows, int) else None,
            dtype=dtype,
            sealed=self.sealed,
            layout=layout,
        )

    def check_whole(
        self, name: str, data: np.ndarray, plan: fastread.ArrayPlan | None, *, force: bool = False
    ) -> None:
        """Compare a whole array with the sha256 recorded when it was written.

        Skipped when every chunk was checked against its checksum on the way (``plan``
        with checksums), unless ``force``; ``talkit store verify`` forces it.
        """
        if not (self.feature_set.context.verify or force):
            return
        if plan is not None and plan.checksum and plan.verify and not force:
            return
        expected = (self.attrs.get("content_sha256") or {}).get(name)
        check_content(self.feature_set.context.url, f"{self.path}/{name}", data, expected)

    @property
    def timestamps(self) -> np.ndarray:
        """(T, 2) snippet start and end, in seconds."""
        if self._timestamps is None:
            view = self._view(self._open_array(TIMESTAMPS), TIMESTAMPS)
            self._timestamps = view.read()
        return self._timestamps

    def timestamps_view(self) -> StreamView:
        """The timestamps as a lazy view (what ``talkit store verify`` reads)."""
        return self._view(self._open_array(TIMESTAMPS), TIMESTAMPS)

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
            parts = fastread.read_rows(plans, *span, joint=joint)  # type: ignore[arg-type]
        elif len(views) == 1:
            return [views[0][rows]]  # the view checks a whole read itself
        else:
            arrays = [v.zarr_array.async_array for v in views]

            async def gather() -> list[Any]:
                return await asyncio.gather(*(a.getitem((rows, slice(None))) for a in arrays))

            with reading(self.feature_set.context.url, self.path):
                parts = [np.asarray(part) for part in sync(gather())]
            if joint:
                parts = [np.concatenate(parts, axis=1)]
        if span is not None and span == (0, len(views[0])):
            self._check_parts(views, plans, parts, joint)
        return parts

    def _check_parts(
        self,
        views: list[StreamView],
        plans: list[fastread.ArrayPlan | None],
        parts: list[np.ndarray],
        joint: bool,
    ) -> None:
        """Whole-array checks of a read that covered every snippet of these streams."""
        column = 0
        for i, (view, p) in enumerate(zip(views, plans, strict=True)):
            dim = view.shape[1]
            data = parts[0][:, column : column + dim] if joint else parts[i]
            column += dim
            self.check_whole(view.name, data, p)

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
        self,
        group: zarr.Group,
        dataset: str,
        name: str,
        context: ReadContext | None = None,
    ) -> None:
        self._group = group
        self.dataset = dataset
        self.name = name
        self.key = f"{dataset}/{name}"
        self.context = context or ReadContext()
        with reading(self.context.url, self.key):
            attrs = dict(group.attrs)
        check_attrs(self.context.url, self.key, attrs, verify=self.context.verify)
        if "spec" not in attrs:
            raise FeatureSetNotFoundError(
                f"{self.key} is a group without a feature-set spec",
                hint="it was not created by talkit; create feature sets with create_feature_set",
            )
        self.spec = FeatureSetSpec.from_attrs(attrs["spec"], where=self.key)
        try:
            self.storage = StorageOptions.from_attrs(attrs.get("storage", {}))
        except ValueError as exc:
            raise corrupt(
                self.context.url, self.key, f"its storage attrs are invalid ({cause_line(exc)})"
            ) from exc
        self._status: dict[str, str] | None = None
        self._videos: dict[str, VideoFeatures] = {}  # a snapshot never changes: cache handles

    @property
    def chunk_cache(self) -> ChunkCache | None:
        """The open store's chunk cache, shared by its feature sets."""
        return self.context.cache

    def _statuses(self) -> dict[str, str]:
        """Video id -> status; a video not complete whose attrs say it was written is damaged."""
        if self._status is None:
            status: dict[str, str] = {}
            with reading(self.context.url, self.key):
                for name, child in self._group.groups():
                    attrs = child.attrs
                    value = str(attrs.get("status", ""))
                    if value != STATUS_COMPLETE and ATTRS_DIGEST in attrs:
                        value = _DAMAGED  # it was written complete: its attrs changed since
                    elif not _valid_video_id(name):
                        value = _DAMAGED  # the writer checks every id: its name changed
                    status[name] = value
            self._status = status
        return self._status

    def videos(self) -> list[str]:
        """Ids of the videos whose arrays are all written, sorted.

        Videos whose attrs were damaged are listed too (reading them raises), so that an
        export or a training run does not skip them silently.
        """
        return sorted(v for v, s in self._statuses().items() if s in (STATUS_COMPLETE, _DAMAGED))

    def incomplete(self) -> list[str]:
        """Ids of half-written videos (only a plain zarr store can have them)."""
        return sorted(
            v for v, s in self._statuses().items() if s not in (STATUS_COMPLETE, _DAMAGED)
        )

    def __len__(self) -> int:
        return len(self.videos())

    def __contains__(self, video_id: object) -> bool:
        return self._statuses().get(str(video_id)) in (STATUS_COMPLETE, _DAMAGED)

    def __iter__(self) -> Iterator[VideoFeatures]:
        for video_id in self.videos():
            yield self.video(video_id)

    def video(self, video_id: str) -> VideoFeatures:
        """The features of one complete video (its attrs checked against their digest)."""
        cached = self._videos.get(video_id)
        if cached is not None:
            return cached
        path = f"{self.key}/{video_id}"
        with reading(self.context.url, path):
            try:
                group = self._group[video_id]
            except KeyError:
                group = None
            attrs = dict(group.attrs) if isinstance(group, zarr.Group) else {}
        if not isinstance(group, zarr.Group):
            self._find_damage(f"video {video_id!r} is not in it")
            raise VideoNotFoundError(
                f"video {video_id!r} is not in feature set {self.key}",
                hint=f"it has {len(self)} videos; list them with `.videos()`",
            )
        check_attrs(self.context.url, path, attrs, verify=self.context.verify)
        digest = attrs.get(ATTRS_DIGEST)
        if attrs.get("status") != STATUS_COMPLETE:
            if digest is not None:
                raise corrupt(
                    self.context.url,
                    path,
                    f"its status is {attrs.get('status')!r}, but it was written complete",
                )
            raise VideoNotFoundError(
                f"video {video_id!r} in {self.key} is incomplete (a writer stopped mid-way)",
                hint="write it again with overwrite=True",
            )
        video = VideoFeatures(group, video_id, self, attrs)
        self._videos[video_id] = video
        return video

    def _find_damage(self, context: str) -> None:
        """Raise CorruptDataError if the listing holds a video already known to be damaged.

        Asked when a video is not found: a damaged name looks like a missing video. Only
        what the listing shows is checked (no video is opened), so a miss stays cheap.
        """
        for video_id, status in self._statuses().items():
            if status == _DAMAGED:
                raise corrupt(
                    self.context.url,
                    f"{self.key}/{video_id}",
                    f"{context}; this video's name or status was damaged",
                )

    @property
    def group(self) -> zarr.Group:
        """The underlying zarr group."""
        return self._group

    def __repr__(self) -> str:
        return f"FeatureSet({self.key}, backbone={self.spec.backbone!r}, videos={len(self)})"
