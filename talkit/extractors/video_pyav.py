"""PyAV backend: reads anything FFmpeg reads, keeps going past errors, honours rotation.

Why this backend exists next to decord: decord refuses truncated files and mis-rotates
phone videos, and it stops at the first decoder error. PyAV decodes on past damage,
which is what lets us say *how much* of a file is lost, and it gives exact integer
timestamps.

Colours: every frame goes to RGB through FFmpeg's swscale with the colour matrix and
range the stream declares, exactly as ``ffmpeg -i X -pix_fmt rgb24`` does, so the
frames equal what ffmpeg, decord and ``cv2.VideoCapture`` give bit for bit (tested on
limited-range BT.601, full-range ``yuvj420p`` and BT.709 videos). OpenCV's
``COLOR_YUV2RGB_I420``, used here before, assumes limited-range BT.601 and rounds
differently (off by up to 21 levels on limited-range video, 30 on full range, 70 on
BT.709), and this FFmpeg's swscale is faster than it anyway (benchmarks/decode.py).
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
from av.video.reformatter import ColorRange, Interpolation, VideoReformatter

from talkit.extractors.damage import DecodeLog
from talkit.extractors.resample import to_fraction
from talkit.extractors.video import SourceFrame, VideoMeta, VideoReader, _unreadable

# Decoded frames are held this many frames before being handed on, so that a decoder
# error discovered late (B-frames are decoded after the frames they precede) can still
# withdraw frames that come after the damage.
HOLD_FRAMES = 8
# A fixed frame-thread count, not "one per core": with frame threads a decoder error
# surfaces up to DECODE_THREADS - 1 packets late, and the suspect window below depends
# on it. Fixing it keeps the kept prefix of a damaged file the same on every machine.
DECODE_THREADS = 4
QUEUE_EVENTS = 8  # decoded-frame events buffered between the decoder thread and the reader
# swscale threads per conversion. One: slice threads cost more CPU than they save on
# small frames (0.65 against 0.93 frames per CPU-second relative to ffmpeg at 320x240,
# benchmarks/decode.py), and extraction runs one worker per core anyway.
SWS_THREADS = 1
# ffmpeg's command line converts with these swscale flags; they choose the chroma filter
# wherever swscale does not take its exact unscaled path (e.g. 10-bit input).
_SWS_FLAGS = Interpolation.BICUBIC
_ROTATE = {1: cv2.ROTATE_90_COUNTERCLOCKWISE, 2: cv2.ROTATE_180, 3: cv2.ROTATE_90_CLOCKWISE}


@dataclass(frozen=True)
class ContainerInfo:
    """The container's claims, read without decoding more than one frame."""

    path: str
    container: str
    codec: str
    coded_width: int
    coded_height: int
    rotation: int
    fps: Fraction
    num_frames: int
    frames_estimated: bool
    duration_s: float
    time_base: Fraction
    pix_fmt: str = ""  # of the first decoded frame ("" when unknown)

    def meta(self, backend: str, note: str = "") -> VideoMeta:
        swap = (self.rotation // 90) % 2 == 1
        w, h = (
            (self.coded_height, self.coded_width) if swap else (self.coded_width, self.coded_height)
        )
        return VideoMeta(
            path=self.path,
            fps=float(self.fps),
            num_frames=self.num_frames,
            duration_s=self.duration_s,
            width=w,
            height=h,
            codec=self.codec,
            rotation=self.rotation,
            backend=backend,
            container=self.container,
            fps_exact=f"{self.fps.numerator}/{self.fps.denominator}",
            frames_estimated=self.frames_estimated,
            backend_note=note,
        )


def _open(path: Path) -> av.container.InputContainer:
    if path.stat().st_size == 0:
        raise _unreadable(str(path), "the file is empty (0 bytes)")
    try:
        return av.open(str(path), mode="r")
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise _unreadable(str(path), f"FFmpeg cannot open it ({exc})") from exc


def probe_container(path: Path) -> ContainerInfo:
    """Read the container's claims (fps, frames, duration, size, codec, rotation)."""
    container = _open(path)
    try:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["none"]
            raise _unreadable(
                str(path),
                f"it has no video stream (streams: {', '.join(kinds)})",
                hint="pass a file that contains video",
            )
        stream = container.streams.video[0]
        ctx = stream.codec_context
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = to_fraction(Fraction(rate)) if rate else Fraction(25)
        tb = Fraction(stream.time_base) if stream.time_base else Fraction(1, 1000)
        if stream.duration:
            duration = float(stream.duration * tb)
        elif container.duration:
            duration = container.duration / 1_000_000
        else:
            duration = 0.0
        frames = int(stream.frames or 0)
        estimated = frames <= 0
        if estimated:
            frames = round(duration * float(fps))
        rotation, pix_fmt = _first_frame_facts(container, stream)
        return ContainerInfo(
            path=str(path),
            container=container.format.name,
            codec=ctx.name,
            coded_width=int(ctx.width),
            coded_height=int(ctx.height),
            rotation=rotation,
            fps=fps,
            num_frames=frames,
            frames_estimated=estimated,
            duration_s=duration,
            time_base=tb,
            pix_fmt=pix_fmt or (ctx.format.name if ctx.format else ""),
        )
    finally:
        container.close()


def _first_frame_facts(container: Any, stream: Any) -> tuple[int, str]:
    """Display rotation (counter-clockwise degrees) and pixel format of the first
    decodable frame ((0, "") when none decodes)."""
    try:
        for packet in container.demux(stream):
            try:
                for frame in packet.decode():
                    rot = round(frame.rotation) % 360 // 90 * 90 if frame.rotation else 0
                    return rot, frame.format.name
            except av.FFmpegError:
                continue
    except av.FFmpegError:
        return 0, ""
    return 0, ""


def source_range(frame: av.VideoFrame) -> int:
    """The colour range a frame declares, as ffmpeg reads it: ``yuvj*`` formats and
    frames flagged full range are full (0-255); everything else is limited (16-235)."""
    if frame.color_range == ColorRange.JPEG or frame.format.name.startswith("yuvj"):
        return ColorRange.JPEG
    return ColorRange.MPEG


def frame_to_rgb(
    frame: av.VideoFrame, rot_k: int = 0, reformatter: VideoReformatter | None = None
) -> np.ndarray:
    """Decoded frame -> upright (H, W, 3) uint8 RGB, as ``ffmpeg -pix_fmt rgb24`` gives it.

    The matrix (BT.601 when unspecified, BT.709, ...) and the range come from the frame,
    which carries what the stream declares; the output is full-range RGB. A reader passes
    its own ``reformatter`` so swscale's context is set up once, not per frame (about a
    fifth of the conversion's CPU time at 320x240).
    """
    rgb = (
        (reformatter or VideoReformatter())
        .reformat(
            frame,
            format="rgb24",
            src_colorspace=frame.colorspace,
            src_color_range=source_range(frame),
            dst_color_range=ColorRange.JPEG,
            interpolation=_SWS_FLAGS,
            threads=SWS_THREADS,
        )
        .to_ndarray()
    )
    if rot_k:
        rgb = cv2.rotate(rgb, _ROTATE[rot_k])
    return rgb


class PyAVReader(VideoReader):
    """Sequential PyAV decoding with frame threads; damage is measured, not skipped."""

    def __init__(self, path: Path, info: ContainerInfo, note: str = "") -> None:
        super().__init__(info.meta("pyav", note), info.time_base)
        self.info = info
        self._rot_k = (info.rotation // 90) % 4
        self._reformatter = VideoReformatter()  # used by the consuming thread only

    def _to_rgb(self, item: Any) -> np.ndarray:
        return frame_to_rgb(item, self._rot_k, self._reformatter)

    def _decode(self, log: DecodeLog, end: list[int | None]) -> Iterator[SourceFrame]:
        container = _open(Path(self.meta.path))
        try:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            stream.codec_context.thread_count = DECODE_THREADS
            if Fraction(stream.time_base) != self.time_base:
                raise AssertionError(f"{self.meta.path}: time base changed between opens")
            tb = float(self.time_base)
            fallback_dur = self._fallback_duration(stream)
            hold: deque[tuple[int, int, av.VideoFrame]] = deque()  # (pts, duration, frame)
            state = {"pts0": None, "last": None, "stopped": False}

            def release(item: tuple[int, int, av.VideoFrame]) -> SourceFrame | None:
                pts, dur, frame = item
                ticks = pts - state["pts0"]
                bad = log.first_bad_s
                if state["stopped"] or (bad is not None and ticks * tb >= bad - 1e-9):
                    state["stopped"] = True
                    return None
                if state["last"] is not None and pts <= state["last"]:
                    return None  # non-increasing timestamp: not a new picture in time
                state["last"] = pts
                log.kept += 1
                end[0] = ticks + dur
                return SourceFrame(ticks, frame)

            def on_frames(frames: list[av.VideoFrame]) -> Iterator[SourceFrame]:
                for frame in frames:
                    pts = frame.pts
                    if pts is None:
                        pts = hold[-1][0] + hold[-1][1] if hold else 0
                    dur = frame.duration or fallback_dur
                    log.decoded += 1
                    if state["pts0"] is None:
                        state["pts0"] = pts  # decoders emit in presentation order
                    p0 = state["pts0"]
                    log.last_time_s = (pts - p0) * tb
                    log.last_end_s = (pts - p0 + dur) * tb
                    if frame.is_corrupt:
                        log.note_error((pts - p0) * tb, "a frame decoded as corrupt")
                    hold.append((pts, dur, frame))
                    while len(hold) > HOLD_FRAMES:
                        out = release(hold.popleft())
                        if out is not None:
                            yield out

            # Demuxing and decoding run in a thread (PyAV releases the GIL while FFmpeg
            # works), so the decoder's frame threads stay busy while this thread
            # converts frames to RGB; events keep errors and frames in decode order.
            events: queue.Queue = queue.Queue(maxsize=QUEUE_EVENTS)
            stop = threading.Event()
            producer = threading.Thread(
                target=_produce,
                args=(container, stream, events, stop),
                name="talkit-pyav-decode",
                daemon=True,
            )
            producer.start()
            try:
                while True:
                    event = events.get()
                    if event[0] == "frames":
                        yield from on_frames(event[1])
                    elif event[0] == "error":
                        _, at_pts, what = event
                        if at_pts is None:
                            at = log.last_end_s
                        else:
                            p0 = state["pts0"] if state["pts0"] is not None else 0
                            at = (at_pts - p0) * tb
                        log.note_error(at, what)
                    elif event[0] == "fatal":
                        raise event[1]
                    else:  # "end", with the count of packets the container discards
                        log.discarded = event[1]
                        break
                while hold:
                    out = release(hold.popleft())
                    if out is not None:
                        yield out
            finally:
                stop.set()
                producer.join()
        finally:
            container.close()

    def _fallback_duration(self, stream: Any) -> int:
        """Ticks one frame lasts when the container gives no duration (ffmpeg's rule)."""
        tb = Fraction(stream.time_base)
        rate = stream.codec_context.framerate or stream.average_rate
        if rate:
            return max(0, round(1 / (Fraction(rate) * tb)))
        return 0


def _produce(container: Any, stream: Any, events: queue.Queue, stop: threading.Event) -> None:
    """Decoder thread: demux and decode in file order; post frames and errors as events.

    An error's position is the earliest timestamp among the last DECODE_THREADS + 1
    packets: with frame threads an error surfaces up to DECODE_THREADS - 1 packets
    late, and damage rarely starts on a packet boundary (the packet before the failing
    one may hold the first bad bytes and decode "fine" into a garbage picture).
    """

    def put(event: tuple) -> bool:
        while not stop.is_set():
            try:
                events.put(event, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    try:
        recent: deque[int] = deque(maxlen=DECODE_THREADS + 1)  # pts, decode order
        discarded = 0
        packets = container.demux(stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.FFmpegError as exc:
                if not put(("error", None, f"reading the container failed: {exc}")):
                    return
                break
            if packet.size == 0 and packet.pts is None:
                continue  # PyAV's end-of-stream marker; the decoder is flushed below
            discarded += packet.is_discard  # decoded, never shown (edit lists)
            if packet.pts is not None:
                recent.append(packet.pts)
            try:
                frames = packet.decode()
            except av.FFmpegError as exc:
                at = min(recent) if recent else None
                if not put(("error", at, f"{type(exc).__name__}: {exc}")):
                    return
                continue
            if frames and not put(("frames", frames)):
                return
        try:
            frames = stream.codec_context.decode(None)
        except av.FFmpegError as exc:
            frames = []
            if not put(("error", None, f"{type(exc).__name__}: {exc}")):
                return
        if frames and not put(("frames", frames)):
            return
        put(("end", discarded))
    except BaseException as exc:  # handed to the consuming thread, raised there
        put(("fatal", exc))
