"""Synthetic untrimmed action videos with known ground truth.

    seed ──► timeline (instances, context) ──► SceneRenderer.frame(t) ──► PyAV encoder
                      │                                                    │
                      └──► Dataset ──► gt.json, THUMOS txt, W-TALC npy     └──► videos/<id>.mp4

Each class is a coloured shape moving along its own path (see ``render.py``); context
is the class's scene with the object standing still (DGAM's action-context confusion).
Output layout under ``out_dir``::

    videos/<video_id>.<mp4|webm>
    annotations/gt.json, annotations/thumos/*.txt, annotations/wtalc/*.npy,
    annotations/classlist.txt
    synthetic.json          class looks, generator parameters, per-video context intervals
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import numpy as np

from talkit import __version__
from talkit.datasets.model import THUMOS14_SUBSET_CANONICAL, Dataset, Segment, Video
from talkit.datasets.synthetic.groundtruth import _atomic_write_text, write_ground_truth
from talkit.datasets.synthetic.render import (
    ClassLook,
    SceneRenderer,
    class_looks,
    default_class_names,
)
from talkit.datasets.synthetic.timeline import (
    TIME_QUANTUM_S,
    Instance,
    InstanceDistribution,
    sample_timeline,
)
from talkit.errors import InputError, WorkFailedError

Codec = Literal["h264", "mpeg4", "vp9"]
VARIABLE = "variable"
MIN_SIZE, MAX_SIZE = (64, 48), (1280, 720)
VFR_TIME_BASE = Fraction(1, 1000)  # MPEG-4 Part 2 caps the time-base denominator at 65535


@dataclass(frozen=True)
class _CodecChoice:
    encoder: str
    container: str
    ext: str


def _codec_choice(codec: str) -> _CodecChoice:
    """Map a user codec name to an encoder PyAV has, or say which ones it does have."""
    candidates = {
        "h264": [("libx264", "mp4", "mp4"), ("libopenh264", "mp4", "mp4")],
        "mpeg4": [("mpeg4", "mp4", "mp4")],
        "vp9": [("libvpx-vp9", "webm", "webm")],
    }
    if codec not in candidates:
        raise InputError(f"unknown codec {codec!r}", hint=f"choose one of {', '.join(candidates)}")
    for enc, cont, ext in candidates[codec]:
        if enc in av.codecs_available:
            return _CodecChoice(enc, cont, ext)
    usable = [c for c, opts in candidates.items() if any(o[0] in av.codecs_available for o in opts)]
    raise InputError(
        f"codec {codec!r} is not available in this PyAV/FFmpeg build",
        hint=f"use one of: {', '.join(usable) or 'none'} (or install an FFmpeg with it)",
    )


def parse_size(size: str | tuple[int, int]) -> tuple[int, int]:
    """``"320x240"`` or ``(320, 240)`` -> (width, height), checked against supported sizes."""
    if isinstance(size, str):
        m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", size)
        if not m:
            raise InputError(
                f"cannot read frame size {size!r}", hint="write it as WIDTHxHEIGHT, e.g. 320x240"
            )
        w, h = int(m.group(1)), int(m.group(2))
    else:
        w, h = int(size[0]), int(size[1])
    if not (MIN_SIZE[0] <= w <= MAX_SIZE[0] and MIN_SIZE[1] <= h <= MAX_SIZE[1]):
        raise InputError(
            f"frame size {w}x{h} is outside the supported range",
            hint=f"use {MIN_SIZE[0]}x{MIN_SIZE[1]} up to {MAX_SIZE[0]}x{MAX_SIZE[1]}",
        )
    if w % 2 or h % 2:
        raise InputError(
            f"frame size {w}x{h} has an odd side", hint="4:2:0 video needs even width and height"
        )
    return w, h


def parse_fps(fps: float | str) -> Fraction | None:
    """Frame rate as an exact fraction (29.97 -> 30000/1001); None means variable."""
    if isinstance(fps, str):
        if fps.strip().lower() in (VARIABLE, "vfr"):
            return None
        try:
            fps = float(fps)
        except ValueError:
            raise InputError(
                f"cannot read frame rate {fps!r}",
                hint="use a number such as 25, 30, 29.97 or 'variable'",
            ) from None
    if not 1 <= fps <= 120:
        raise InputError(f"frame rate {fps} is out of range", hint="use 1 to 120 fps or 'variable'")
    if abs(fps - 29.97) < 1e-3:
        return Fraction(30000, 1001)
    if abs(fps - 59.94) < 1e-3:
        return Fraction(60000, 1001)
    return Fraction(fps).limit_denominator(1001)


def parse_duration(duration: float | str | tuple[float, float]) -> tuple[float, float]:
    """``8`` or ``"5:20"`` or ``(5, 20)`` -> (min, max) seconds of a video."""
    if isinstance(duration, str):
        parts = duration.split(":")
        try:
            vals = [float(p) for p in parts]
        except ValueError:
            raise InputError(
                f"cannot read duration {duration!r}", hint="use seconds (8) or a range (5:20)"
            ) from None
        lo, hi = (vals[0], vals[0]) if len(vals) == 1 else (vals[0], vals[1])
    elif isinstance(duration, tuple):
        lo, hi = float(duration[0]), float(duration[1])
    else:
        lo = hi = float(duration)
    if not 0.5 <= lo <= hi or hi > 7200:
        raise InputError(
            f"video duration {duration!r} is invalid", hint="use 0.5 s to 2 h, min <= max"
        )
    return lo, hi


def _frame_times(rng: np.random.Generator, duration_s: float, rate: Fraction | None) -> np.ndarray:
    """Presentation times of every frame. Variable rate: 25 fps on average, each interval
    drawn from 0.6 to 1.4 frame periods on a 1 ms grid (as a phone camera does)."""
    if rate is not None:
        n = max(1, round(duration_s * rate))
        return np.arange(n, dtype=np.float64) / float(rate)
    steps = np.round(rng.uniform(0.024, 0.056, size=int(duration_s / 0.024) + 2) * 1000)
    times = np.concatenate([[0.0], np.cumsum(steps)]) / 1000.0
    return times[times < duration_s - 1e-9]


# libx264's macroblock-tree rate control reads memory it never wrote: the same frames
# encoded twice came out as different bytes (and frames) depending on what malloc handed
# it (seen with MALLOC_PERTURB_, and as a 1-in-300 flake). Without it the output is a
# function of the input alone. Every libx264 writer here passes these options.
X264_REPRODUCIBLE_OPTIONS: dict[str, str] = {"mbtree": "0"}


def _encoder_options(choice: _CodecChoice, w: int, h: int) -> dict[str, str]:
    if choice.encoder == "libx264":
        return {"crf": "16", "preset": "veryfast", **X264_REPRODUCIBLE_OPTIONS}
    if choice.encoder == "libvpx-vp9":
        return {"crf": "20", "b": "0", "deadline": "realtime", "cpu-used": "8", "threads": "1"}
    return {}


def encode_frames(
    path: Path,
    frames: Iterator[np.ndarray],
    times: np.ndarray,
    *,
    rate: Fraction | None,
    size: tuple[int, int],
    codec: str = "h264",
) -> None:
    """Encode RGB frames at the given presentation times into ``path`` with PyAV."""
    choice = _codec_choice(codec)
    w, h = size
    tmp = path.with_name(f".{path.name}.part")
    container = av.open(str(tmp), mode="w", format=choice.container)
    try:
        stream = container.add_stream(choice.encoder, rate=rate or Fraction(25))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = _encoder_options(choice, w, h)
        if choice.encoder == "mpeg4":
            stream.bit_rate = max(400_000, int(w * h * 25 * 0.6))
        time_base = VFR_TIME_BASE if rate is None else 1 / rate
        stream.codec_context.time_base = time_base
        for t, rgb in zip(times, frames, strict=True):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = round(t / time_base)
            frame.time_base = time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        container.close()
    except BaseException as exc:
        container.close()
        tmp.unlink(missing_ok=True)  # never leave a half-written video behind
        if isinstance(exc, av.FFmpegError):
            raise WorkFailedError(
                f"encoding {path.name} with {choice.encoder} failed: {exc}",
                hint="try another --codec or --size",
            ) from exc
        raise
    tmp.replace(path)


def _video_seed(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, index, zlib.crc32(b"video")]))


def generate_videos(
    out_dir: str | Path,
    *,
    num_videos: int = 8,
    classes: int | Sequence[str] = 4,
    duration_s: float | str | tuple[float, float] = 20.0,
    fps: float | str = 25.0,
    size: str | tuple[int, int] = (320, 240),
    codec: Codec | str = "h264",
    seed: int = 0,
    distribution: InstanceDistribution | None = None,
    test_fraction: float = 0.5,
    name: str = "synthetic",
    write_annotations: bool = True,
    on_video: Callable[[str], None] | None = None,
) -> Dataset:
    """Render and encode ``num_videos`` untrimmed clips; return (and write) their truth.

    Videos are split between the ``validation`` and ``test`` subsets (THUMOS14 naming:
    validation trains). The same arguments give the same annotation files byte for byte
    and videos that decode to the same frames.
    """
    if num_videos < 1:
        raise InputError(
            f"num_videos must be at least 1, got {num_videos}", hint="pass --num-videos 1 or more"
        )
    if not 0 <= test_fraction <= 1:
        raise InputError(f"test_fraction must be in [0, 1], got {test_fraction}")
    names = default_class_names(classes) if isinstance(classes, int) else list(classes)
    if not names or len(set(names)) != len(names):
        raise InputError(
            f"classes must be a positive count or distinct names, got {classes!r}",
            hint="pass --classes 4 or --classes Jump,Throw,Swim",
        )
    bad = [n for n in names if not re.fullmatch(r"[A-Za-z0-9_\-]+", n)]
    if bad:
        raise InputError(
            f"class names {bad} contain characters unsafe in file names",
            hint="use letters, digits, '_' or '-' (they become THUMOS <Class>_val.txt files)",
        )
    width, height = parse_size(size)
    rate = parse_fps(fps)
    dur_lo, dur_hi = parse_duration(duration_s)
    choice = _codec_choice(codec)
    dist = distribution or InstanceDistribution()
    looks = class_looks(names)

    out = Path(out_dir)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    n_test = round(num_videos * test_fraction)
    videos: dict[str, Video] = {}
    manifest_videos: dict[str, dict[str, object]] = {}
    for i in range(num_videos):
        rng = _video_seed(seed, i)
        subset = "validation" if i < num_videos - n_test else "test"
        vid = f"video_{subset}_{i + 1:07d}"
        dur = round(float(rng.uniform(dur_lo, dur_hi)) / TIME_QUANTUM_S) * TIME_QUANTUM_S
        times = _frame_times(rng, dur, rate)
        real_dur = float(times[-1] + (1 / float(rate) if rate else 0.04))
        instances = sample_timeline(
            rng, duration_s=min(dur, real_dur), num_classes=len(looks), dist=dist
        )
        renderer = SceneRenderer(
            width=width, height=height, looks=looks, instances=instances, rng=rng
        )
        path = out / "videos" / f"{vid}.{choice.ext}"
        encode_frames(
            path,
            (renderer.frame(float(t)) for t in times),
            times,
            rate=rate,
            size=(width, height),
            codec=codec,
        )
        videos[vid] = Video(
            id=vid,
            subset=subset,
            duration_s=round(real_dur, 6),
            fps=round(float(rate), 6) if rate else round(len(times) / real_dur, 6),
            annotations=[
                Segment(label=looks[x.class_idx].name, start_s=x.start_s, end_s=x.end_s)
                for x in instances
            ],
            url=f"videos/{path.name}",
        )
        manifest_videos[vid] = _manifest_entry(path, times, rate, instances, looks)
        if on_video is not None:
            on_video(vid)

    dataset = Dataset(
        name=name,
        source_format="synthetic",
        classes=names,
        videos=videos,
        subset_canonical=dict(THUMOS14_SUBSET_CANONICAL),
        eval_preset="thumos14",  # THUMOS14's layout: its ids, subsets and instance lengths
    )
    if write_annotations:
        write_ground_truth(dataset, out / "annotations")
        params = {
            "num_videos": num_videos,
            "classes": names,
            "duration_s": [dur_lo, dur_hi],
            "fps": VARIABLE if rate is None else str(rate),
            "size": [width, height],
            "codec": codec,
            "encoder": choice.encoder,
            "seed": seed,
            "test_fraction": test_fraction,
            "distribution": dist.model_dump(),
        }
        manifest = {
            "generator": "talkit.datasets.synthetic.videos",
            "talkit_version": __version__,
            "params": params,
            "classes": [lk.describe() for lk in looks],
            "videos": manifest_videos,
        }
        _atomic_write_text(out / "synthetic.json", json.dumps(manifest, indent=1) + "\n")
    return dataset


def _manifest_entry(
    path: Path,
    times: np.ndarray,
    rate: Fraction | None,
    instances: list[Instance],
    looks: list[ClassLook],
) -> dict[str, object]:
    """Per-video facts the annotation formats cannot hold (frame count, context spans)."""
    return {
        "file": f"videos/{path.name}",
        "frames": len(times),
        "fps": VARIABLE if rate is None else str(rate),
        "instances": [
            {
                "label": looks[x.class_idx].name,
                "segment": [x.start_s, x.end_s],
                "context_before": [round(x.block_start_s, 1), x.start_s]
                if x.context_before_s
                else None,
                "context_after": [x.end_s, round(x.block_end_s, 1)] if x.context_after_s else None,
            }
            for x in instances
        ],
    }
