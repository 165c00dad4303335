"""Several backbones on one video: one decode for all of them, and the memory it takes.

    python benchmarks/backbones.py [--small] [--rows decode,rss] [--repeat 2] [--threads 2]
                                   [--input-size 112] [--flow farneback] [--workdir DIR]

Rows, each against a baseline measured in the same run (these machines are noisy: read
the ratios):

1. ``single decode``: ``extract_video_multi`` with three backbones on one 720p H.264
   video, against the sum of three separate ``extract_video`` runs of the same backbones
   on the same video (best of ``--repeat``, interleaved). Target: ratio <= 0.8.
2. ``peak RSS``: a fresh process runs the three backbones on a 10-minute 720p video
   (``--small``: 2 minutes) and reports its peak resident memory; the same on a video a
   tenth as long shows that it does not grow with the video. Target: < 3 GB.

The three backbones are I3D configured three ways (only I3D is registered): two-stream
at 25 fps (16-frame snippets, TV-L1-family flow), rgb at 10 fps (8-frame snippets) with
the same resize, and flow only on overlapping 8-frame windows (stride 4) with the same
flow spec. Inputs are ``--input-size`` px (default 112) so a CPU run ends in minutes;
the decode, resize and flow are what is shared, and their cost does not depend on it.
Random weights: a forward's speed does not depend on the weights' values.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import torch

from talkit.datasets.synthetic.signature import write_signature_video
from talkit.extractors import build_backbone, extract_video, extract_video_multi

SIZE_720P = (1280, 720)


def backbones(input_size: int, flow: str) -> dict[str, Any]:
    """The three differently configured I3Ds (see module doc), built with random weights."""
    resize = input_size * 8 // 7  # 256 -> 224 proportions
    common = {"input_size": input_size, "resize_short": resize}
    configs = {
        "i3d_two_25fps": {"streams": ("rgb", "flow"), "flow_method": flow, **common},
        "i3d_rgb_10fps": {"streams": ("rgb",), "fps": 10.0, "clip_len": 8, "stride": 8, **common},
        "i3d_flow_win8": {
            "streams": ("flow",),
            "clip_len": 8,
            "stride": 4,
            "flow_method": flow,
            **common,
        },
    }
    return {
        name: build_backbone("i3d", random_weights_seed=0, **opts) for name, opts in configs.items()
    }


def textured_video(path: Path, seconds: int, size: tuple[int, int]) -> Path:
    """An H.264 video with real texture and motion (x264 veryfast, B-frames)."""
    if not path.exists():
        write_signature_video(path, num_frames=seconds * 25, fps=25, size=size, seed=1)
    return path


def long_video(path: Path, seconds: int, size: tuple[int, int], segment_s: int = 4) -> Path:
    """A long textured H.264 video made fast: encode ``segment_s`` once, repeat its packets
    (x264 ultrafast: no B-frames, every segment starts with a key frame)."""
    if path.exists():
        return path
    seg = path.with_suffix(".segment.mp4")
    write_signature_video(
        seg, num_frames=segment_s * 25, fps=25, size=size, seed=2, preset="ultrafast"
    )
    with av.open(str(seg)) as src:
        s_in = src.streams.video[0]
        packets = [p for p in src.demux(s_in) if p.size]
        seg_ticks = round(Fraction(segment_s) / Fraction(s_in.time_base))
        with av.open(str(path), "w") as dst:
            s_out = dst.add_stream_from_template(s_in)
            for rep in range(seconds // segment_s):
                for p in packets:
                    q = av.Packet(bytes(p))
                    q.pts = p.pts + rep * seg_ticks
                    q.dts = p.dts + rep * seg_ticks
                    q.duration = p.duration
                    q.time_base = p.time_base
                    q.is_keyframe = p.is_keyframe
                    q.stream = s_out
                    dst.mux(q)
    seg.unlink()
    return path


def row_single_decode(video: Path, models: dict[str, Any], repeat: int) -> dict[str, Any]:
    """Row 1: one shared pass vs the sum of one run per backbone (best of ``repeat``)."""
    best_multi = best_sum = float("inf")
    decode: dict[str, Any] = {}
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = extract_video_multi(video, models, batch_size=8)
        best_multi = min(best_multi, time.perf_counter() - t0)
        decode = next(iter(result.values())).meta["decode"]
        total = 0.0
        for model in models.values():
            t0 = time.perf_counter()
            extract_video(video, model, batch_size=8)
            total += time.perf_counter() - t0
        best_sum = min(best_sum, total)
    return {
        "row": "single decode, 3 backbones",
        "video": video.name,
        "ours_s": best_multi,
        "baseline_s": best_sum,
        "ratio": best_multi / best_sum,
        "target": "<= 0.8",
        "decode": decode,
    }


def row_peak_rss(video: Path, short: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Row 2: peak RSS of a fresh process running the 3 backbones (long and short video)."""
    out = {}
    for name, path in (("long", video), ("short", short)):
        cmd = [sys.executable, __file__, "--rss-child", str(path)]
        cmd += ["--input-size", str(args.input_size), "--flow", args.flow]
        cmd += ["--threads", str(args.threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        out[name] = json.loads(proc.stdout.strip().splitlines()[-1])
    return {
        "row": "peak RSS, 3 backbones",
        "video": video.name,
        "ours_gb": out["long"]["peak_rss_gb"],
        "baseline_gb": out["short"]["peak_rss_gb"],
        "ratio": out["long"]["peak_rss_gb"] / out["short"]["peak_rss_gb"],
        "target": "< 3 GB",
        "long": out["long"],
        "short": out["short"],
    }


def rss_child(path: Path, args: argparse.Namespace) -> None:
    """Runs in the fresh process of row 2; prints one JSON line."""
    torch.set_num_threads(args.threads)
    models = backbones(args.input_size, args.flow)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    t0 = time.perf_counter()
    result = extract_video_multi(path, models, batch_size=8)
    first = next(iter(result.values()))
    print(
        json.dumps(
            {
                "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
                "rss_before_extraction_gb": before,
                "seconds": time.perf_counter() - t0,
                "video_s": first.meta["video"]["duration_s"],
                "snippets": {n: f.num_snippets for n, f in result.items()},
                "peak_frames_held": first.meta["decode"]["peak_frames_held"],
            }
        )
    )


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"{'row':<28} {'video':<24} {'ours':>10} {'baseline':>10} {'ratio':>7}  target")
    for r in rows:
        unit = "s" if "ours_s" in r else "GB"
        ours, base = r.get("ours_s", r.get("ours_gb")), r.get("baseline_s", r.get("baseline_gb"))
        print(
            f"{r['row']:<28} {r['video']:<24} {ours:>9.2f}{unit[0]} {base:>9.2f}{unit[0]} "
            f"{r['ratio']:>7.2f}  {r['target']}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="shorter videos, quick check")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--input-size", type=int, default=112)
    parser.add_argument("--flow", default="farneback", help="flow method of the flow streams")
    parser.add_argument("--rows", default="decode,rss", help="which rows: decode, rss")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--rss-child", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child is not None:
        rss_child(args.rss_child, args)
        return
    torch.set_num_threads(args.threads)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="talkit-bench-backbones-"))
    workdir.mkdir(parents=True, exist_ok=True)
    ratio_s, long_s = (8, 120) if args.small else (20, 600)
    print(
        f"# threads {args.threads}, input {args.input_size} px, flow {args.flow}, "
        f"batch 8, random weights; videos in {workdir}",
        flush=True,
    )
    wanted = set(args.rows.split(","))
    rows = []
    if "decode" in wanted:
        models = backbones(args.input_size, args.flow)
        video = textured_video(workdir / f"textured_720p_{ratio_s}s.mp4", ratio_s, SIZE_720P)
        rows.append(row_single_decode(video, models, args.repeat))
        del models
    if "rss" in wanted:
        long = long_video(workdir / f"long_720p_{long_s}s.mp4", long_s, SIZE_720P)
        short = long_video(workdir / f"long_720p_{long_s // 10}s.mp4", long_s // 10, SIZE_720P)
        rows.append(row_peak_rss(long, short, args))
    print_table(rows)
    for r in rows:
        extra = {k: v for k, v in r.items() if k in ("decode", "long", "short")}
        print(f"# {r['row']}: {json.dumps(extra)}")


if __name__ == "__main__":
    main()
