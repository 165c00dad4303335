"""Decode throughput: our reader (RGB out, resampled to 25 fps) vs ffmpeg, same run.

    python benchmarks/decode.py [--repeat 3] [--workdir DIR]

Generates two H.264 videos (60 s 320x240 and 30 s 1280x720, 25 fps, x264 ``veryfast``
with B-frames, seeded noise texture plus frame-index blocks), then times

- baseline: ``ffmpeg -threads 0 -i X -f null -pix_fmt rgb24 -`` (decode + RGB, no output),
- ours: ``open_video(X).iter_frames(fps=25)`` for each backend, touching every frame.

Each timing is the best of ``--repeat`` runs, interleaved, because this machine is
shared and noisy; the ratio (ours frames/s over ffmpeg frames/s) is what to read. CPU
time (all threads) is printed too: on a loaded machine wall time mostly measures who
got the cores, while frames per CPU-second measures the work done.
Target: ratio >= 0.85 for the default backend on both videos. Needs ffmpeg on PATH.

A second table times the YUV -> RGB conversion alone on the same decoded frames:
talkit's (swscale with the stream's range and matrix, bit-exact to ffmpeg) against
OpenCV's ``COLOR_YUV2RGB_I420``, the inexact fast path talkit used before, to show
whether a fast path would still be worth having.
"""

from __future__ import annotations

import argparse
import itertools
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import cv2
from av.video.reformatter import VideoReformatter

from talkit.datasets.synthetic.signature import write_signature_video
from talkit.extractors import open_video
from talkit.extractors.video_pyav import frame_to_rgb

VIDEOS = {
    "320x240_60s": dict(num_frames=60 * 25, size=(320, 240)),
    "1280x720_30s": dict(num_frames=30 * 25, size=(1280, 720)),
}


def _cpu(who: int) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def time_ffmpeg(path: Path) -> tuple[float, float]:
    """(wall s, CPU s) of the ffmpeg baseline."""
    cmd = ["ffmpeg", "-v", "error", "-threads", "0", "-i", str(path)]
    cmd += ["-f", "null", "-pix_fmt", "rgb24", "-"]
    c0, t0 = _cpu(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t0, _cpu(resource.RUSAGE_CHILDREN) - c0


def time_ours(path: Path, backend: str) -> tuple[float, float, int, str]:
    """(wall s, CPU s of all our threads, output frames, backend used)."""
    c0, t0 = _cpu(resource.RUSAGE_SELF), time.perf_counter()
    with open_video(path, backend=backend) as reader:  # type: ignore[arg-type]
        n = 0
        for frame in reader.iter_frames(fps=25):
            n += frame.rgb.shape[0] > 0
        used = reader.meta.backend
    return time.perf_counter() - t0, _cpu(resource.RUSAGE_SELF) - c0, n, used


def time_conversion(path: Path, repeat: int, frames: int = 200) -> tuple[float, float]:
    """Frames/s of (talkit's swscale conversion, OpenCV's I420) on the same frames."""
    with av.open(str(path)) as container:
        decoded = list(itertools.islice(container.decode(video=0), frames))

    def opencv(f: av.VideoFrame) -> object:
        return cv2.cvtColor(f.to_ndarray(format="yuv420p"), cv2.COLOR_YUV2RGB_I420)

    reformatter = VideoReformatter()  # as a reader holds one

    def exact(f: av.VideoFrame) -> object:
        return frame_to_rgb(f, 0, reformatter)

    best = {"swscale": float("inf"), "opencv": float("inf")}
    for _ in range(repeat):
        for name, fn in (("swscale", exact), ("opencv", opencv)):
            t0 = time.perf_counter()
            for f in decoded:
                fn(f)
            best[name] = min(best[name], time.perf_counter() - t0)
    return len(decoded) / best["swscale"], len(decoded) / best["opencv"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=None, help="keep generated videos here")
    args = ap.parse_args()
    if shutil.which("ffmpeg") is None:
        print("ffmpeg not found on PATH (apt-get install ffmpeg); it is the baseline.")
        return 2
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="talkit-decode-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    backends = ["auto", "pyav", "decord"]
    print(f"videos in {workdir}; best of {args.repeat} interleaved runs each")
    print("ratio: frames/s over ffmpeg's; cpu ratio: frames per CPU-second over ffmpeg's\n")
    head = f"{'video':14} {'reader':16} {'frames':>6} {'wall s':>7} {'frames/s':>9}"
    print(head + f" {'ratio':>6} {'cpu s':>6} {'cpu ratio':>9}")
    worst = float("inf")
    for name, kw in VIDEOS.items():
        path = workdir / f"{name}.mp4"
        if not path.exists():
            write_signature_video(path, fps=25, seed=1, **kw)  # type: ignore[arg-type]
        n_src = kw["num_frames"]
        wall = {k: float("inf") for k in ["ffmpeg", *backends]}
        cpu = dict(wall)
        used: dict[str, str] = {}
        counts: dict[str, int] = {"ffmpeg": n_src}
        for _ in range(args.repeat):
            w, c = time_ffmpeg(path)
            wall["ffmpeg"], cpu["ffmpeg"] = min(wall["ffmpeg"], w), min(cpu["ffmpeg"], c)
            for b in backends:
                w, c, n, u = time_ours(path, b)
                wall[b], cpu[b] = min(wall[b], w), min(cpu[b], c)
                used[b], counts[b] = u, n
        base, base_cpu = n_src / wall["ffmpeg"], n_src / cpu["ffmpeg"]
        for i, k in enumerate(["ffmpeg", *backends]):
            fps, fps_cpu = counts[k] / wall[k], counts[k] / cpu[k]
            label = {"ffmpeg": "ffmpeg (base)", "auto": f"auto -> {used.get('auto')}"}.get(k, k)
            print(
                f"{name if i == 0 else '':14} {label:16} {counts[k]:6d} {wall[k]:7.2f} "
                f"{fps:9.0f} {fps / base:6.2f} {cpu[k]:6.2f} {fps_cpu / base_cpu:9.2f}"
            )
            if k == "auto":
                worst = min(worst, fps / base)
    print(f"\ndefault reader (auto): worst wall-clock ratio {worst:.2f} (target >= 0.85)")
    print("\nYUV -> RGB alone, one thread, first 200 frames (exact: equals ffmpeg's rgb24)")
    print(f"{'video':14} {'swscale f/s':>11} {'OpenCV I420 f/s':>15} {'ratio':>6}")
    for name in VIDEOS:
        exact, opencv = time_conversion(workdir / f"{name}.mp4", args.repeat)
        print(f"{name:14} {exact:11.0f} {opencv:15.0f} {exact / opencv:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
