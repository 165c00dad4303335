"""Frame-index signature videos: every frame shows its own index, so decoding is checkable.

Why: frame-exactness (which source frame did the reader hand us for output time t?) can
only be tested if each decoded picture says which frame it was. Each frame here is a
4 x 6 grid of large black/white blocks in the luma plane: 20 bits of frame index plus a
4-bit check nibble. Blocks this big survive any lossy codec at default quality, and the
check nibble turns a mis-read (or a frame that was never a signature frame) into an
error instead of a wrong number.

The writer returns the presentation time of every frame it wrote, in seconds, computed
from the exact rational timestamps it gave the muxer, so tests can compute by themselves
which frame a resampler must pick.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from talkit.datasets.synthetic.videos import X264_REPRODUCIBLE_OPTIONS
from talkit.errors import InputError

GRID_ROWS = 4
GRID_COLS = 6
INDEX_BITS = 20
MAX_INDEX = (1 << INDEX_BITS) - 1
_LOW, _HIGH = 40, 200  # luma levels of a 0 and a 1 block (plus up to 30 of texture)
_CHECK_SALT = 0b1010  # so an all-black (or all-white) frame never reads as valid

# Encoder names for the codec keywords we accept. Each is tried in order.
_ENCODERS: dict[str, tuple[str, ...]] = {
    "h264": ("libx264", "libopenh264", "h264"),
    "mpeg4": ("mpeg4",),
    "vp9": ("libvpx-vp9",),
    "vp8": ("libvpx",),
    "mjpeg": ("mjpeg",),
}


class SignatureError(ValueError):
    """A frame does not carry a valid index signature (wrong frame, rotation or damage)."""


def _check_nibble(index: int) -> int:
    x = _CHECK_SALT
    for shift in range(0, INDEX_BITS, 4):
        x ^= (index >> shift) & 0xF
    return x


def signature_bits(index: int) -> np.ndarray:
    """The (4, 6) 0/1 grid that encodes ``index`` (most significant bit first)."""
    if not 0 <= index <= MAX_INDEX:
        raise InputError(f"signature index {index} is outside 0..{MAX_INDEX}")
    word = (index << 4) | _check_nibble(index)
    nbits = GRID_ROWS * GRID_COLS
    bits = [(word >> (nbits - 1 - k)) & 1 for k in range(nbits)]
    return np.array(bits, dtype=np.uint8).reshape(GRID_ROWS, GRID_COLS)


def read_signature(frame_rgb: np.ndarray) -> int:
    """Read the frame index from an upright decoded frame (H, W, 3) or (H, W) uint8.

    Each block is judged by the mean of its central half, so a little blur, ringing or
    chroma error at block edges does not matter. Raises ``SignatureError`` if the check
    nibble does not match.
    """
    img = np.asarray(frame_rgb)
    if img.ndim == 3:
        img = img.mean(axis=2)
    if img.ndim != 2:
        raise SignatureError(f"expected an (H, W[, 3]) frame, got shape {frame_rgb.shape}")
    h, w = img.shape
    word = 0
    for r in range(GRID_ROWS):
        y0, y1 = r * h / GRID_ROWS, (r + 1) * h / GRID_ROWS
        ya, yb = int(y0 + (y1 - y0) / 4), int(np.ceil(y1 - (y1 - y0) / 4))
        for c in range(GRID_COLS):
            x0, x1 = c * w / GRID_COLS, (c + 1) * w / GRID_COLS
            xa, xb = int(x0 + (x1 - x0) / 4), int(np.ceil(x1 - (x1 - x0) / 4))
            bit = float(img[ya:yb, xa:xb].mean()) > (_LOW + _HIGH + 30) / 2
            word = (word << 1) | int(bit)
    index, check = word >> 4, word & 0xF
    if _check_nibble(index) != check:
        raise SignatureError(
            f"frame does not carry a valid index signature (read word {word:#08x}); "
            "it was mis-decoded, not upright, or not a signature frame"
        )
    return index


def _frame_times(
    num_frames: int, fps: Fraction, vfr: bool, rng: np.random.Generator
) -> tuple[list[Fraction], Fraction]:
    """Exact presentation times (s) of every frame, and how long the last frame lasts."""
    if not vfr:
        return [Fraction(i) / fps for i in range(num_frames)], 1 / fps
    # Irregular intervals between 0.4 and 1.9 nominal frame periods, on a 1/90000 s
    # grid (the MPEG clock), so that rounding by the muxer cannot move them.
    tick = Fraction(1, 90000)
    period_ticks = float(1 / (fps * tick))
    steps = np.maximum(1, np.round(rng.uniform(0.4, 1.9, size=max(num_frames, 1)) * period_ticks))
    ticks = np.concatenate([[0], np.cumsum(steps[:-1])]).astype(np.int64)
    return [int(t) * tick for t in ticks[:num_frames]], int(steps[-1]) * tick


def _open_encoder(container: av.container.OutputContainer, codec: str, fps: Fraction):
    names = _ENCODERS.get(codec, (codec,))
    last: Exception | None = None
    for name in names:
        try:
            return container.add_stream(name, rate=fps)
        except (ValueError, av.FFmpegError) as exc:  # encoder absent in this FFmpeg build
            last = exc
    raise InputError(
        f"no encoder available for codec {codec!r} (tried {', '.join(names)}): {last}",
        hint="use codec='h264', 'mpeg4' or 'vp9'",
    )


def _mux(container: Any, packets: list, last_pts: int, last_ticks: int) -> None:
    for packet in packets:
        if packet.pts == last_pts and last_ticks > 0:
            packet.duration = last_ticks
        container.mux(packet)


def write_signature_video(
    path: str | Path,
    *,
    num_frames: int,
    fps: float | Fraction = 25,
    size: tuple[int, int] = (64, 48),
    codec: str = "h264",
    vfr: bool = False,
    seed: int = 0,
    rotation: int = 0,
    preset: str | None = None,
    texture: bool = True,
) -> list[float]:
    """Write a video whose frame i shows the signature of i; return each frame's time in s.

    ``size`` is (width, height) of the picture as displayed. ``fps`` may be a Fraction
    (29.97 is ``Fraction(30000, 1001)``; a float is converted with ``limit_denominator``).
    ``vfr=True`` gives explicit irregular timestamps (0.4-1.9 nominal periods apart).
    ``rotation`` (0, 90, 180 or -90: counter-clockwise degrees, ffprobe's convention)
    stores the frames rotated and tags the stream with the display matrix, so a reader
    that honours rotation sees upright signatures and one that ignores it does not.
    ``preset`` is passed to libx264 (default ``veryfast``, which uses B-frames; use
    ``ultrafast`` for long, large videos). The texture (seeded noise that slides one
    pixel per frame, so the codec has real motion to encode) depends on ``seed``;
    ``texture=False`` gives flat blocks: tiny files that decode fast, for stress tests.
    """
    if num_frames < 1:
        raise InputError(f"num_frames must be >= 1, got {num_frames} (a video needs a frame)")
    if num_frames - 1 > MAX_INDEX:
        raise InputError(f"num_frames {num_frames} exceeds the signature range {MAX_INDEX + 1}")
    if rotation % 90 != 0:
        raise InputError(f"rotation must be a multiple of 90 degrees, got {rotation}")
    fps_q = fps if isinstance(fps, Fraction) else Fraction(fps).limit_denominator(1001)
    width, height = size
    if width % 2 or height % 2 or width < 24 or height < 16:
        raise InputError(f"size {size} must be even and at least 24x16 for the signature grid")
    rng = np.random.default_rng(seed)
    times, last_duration = _frame_times(num_frames, fps_q, vfr, rng)
    k = (rotation // 90) % 4
    coded_w, coded_h = (height, width) if k % 2 else (width, height)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    container = av.open(str(path), mode="w")
    try:
        stream = _open_encoder(container, codec, fps_q)
        stream.width, stream.height = coded_w, coded_h
        stream.pix_fmt = "yuvj420p" if stream.codec_context.name == "mjpeg" else "yuv420p"
        tick = Fraction(1, 90000) if vfr else 1 / fps_q
        stream.codec_context.time_base = tick
        if stream.codec_context.name == "libx264":
            stream.options = {
                "preset": preset or "veryfast",
                "crf": "23",
                **X264_REPRODUCIBLE_OPTIONS,
            }
        if rotation:
            stream.set_display_rotation(rotation)
        # Texture: seeded noise (0..30 luma); a sliding crop of a larger tile is free.
        tile = rng.integers(0, 31 if texture else 1, size=(height + 64, width + 64), dtype=np.uint8)
        yuv = np.full((coded_h * 3 // 2, coded_w), 128, dtype=np.uint8)
        chroma = np.uint8(rng.integers(96, 160))
        yuv[coded_h:] = chroma
        # The container records how long the last frame lasts (MP4: its last sample
        # duration); readers need it to know where the video ends.
        last_pts = int(times[-1] / tick) if times else -1
        last_ticks = int(last_duration / tick)
        for i, t in enumerate(times):
            cells = np.where(signature_bits(i) == 1, _HIGH, _LOW).astype(np.uint8)
            luma = cv2.resize(cells, (width, height), interpolation=cv2.INTER_NEAREST)
            off = i % 64
            luma = cv2.add(luma, tile[off : off + height, off : off + width])
            yuv[:coded_h] = np.rot90(luma, k=-k) if k else luma
            frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
            frame.time_base = tick
            frame.pts = int(t / tick)
            _mux(container, stream.encode(frame), last_pts, last_ticks)
        _mux(container, stream.encode(), last_pts, last_ticks)
    finally:
        container.close()
    return [float(t) for t in times]


def repeat_video(segment: Path, path: Path, *, segment_s: int, times: int) -> Path:
    """``path``: ``segment`` played ``times`` times, by copying its packets (no re-encode).

    Makes hour-long test videos in seconds. ``segment`` must be ``segment_s`` long and
    start with a key frame with no B-frames across its end (x264 ultrafast), so the
    concatenation is a valid stream; frame contents repeat every segment.
    """
    with av.open(str(segment)) as src:
        s_in = src.streams.video[0]
        packets = [p for p in src.demux(s_in) if p.size]
        seg_ticks = round(Fraction(segment_s) / Fraction(s_in.time_base))
        with av.open(str(path), "w") as dst:
            s_out = dst.add_stream_from_template(s_in)
            for rep in range(times):
                for p in packets:
                    q = av.Packet(bytes(p))
                    q.pts = p.pts + rep * seg_ticks
                    q.dts = p.dts + rep * seg_ticks
                    q.duration = p.duration
                    q.time_base = p.time_base
                    q.is_keyframe = p.is_keyframe
                    q.stream = s_out
                    dst.mux(q)
    return path
