"""Video readers: one interface, three backends (decord, PyAV, frame folders).

Why one interface: the sampler, the transforms and the damage checks should not care
where frames come from. Every backend yields upright RGB frames (H, W, 3) uint8 in
presentation order with exact integer timestamps, decoding sequentially (never a seek
per frame), and reports what it decoded so damage is never silent.

- ``pyav`` is the default for files (``backend="auto"``). It reads anything FFmpeg
  reads, keeps decoding past errors (so damage can be measured exactly and the
  decodable prefix is deterministic), honours display rotation, and gives exact
  timestamps. RGB conversion is FFmpeg's swscale with the stream's colour matrix and
  range, as ``ffmpeg -pix_fmt rgb24`` does, while a background thread decodes
  (benchmarks/decode.py measures it against ffmpeg).
- ``decord`` is available on request, and ``auto`` falls back to it (recording why in
  ``meta.backend_note``) when PyAV cannot open a file. It cannot open truncated files,
  mis-handles rotation and MP4 edit lists (both refused), and stops at the first
  decoder error. Its colours equal ffmpeg's for the 8-bit pixel formats in
  ``DECORD_EXACT_FORMATS``; other formats (10-bit, ...) are refused, not converted
  differently.
- ``frames`` reads a directory of JPEG/PNG frames at a frame rate you give.

Timestamps for resampling always come from the container as integers in its time base
(decord's own timestamps are float32 and drift on long videos).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np

from talkit.errors import InputError, VideoDecodeError
from talkit.extractors.damage import Damage, DecodeLog, classify
from talkit.extractors.resample import Passthrough, Resampler, to_fraction

Backend = Literal["auto", "decord", "pyav", "frames"]
BACKENDS = ("auto", "decord", "pyav", "frames")

# How every backend turns decoded pictures into RGB. Recorded in each feature set's spec
# (``params.frames``) so that features from before this conversion (OpenCV's I420 path,
# off by up to 70 levels on some videos) are never resumed into the same set unnoticed.
FRAME_COLOURS = "rgb24 as ffmpeg converts it: swscale with the stream's range and matrix"
# Pixel formats whose decord frames were measured equal to ``ffmpeg -pix_fmt rgb24`` bit
# for bit (tests/test_video_colour.py); decord's bundled FFmpeg converts others (10-bit,
# ...) with a different filter than the FFmpeg PyAV uses, so they are refused.
DECORD_EXACT_FORMATS = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuv444p"})


@dataclass(frozen=True)
class VideoMeta:
    """What the container claims about a video (before any full decode).

    ``width``/``height`` are the displayed size (after rotation). ``rotation`` is the
    display rotation in counter-clockwise degrees (ffprobe's convention); frames are
    always returned upright. ``num_frames`` is the container's frame count, or an
    estimate from duration x fps when the container has none (``frames_estimated``).
    """

    path: str
    fps: float
    num_frames: int
    duration_s: float
    width: int
    height: int
    codec: str
    rotation: int
    backend: str
    container: str = ""
    fps_exact: str = ""
    frames_estimated: bool = False
    backend_note: str = ""

    @property
    def fps_fraction(self) -> Fraction:
        return Fraction(self.fps_exact) if self.fps_exact else to_fraction(self.fps)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Frame(NamedTuple):
    """One output frame: its index and time at the output rate, and its source frame."""

    index: int
    source_index: int
    time_s: float
    source_time_s: float
    rgb: np.ndarray


class SourceFrame(NamedTuple):
    """A decoded frame as a backend hands it over (``item`` is converted lazily)."""

    ticks: int  # timestamp from the first frame, in the reader's ``time_base``
    item: Any


class VideoReader(ABC):
    """Base class: a backend implements ``_decode`` and ``_to_rgb``; the rest is shared."""

    meta: VideoMeta

    def __init__(self, meta: VideoMeta, time_base: Fraction) -> None:
        self.meta = meta
        self.time_base = time_base  # unit of SourceFrame.ticks
        self.damage: Damage | None = None
        self.log = DecodeLog()

    # -- backend hooks -------------------------------------------------------------
    @abstractmethod
    def _decode(self, log: DecodeLog, end: list[int | None]) -> Iterator[SourceFrame]:
        """Yield undamaged frames in presentation order; fill ``log`` and ``end[0]``
        (the end of the last yielded frame, in ticks)."""

    @abstractmethod
    def _to_rgb(self, item: Any) -> np.ndarray:
        """Convert a backend item to an upright (H, W, 3) uint8 RGB array."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release decoder resources (backends that hold any override this)."""

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- shared logic --------------------------------------------------------------
    def iter_frames(
        self, fps: float | Fraction | None = None, *, tolerate_damage: bool = False
    ) -> Iterator[Frame]:
        """Decode sequentially and yield frames, resampled to ``fps`` if given.

        Resampling follows ffmpeg's ``fps`` filter frame for frame (see
        :mod:`talkit.extractors.resample`). Damage raises
        :class:`~talkit.errors.VideoDecodeError` after the last good frame, unless
        ``tolerate_damage`` is set: then the decodable prefix is yielded and the report
        is left in ``self.damage``.
        """
        for _, frame in self.iter_frames_multi([fps], tolerate_damage=tolerate_damage):
            yield frame

    def iter_frames_multi(
        self, rates: Sequence[float | Fraction | None], *, tolerate_damage: bool = False
    ) -> Iterator[tuple[int, Frame]]:
        """Decode once and resample to several rates: yield (position in ``rates``, Frame).

        Why: several backbones with their own fps need one decode, not one each. Each
        rate gets exactly the frames :meth:`iter_frames` gives for it. Frames come in
        source order: every output of source frame j, rate by rate in the order given,
        before any output of frame j + 1. Each source frame is converted to RGB once,
        and only if some rate shows it. Damage is handled as in :meth:`iter_frames`.
        """
        self.damage = None
        self.log = log = DecodeLog()
        end: list[int | None] = [None]
        targets = [to_fraction(r) if r is not None else None for r in rates]
        rules = [Resampler(self.time_base, t) if t is not None else Passthrough() for t in targets]
        previous: SourceFrame | None = None
        index = -1
        for j, src in enumerate(self._decode(log, end)):
            outputs = [rule.push(src.ticks) for rule in rules]
            if previous is not None:
                yield from self._outputs(previous, index, outputs, targets)
            previous, index = src, j
        if previous is not None:
            outputs = [rule.finish(end[0]) for rule in rules]
            yield from self._outputs(previous, index, outputs, targets)
        self.damage = self._finish(log)
        if self.damage is not None and not tolerate_damage:
            raise self.damage.to_error()

    def _outputs(
        self,
        src: SourceFrame,
        index: int,
        outputs: list[range],
        targets: list[Fraction | None],
    ) -> Iterator[tuple[int, Frame]]:
        """The output frames that show source frame ``index``, rate by rate."""
        rgb: np.ndarray | None = None
        source_t = src.ticks * self.time_base.numerator / self.time_base.denominator
        for r, (out, target) in enumerate(zip(outputs, targets, strict=True)):
            for k in out:
                if rgb is None:
                    rgb = self._to_rgb(src.item)
                # Output times: the correctly rounded float of k / fps.
                t = k * target.denominator / target.numerator if target is not None else source_t
                yield r, Frame(k, index, t, source_t, rgb)

    def _finish(self, log: DecodeLog) -> Damage | None:
        m = self.meta
        return classify(
            log,
            path=m.path,
            expected=m.num_frames,
            expected_is_estimate=m.frames_estimated,
            claimed_end_s=m.duration_s,
            period_s=1.0 / m.fps if m.fps > 0 else 0.0,
        )

    def check(self) -> Damage | None:
        """Decode everything without RGB conversion; return the damage report or None."""
        self.log = log = DecodeLog()
        end: list[int | None] = [None]
        for _ in self._decode(log, end):
            pass
        self.damage = self._finish(log)
        return self.damage


def _unreadable(path: str, why: str, hint: str | None = None) -> VideoDecodeError:
    return VideoDecodeError(
        f"{path} is unreadable: {why}",
        kind="unreadable",
        path=path,
        frames_decoded=0,
        frames_expected=None,
        hint=hint or "check that the file is a complete video; re-download or re-encode it",
    )


def open_video(
    path: str | Path,
    *,
    backend: Backend = "auto",
    fps_for_frames: float | Fraction | None = None,
) -> VideoReader:
    """Open a video file or a frame folder; the chosen backend is in ``meta.backend``.

    ``auto`` uses PyAV, and decord when PyAV cannot open the file (the reason is
    recorded in ``meta.backend_note``); a directory is read as a frame folder at
    ``fps_for_frames``. Raises ``InputError`` for a missing path or bad
    options and ``VideoDecodeError(kind="unreadable")`` for files that cannot be read.
    """
    if backend not in BACKENDS:
        raise InputError(f"unknown video backend {backend!r}", hint=f"use one of {BACKENDS}")
    p = Path(path)
    if not p.exists():
        raise InputError(f"video not found: {p}", hint="check the path")
    if p.is_dir() or backend == "frames":
        from talkit.extractors.video_frames import FrameFolderReader

        if backend not in ("auto", "frames"):
            raise InputError(f"{p} is a directory: only the 'frames' backend reads frame folders")
        return FrameFolderReader(p, fps=fps_for_frames)

    from talkit.extractors.video_decord import DecordReader, DecordUnavailable, DecordUnsuitable
    from talkit.extractors.video_pyav import PyAVReader, probe_container

    if backend == "decord":
        try:
            info = probe_container(p)
        except VideoDecodeError:
            info = None  # PyAV cannot read it; decord may still
        if info is not None and info.rotation % 360 != 0:
            raise InputError(
                f"{p}: decord ignores the display rotation ({info.rotation} degrees)",
                hint="use backend='pyav' or 'auto'",
            )
        if info is not None and info.pix_fmt and info.pix_fmt not in DECORD_EXACT_FORMATS:
            raise InputError(
                f"{p}: decord would convert its {info.pix_fmt} pixels to RGB differently "
                "from ffmpeg (colours exact only for "
                f"{', '.join(sorted(DECORD_EXACT_FORMATS))})",
                hint="use backend='pyav' or 'auto'",
            )
        try:
            return DecordReader(p, info)
        except DecordUnsuitable as exc:
            raise InputError(f"{p}: {exc}", hint="use backend='pyav' or 'auto'") from exc
        except DecordUnavailable as exc:
            raise _unreadable(str(p), f"decord cannot open it ({exc})") from exc
    try:
        info = probe_container(p)
    except VideoDecodeError as exc:
        if backend == "pyav":
            raise
        try:  # auto: PyAV cannot open it; try decord's own FFmpeg build
            reader = DecordReader(p, None)
        except DecordUnavailable:
            raise exc from None
        reader.meta = replace(reader.meta, backend_note=f"PyAV could not open it ({exc.message})")
        return reader
    return PyAVReader(p, info)
