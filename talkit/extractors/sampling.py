"""Snippet sampling: clip length, stride, tail policy, timestamps, bounded-memory batches.

Why: a feature is only useful if you know which seconds it describes. Frames are first
resampled to the spec's fps (ffmpeg's ``fps`` rule, see resample.py); snippet i then
covers output frames [i*stride, i*stride + clip_len), i.e. the time interval
[i*stride/fps, (i*stride + clip_len)/fps) seconds.

Tail policies for N output frames, clip length L and stride S:

- ``drop`` (the THUMOS / I3D convention): floor((N - L) / S) + 1 snippets when N >= L,
  else none. Frames after the last full snippet are not covered.
- ``pad``: as ``drop``, plus snippets until the last frame is covered; missing frames
  at the end repeat the last frame. A snippet must start inside the video, and a video
  with N >= 1 frames always gets at least one snippet. Its end time is clipped to N/fps.

Frames are decoded sequentially once; each output frame is written straight into the
batch slots of the snippets that contain it (:class:`SnippetAssembler`), so memory holds
at most two batches whatever the video's length.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import numpy as np

from talkit.errors import InputError
from talkit.extractors.damage import Damage
from talkit.extractors.resample import to_fraction
from talkit.extractors.video import Backend, VideoMeta, VideoReader, open_video

TailPolicy = Literal["drop", "pad"]


@dataclass(frozen=True)
class SnippetSpec:
    """How to cut a video into snippets: output fps, clip length and stride in frames."""

    fps: float | Fraction
    clip_len: int
    stride: int
    tail: TailPolicy = "drop"

    def __post_init__(self) -> None:
        if self.clip_len < 1 or self.stride < 1:
            raise InputError(
                f"clip_len and stride must be >= 1 (got {self.clip_len}, {self.stride})"
            )
        if self.tail not in ("drop", "pad"):
            raise InputError(f"unknown tail policy {self.tail!r}", hint="use 'drop' or 'pad'")
        try:
            to_fraction(self.fps)
        except (ValueError, ZeroDivisionError, TypeError) as exc:
            raise InputError(f"invalid snippet fps {self.fps!r}: {exc}") from exc

    @property
    def fps_fraction(self) -> Fraction:
        return to_fraction(self.fps)


def num_snippets(num_frames: int, spec: SnippetSpec) -> int:
    """Snippet count for ``num_frames`` output frames under ``spec`` (see module doc)."""
    n, length, stride = num_frames, spec.clip_len, spec.stride
    if n <= 0:
        return 0
    full = (n - length) // stride + 1 if n >= length else 0
    if spec.tail == "drop":
        return full
    covering = -(-max(n - length, 0) // stride) + 1  # ceil((n - L) / S) + 1
    starting_inside = -(-n // stride)  # ceil(n / S): starts i*S < n
    return max(full, min(covering, starting_inside))


def snippet_timestamps(num_frames: int, spec: SnippetSpec) -> np.ndarray:
    """(T, 2) float64 array of [start, end) seconds of each snippet."""
    count = num_snippets(num_frames, spec)
    fps = spec.fps_fraction
    starts = np.arange(count, dtype=np.int64) * spec.stride
    ends = np.minimum(starts + spec.clip_len, num_frames)
    return np.stack([starts / float(fps), ends / float(fps)], axis=1).reshape(count, 2)


@dataclass
class SnippetBatch:
    """Up to ``batch_size`` consecutive snippets.

    ``frames`` is (B, L, H, W, 3) uint8, or whatever the transform returned for it.
    ``source_frames`` (B, L) names the decoded frame each output frame came from.
    """

    frames: Any
    indices: np.ndarray
    starts_s: np.ndarray
    ends_s: np.ndarray
    source_frames: np.ndarray

    def __len__(self) -> int:
        return int(self.indices.shape[0])


@dataclass
class SnippetStream:
    """Iterator of SnippetBatch; after it ends: frame and snippet counts, damage report."""

    reader: VideoReader
    spec: SnippetSpec
    batch_size: int
    transform: Callable[[np.ndarray], Any] | None = None
    tolerate_damage: bool = False
    num_frames: int | None = None  # output frames, known once the stream is exhausted
    num_snippets: int | None = None
    damage: Damage | None = None
    _it: Iterator[SnippetBatch] | None = field(default=None, repr=False)
    # Buffers of emitted batches; reused once nobody else holds them (see _take_buffer).
    _pool: list[np.ndarray] = field(default_factory=list, repr=False)

    @property
    def meta(self) -> VideoMeta:
        return self.reader.meta

    def __iter__(self) -> Iterator[SnippetBatch]:
        return self

    def __next__(self) -> SnippetBatch:
        if self._it is None:
            self._it = self._run()
        return next(self._it)

    def timestamps(self) -> np.ndarray:
        """(T, 2) start/end seconds of all snippets; valid once the stream is exhausted."""
        if self.num_frames is None:
            raise RuntimeError("timestamps() is known only after the stream is exhausted")
        return snippet_timestamps(self.num_frames, self.spec)

    def _run(self) -> Iterator[SnippetBatch]:
        spatial = getattr(self.transform, "spatial", None)
        finish = getattr(self.transform, "finish", self.transform)
        assembler = SnippetAssembler(self.spec, self.batch_size, finish, self._pool)
        last_rgb: np.ndarray | None = None
        last_src = -1
        try:
            for frame in self.reader.iter_frames(
                self.spec.fps, tolerate_damage=self.tolerate_damage
            ):
                rgb = frame.rgb
                if spatial is not None:
                    if frame.source_index != last_src:
                        last_rgb = spatial(rgb[None])[0]
                    rgb = last_rgb  # type: ignore[assignment]
                last_src = frame.source_index
                batch = assembler.push(frame.index, frame.source_index, rgb)
                if batch is not None:
                    yield batch
        finally:
            self.damage = self.reader.damage
        tail = assembler.end()
        self.num_frames, self.num_snippets = assembler.num_frames, assembler.num_snippets
        yield from tail


class SnippetAssembler:
    """Output frames in, batches of snippets out: the push form of :class:`SnippetStream`.

    Why push: one decode can feed several assemblers (one per backbone). Frames must be
    pushed in order (k = 0, 1, 2...). Each frame is written straight into the batch
    slots of the snippets that contain it; ``push`` returns a batch when its last
    snippet is complete. ``end()`` then gives the last, partly filled batch (and padded
    snippets, under "pad"). Memory: the batches being filled (at most two, unless the
    clip is longer than a batch's stride span) plus two pooled buffers.
    """

    def __init__(
        self,
        spec: SnippetSpec,
        batch_size: int,
        finish: Callable[[np.ndarray], Any] | None = None,
        pool: list[np.ndarray] | None = None,
    ) -> None:
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        self.spec = spec
        self.batch_size = batch_size
        self.finish = finish
        self.num_frames: int | None = None  # output frames, known after end()
        self.num_snippets: int | None = None
        self._fps = float(spec.fps_fraction)
        self._pool = pool if pool is not None else []
        self._batches: dict[int, _Pending] = {}  # batch number -> buffer being filled
        self._next = 0  # batches are emitted in order
        self._n = 0

    def push(self, k: int, source: int, rgb: np.ndarray) -> SnippetBatch | None:
        """Add output frame ``k`` (shown by decoded frame ``source``)."""
        length, stride, bs = self.spec.clip_len, self.spec.stride, self.batch_size
        self._n = k + 1
        # Snippets i with i*S <= k < i*S + L.
        first = max(0, -(-(k - length + 1) // stride))
        for i in range(first, k // stride + 1):
            b = i // bs
            pending = self._batches.get(b)
            if pending is None:
                pending = self._batches[b] = _Pending.create(b, bs, length, rgb, self._pool)
            pending.put(i - b * bs, k - i * stride, rgb, source)
        # Snippet (k - L + 1) / S completes at frame k; its batch is done if it is the last.
        if (k - length + 1) >= 0 and (k - length + 1) % stride == 0:
            done = (k - length + 1) // stride
            if (done + 1) % bs == 0 and done // bs == self._next:
                self._next += 1
                return self._emit(self._batches.pop(self._next - 1), bs)
        return None

    def end(self) -> Iterator[SnippetBatch]:
        """Set the frame and snippet counts now; return the remaining batches."""
        self.num_frames = self._n
        self.num_snippets = num_snippets(self._n, self.spec)
        return self._flush(self.num_snippets)

    def _flush(self, total: int) -> Iterator[SnippetBatch]:
        bs, length, stride = self.batch_size, self.spec.clip_len, self.spec.stride
        while self._next * bs < total:
            pending = self._batches.pop(self._next, None)
            count = min(bs, total - self._next * bs)
            if pending is None:  # cannot happen for drop; pad of a batch never started
                break
            pending.pad_tail(self._next, bs, count, length, stride, self._n)
            yield self._emit(pending, count)
            self._next += 1
        self._batches.clear()

    def oldest_source(self) -> int | None:
        """The earliest decoded frame a batch still being filled holds (None: none is)."""
        if not self._batches:
            return None
        return self._batches[min(self._batches)].first_source

    def frames_held(self) -> int:
        """Frame slots of the batches being filled: what this assembler buffers now."""
        return sum(p.frames.shape[0] * p.frames.shape[1] for p in self._batches.values())

    def _emit(self, pending: _Pending, count: int) -> SnippetBatch:
        spec = self.spec
        idx = pending.batch * self.batch_size + np.arange(count, dtype=np.int64)
        starts = idx * spec.stride
        ends = starts + spec.clip_len
        if self.num_frames is not None:
            ends = np.minimum(ends, self.num_frames)
        frames = pending.frames[:count]
        self._pool.append(pending.frames)
        del self._pool[:-2]
        return SnippetBatch(
            frames=self.finish(frames) if self.finish is not None else frames,
            indices=idx,
            starts_s=starts / self._fps,
            ends_s=ends / self._fps,
            source_frames=pending.sources[:count].copy(),
        )


@dataclass
class _Pending:
    """A batch buffer being filled: frames (B, L, H, W, C) and their source indices."""

    batch: int
    frames: np.ndarray
    sources: np.ndarray
    filled: np.ndarray  # (B,) how many leading frames of each snippet are written
    first_source: int = -1  # the decoded frame of the first frame written

    @classmethod
    def create(
        cls, batch: int, bs: int, length: int, like: np.ndarray, pool: list[np.ndarray]
    ) -> _Pending:
        return cls(
            batch,
            _take_buffer(pool, (bs, length, *like.shape), like.dtype),
            np.full((bs, length), -1, dtype=np.int64),
            np.zeros(bs, dtype=np.int64),
        )

    def put(self, slot: int, pos: int, rgb: np.ndarray, source: int) -> None:
        if self.first_source < 0:
            self.first_source = source
        self.frames[slot, pos] = rgb
        self.sources[slot, pos] = source
        self.filled[slot] = pos + 1

    def pad_tail(self, batch: int, bs: int, count: int, length: int, stride: int, n: int) -> None:
        """Fill the unwritten end of each snippet by repeating its last written frame."""
        for slot in range(count):
            have = int(self.filled[slot])
            if have == 0:  # a snippet starting at/after the end: take the video's last frame
                raise AssertionError("pad policy produced a snippet that starts after the end")
            if have < length:
                self.frames[slot, have:] = self.frames[slot, have - 1]
                self.sources[slot, have:] = self.sources[slot, have - 1]


def _take_buffer(pool: list[np.ndarray], shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """A batch buffer: a pooled one if the consumer has dropped every reference to it.

    Fresh buffers of hundreds of MB cost page faults on every batch; reusing one is safe
    exactly when its reference count shows that only the pool holds it (a transform
    that copied, or a consumer that let go of the batch).
    """
    for k in range(len(pool)):
        buf = pool[k]
        # References: the pool's list slot, ``buf`` and getrefcount's argument.
        if buf.shape == shape and buf.dtype == dtype and sys.getrefcount(buf) <= 3:
            return pool.pop(k)
        del buf
    return np.empty(shape, dtype=dtype)


def iter_snippet_batches(
    video: str | Path | VideoReader,
    spec: SnippetSpec,
    *,
    batch_size: int,
    transform: Callable[[np.ndarray], Any] | None = None,
    tolerate_damage: bool = False,
    backend: Backend = "auto",
    fps_for_frames: float | Fraction | None = None,
) -> SnippetStream:
    """Stream a video as batches of snippets; see the module doc for the conventions.

    ``transform`` gets each (B, L, H, W, 3) uint8 batch. If it has a ``spatial`` method
    (like :class:`~talkit.extractors.transforms.BatchTransform`), that part runs on each
    frame as it is decoded, so resized frames rather than full-size ones are buffered,
    and ``finish`` runs on the batch. After iteration, ``stream.damage`` holds the damage
    report (with ``tolerate_damage=True``; otherwise damage raises VideoDecodeError).
    """
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    if isinstance(video, VideoReader):
        reader = video
    else:
        reader = open_video(video, backend=backend, fps_for_frames=fps_for_frames)
    return SnippetStream(reader, spec, batch_size, transform, tolerate_damage)
