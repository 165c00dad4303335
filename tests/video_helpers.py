"""Helpers for the decoding tests: an independent statement of ffmpeg's fps rule, exact
container timelines read straight from PyAV packets, ffmpeg as an external reference,
and long stress videos built cheaply by repeating an encoded segment."""

from __future__ import annotations

import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from talkit.datasets.synthetic.signature import read_signature, repeat_video, write_signature_video

FFMPEG = shutil.which("ffmpeg")


def round_near(x: Fraction) -> int:
    """Round half away from zero (libavutil's AV_ROUND_NEAR_INF), for x >= 0."""
    floor = x.numerator // x.denominator
    return floor + 1 if x - floor >= Fraction(1, 2) else floor


def reference_selection(times: list[Fraction], end: Fraction, fps: Fraction) -> list[int]:
    """Which source frame each output frame of ffmpeg's ``fps`` filter shows.

    Written as the filter's loop (vf_fps.c, rounding=near), not as a search: source
    frame j is assigned output slot round(t_j * fps); output slot k shows the newest
    frame whose slot is <= k; output stops at round(end * fps).
    """
    slots = [round_near(t * fps) for t in times]
    out: list[int] = []
    current = 0
    for k in range(round_near(end * fps)):
        while current + 1 < len(slots) and slots[current + 1] <= k:
            current += 1
        out.append(current)
    return out


def container_timeline(path: Path) -> tuple[list[Fraction], Fraction]:
    """Exact frame times (s, from the first frame) and end of the last frame, from packets."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        tb = Fraction(stream.time_base)
        pairs = sorted(
            (p.pts, p.duration or 0) for p in container.demux(stream) if p.pts is not None
        )
    p0 = pairs[0][0]
    times = [(p - p0) * tb for p, _ in pairs]
    return times, (pairs[-1][0] - p0 + pairs[-1][1]) * tb


def ffmpeg_fps_indices(path: Path, fps: str, width: int, height: int) -> list[int]:
    """Decode ``path`` through ``ffmpeg -vf fps=...`` and read each output frame's index."""
    assert FFMPEG is not None
    cmd = [FFMPEG, "-v", "error", "-i", str(path), "-vf", f"fps={fps}"]
    cmd += ["-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "gray", "-"]
    raw = subprocess.run(cmd, capture_output=True, check=True, timeout=60).stdout
    frames = np.frombuffer(raw, np.uint8).reshape(-1, height, width)
    return [read_signature(f) for f in frames]


def make_long_video(path: Path, *, seconds: int, size: tuple[int, int], fps: int = 25) -> Path:
    """A long H.264 video made fast: encode 2 s once, then repeat its packets.

    Each 2 s segment starts with a key frame (x264 ultrafast has no B-frames), so the
    concatenation is a valid stream; frame indices repeat every segment.
    """
    seg = path.with_suffix(".segment.mp4")
    seg_frames = 2 * fps
    write_signature_video(
        seg, num_frames=seg_frames, fps=fps, size=size, preset="ultrafast", texture=False
    )
    repeat_video(seg, path, segment_s=2, times=seconds // 2)
    seg.unlink()
    return path


def snippet_signatures(
    video: Path, read: object, *, start_every: int, span: int, base_fps: float
) -> list[list[int]]:
    """The frame numbers (signatures) in each snippet the sampler cuts from ``video`` with
    the read spec ``read``, after checking that snippet i's timestamps cover frames
    ``[i * start_every, i * start_every + span)`` at ``base_fps``."""
    from talkit.extractors import iter_snippet_batches

    seen: list[list[int]] = []
    for batch in iter_snippet_batches(video, read, batch_size=2):
        for clip in np.asarray(batch.frames):
            seen.append([read_signature(f) for f in clip])
        np.testing.assert_allclose(batch.starts_s, batch.indices * start_every / base_fps)
        np.testing.assert_allclose(batch.ends_s, (batch.indices * start_every + span) / base_fps)
    return seen
