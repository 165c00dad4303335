"""decord backend: sequential decoding with fast RGB output.

Why: decord decodes and converts to RGB at about ffmpeg's own speed. Two of its habits
are worked around here:

- its timestamps are float32 (they drift by tens of microseconds after ten minutes,
  enough to flip a nearest-frame decision), so exact integer timestamps are read from
  the container's packets with PyAV instead;
- ``get_batch`` seeks, which is slow for every-other-frame patterns, so frames are read
  strictly in order with ``next()`` and subsampled afterwards;
- it logs to the process's stderr on its own (FFmpeg's messages, and its C++ core's
  ``video_reader.cc:83: ERROR opening: ...`` lines) besides raising, so FFmpeg's logging
  is turned off through decord's logging API and the C++ lines are caught around opening a
  file: the user sees talkit's one-line error, which already carries decord's reason.

Frames leave decord through DLPack into a NumPy view (no copy, no torch import). decord
0.6 works with NumPy 2.x; its own ``asnumpy()`` works too but copies every frame.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from talkit.extractors.damage import DecodeLog
from talkit.extractors.resample import to_fraction
from talkit.extractors.video import SourceFrame, VideoReader
from talkit.extractors.video_pyav import ContainerInfo


class DecordUnavailable(Exception):
    """decord cannot (or should not) read this file; the caller may fall back to PyAV."""


class DecordUnsuitable(DecordUnavailable):
    """decord opens the file but would return wrong frames (e.g. MP4 edit lists)."""


# A line decord's C++ core (``[16:17:01] /.../video_reader.cc:83: ERROR ...``) or its
# FFmpeg (``[mov,mp4,m4a @ 0x55...] moov atom not found``) writes to stderr itself.
_FD2_LOCK = threading.Lock()  # one redirection of fd 2 at a time, process-wide
_DECORD_LOG_LINE = re.compile(rb"^\[\d\d:\d\d:\d\d\] \S+:\d+: |^\[[^\]\n]* @ 0x[0-9a-f]+\] ")


def _import_decord() -> Any:
    try:
        import decord
    except ImportError as exc:  # pragma: no cover - decord is a dependency
        raise DecordUnavailable(f"decord is not installed ({exc})") from exc
    decord.logging.set_level(decord.logging.QUIET)  # talkit reports damage itself
    return decord


@contextmanager
def _decord_logs_caught() -> Iterator[None]:
    """Keep the lines decord's C++ code writes to file descriptor 2 off the terminal.

    fd 2 goes to a temporary file while the block runs; afterwards every line that is
    not one of decord's log lines is written to the real stderr, so output of other
    threads in the meantime is delayed, not lost.
    """
    with _FD2_LOCK, tempfile.TemporaryFile() as caught:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            kept = [ln for ln in caught.read().splitlines(True) if not _DECORD_LOG_LINE.match(ln)]
            if kept:
                os.write(2, b"".join(kept))


def _open_decord(decord: Any, path: Path, num_threads: int) -> Any:
    """``decord.VideoReader`` with its own stderr lines caught (its exception keeps them)."""
    with _decord_logs_caught():
        return decord.VideoReader(str(path), num_threads=num_threads)


def _packet_timeline(path: Path) -> tuple[list[int], list[bool], int, Fraction] | None:
    """Presentation timestamps (ticks, sorted), which of them an edit list discards, the
    last frame's duration, and the time base."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            tb = Fraction(stream.time_base)
            rows = [
                (p.pts, p.duration or 0, bool(p.is_discard))
                for p in container.demux(stream)
                if p.pts is not None
            ]
            rate = stream.codec_context.framerate or stream.average_rate
    except (av.FFmpegError, IndexError):
        return None
    shown = [r for r in rows if not r[2]]
    if not shown:
        return None
    rows.sort()
    last_dur = max(shown)[1]
    if not last_dur and rate:
        last_dur = max(0, round(1 / (Fraction(rate) * tb)))
    return [r[0] for r in rows], [r[2] for r in rows], last_dur, tb


class _DLPackFrame:
    """Adapts a decord NDArray (which only has ``to_dlpack()``) to NumPy's DLPack
    protocol, so frames become NumPy views without a copy and without importing torch."""

    __slots__ = ("nd",)

    def __init__(self, nd: Any) -> None:
        self.nd = nd

    def __dlpack__(self, stream: Any = None, **kwargs: Any) -> Any:
        return self.nd.to_dlpack()

    def __dlpack_device__(self) -> tuple[int, int]:
        return (1, 0)  # kDLCPU, device 0


def _short(exc: BaseException) -> str:
    """decord's messages carry a timestamp and source path per line; keep the gist."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()] or [repr(exc)]
    return re.sub(r"^\[[0-9:]+\]\s+\S+:\d+:\s*", "", lines[-1])[:200]


def _info_from_decord(path: Path, vr: Any) -> ContainerInfo:
    """Container claims as decord sees them (when PyAV cannot open the file)."""
    n = len(vr)
    h, w = vr[0].shape[:2]
    vr.seek(0)
    fps = to_fraction(vr.get_avg_fps() or 25.0)
    last = vr.get_frame_timestamp([n - 1])[0]
    return ContainerInfo(
        path=str(path),
        container="unknown (read by decord)",
        codec="unknown",
        coded_width=int(w),
        coded_height=int(h),
        rotation=0,
        fps=fps,
        num_frames=n,
        frames_estimated=False,
        duration_s=float(last[1]),
        time_base=Fraction(1, 1_000_000),
    )


class DecordReader(VideoReader):
    """Sequential decord decoding; timestamps from the container's packets."""

    def __init__(self, path: Path, info: ContainerInfo | None, num_threads: int = 0) -> None:
        decord = _import_decord()
        self._decord = decord
        self._num_threads = num_threads
        try:
            vr = _open_decord(decord, path, num_threads)
        except (decord.DECORDError, RuntimeError) as exc:
            raise DecordUnavailable(_short(exc)) from exc
        n = len(vr)
        if n == 0:
            raise DecordUnavailable("decord found no frames")
        if info is None:
            info = _info_from_decord(path, vr)
        timeline = _packet_timeline(path)
        if timeline is not None and any(timeline[1]):
            raise DecordUnsuitable(
                f"its edit list hides {sum(timeline[1])} frames, which decord decodes "
                "and returns out of place"
            )
        if timeline is not None and len(timeline[0]) == n:
            pts, _, last_dur, tb = timeline
        else:
            # The container's packets and decord's index disagree: use decord's clock.
            tb = info.time_base
            stamps = vr.get_frame_timestamp(range(n))
            pts = [round(Fraction(float(s)) / tb) for s in stamps[:, 0]]
            last_dur = round(Fraction(float(stamps[-1, 1] - stamps[-1, 0])) / tb)
        super().__init__(info.meta("decord"), tb)
        self.info = info
        self._vr: Any = vr
        self._pts = pts
        self._last_dur = last_dur
        self._tb = tb
        self._path = path

    def close(self) -> None:
        self._vr = None

    def _to_rgb(self, item: Any) -> np.ndarray:
        return np.from_dlpack(_DLPackFrame(item))

    def _decode(self, log: DecodeLog, end: list[int | None]) -> Iterator[SourceFrame]:
        decord = self._decord
        vr = self._vr
        self._vr = None  # a reader is used once; iterate again -> reopen from the start
        if vr is None:
            vr = _open_decord(decord, self._path, self._num_threads)
        pts, tb = self._pts, float(self._tb)
        p0 = pts[0]
        for j in range(len(pts)):
            ticks = pts[j] - p0
            try:
                frame = vr.next()
            except StopIteration:
                break
            except (decord.DECORDError, RuntimeError) as exc:
                log.note_error(ticks * tb, f"decord: {_short(exc)}")
                log.stopped_early = True
                break
            dur = (pts[j + 1] - pts[j]) if j + 1 < len(pts) else self._last_dur
            log.decoded += 1
            log.kept += 1
            log.last_time_s = ticks * tb
            log.last_end_s = (ticks + dur) * tb
            end[0] = ticks + dur
            yield SourceFrame(ticks, frame)
