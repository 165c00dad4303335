"""Backbones on CPU: pipeline vs bare forward, one decode for many, and the memory it takes.

    python benchmarks/backbones.py [--small] [--rows forward,decode,rss,i3d_rss] [--repeat 2]
                                   [--backbones i3d,vivit_b16x2,tdn_r50,...]
                                   [--forward-repeat 5] [--forward-input N] [--batch-size 8]
                                   [--threads 2] [--input-size 112]
                                   [--flow farneback] [--workdir DIR]

Rows, each against a baseline measured in the same run (these machines are noisy: read
the ratios), and a summary table at the end saying which targets were met:

0. ``forward``, one row per backbone (I3D rgb, slowfast_r50, csn_r101, ircsn_152,
   vivit_b16x2_hf, vivit_b16x2, tdn_r50; ``--backbones a,b`` runs only those; seeded
   random weights): ``extract_video`` snippets/s on a 320x240 25 fps H.264 video made
   here, as a ratio to the bare ``backbone.extract`` on the very batches that run fed
   it (captured in a warm-up run, which also warms both up), same threads and batch
   size, best of ``--forward-repeat`` (5), interleaved (each side first in turn). Target:
   ratio >= 0.9. Full: each backbone's default input (I3D 256 -> 224, SlowFast and
   CSN-R101 256 -> 256, ir-CSN-152, ViViT and TDN-R50 256 -> 224) on a 16 s video (24
   snippets each; TDN's 64-frame windows at 30 fps: 27); ``--small``: 80 -> 64 px on a
   7 s video (10 snippets); ``--forward-input N``: N * 5 // 4 -> N px.
   The printed detail also has the CPU-time ratio and the best pipeline run's own forward
   time over its total (what decoding and preprocessing add, without the noise between
   runs).
1. ``single decode``: ``extract_video_multi`` with three backbones on one 720p H.264
   video, against the sum of three separate ``extract_video`` runs of the same backbones
   on the same video (best of ``--repeat``, interleaved). Target: ratio <= 0.8.
2. ``peak RSS``: a fresh process runs the three backbones on a 10-minute 720p video
   (``--small``: 2 minutes) and reports its peak resident memory; the same on a video a
   tenth as long shows that it does not grow with the video. Target: < 3 GB.
3. ``I3D RGB peak RSS``: ``benchmarks/i3d.py``'s in-process ``extract_video`` child
   (64-frame snippets, 224 px, ``--batch-size auto``, all CPUs as threads) on a 60 s
   320x240 video (``--small``: 12 s), against its video_features-style baseline (OpenCV
   decode, batch 1) in a child of its own, each reading its own VmHWM. Target: <= 1.5 GB,
   read as 1.5e9 bytes (1.397 GiB); the table shows GiB, a ``#`` line GiB, GB and
   PASS/MISS.

Rows 1 and 2 use I3D configured three ways, which exercises every shared step: two-stream
at 25 fps (16-frame snippets, TV-L1-family flow), rgb at 10 fps (8-frame snippets) with
the same resize, and flow only on overlapping 8-frame windows (stride 4) with the same
flow spec. Inputs are ``--input-size`` px (default 112) so a CPU run ends in minutes;
the decode, resize and flow are what is shared, and their cost does not depend on it.
Random weights: a forward's speed does not depend on the weights' values.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from talkit.datasets.synthetic.signature import repeat_video, write_signature_video
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
    repeat_video(seg, path, segment_s=segment_s, times=seconds // segment_s)
    seg.unlink()
    return path


FORWARD_BACKBONES = (
    "i3d",
    "slowfast_r50",
    "csn_r101",
    "ircsn_152",
    "vivit_b16x2_hf",
    "vivit_b16x2",
    "tdn_r50",
)


def forward_models(
    input_size: int | None, names: tuple[str, ...] = FORWARD_BACKBONES
) -> dict[str, Any]:
    """Row 0's backbones (``names``) with seeded random weights, at their default input size
    (None) or at ``input_size`` px cropped from a short side ``input_size * 5 // 4``."""
    sizes = (
        {}
        if input_size is None
        else {"input_size": input_size, "resize_short": input_size * 5 // 4}
    )
    extra = {"i3d": {"streams": ("rgb",)}}
    return {
        name: build_backbone(name, random_weights_seed=0, **sizes, **extra.get(name, {}))
        for name in names
    }


def captured_batches(video: Path, model: Any, batch_size: int) -> list[dict[str, torch.Tensor]]:
    """Run ``extract_video`` once (the warm-up of both sides) and keep the batches it fed
    the backbone, so the bare forward is timed on exactly the same inputs."""
    batches: list[dict[str, torch.Tensor]] = []
    bare = model.extract

    def keep(batch: dict[str, torch.Tensor]) -> Any:
        batches.append({s: x.clone() for s, x in batch.items()})
        return bare(batch)

    model.extract = keep
    try:
        extract_video(video, model, batch_size=batch_size)
    finally:
        del model.extract  # back to the class's method
    return batches


def row_forward(video: Path, name: str, model: Any, batch_size: int, repeat: int) -> dict[str, Any]:
    """Row 0: ``extract_video`` snippets/s vs ``backbone.extract`` alone on its batches."""
    batches = captured_batches(video, model, batch_size)
    snippets = sum(next(iter(b.values())).shape[0] for b in batches)
    best_fwd = best_pipe = float("inf")
    cpu = {"forward": float("inf"), "pipeline": float("inf")}
    timing: dict[str, float] = {}

    def forward() -> None:
        nonlocal best_fwd
        t0, c0 = time.perf_counter(), time.process_time()
        for batch in batches:
            model.extract(batch)
        best_fwd = min(best_fwd, time.perf_counter() - t0)
        cpu["forward"] = min(cpu["forward"], time.process_time() - c0)

    def pipeline() -> None:
        nonlocal best_pipe, timing
        t0, c0 = time.perf_counter(), time.process_time()
        res = extract_video(video, model, batch_size=batch_size)
        elapsed = time.perf_counter() - t0
        cpu["pipeline"] = min(cpu["pipeline"], time.process_time() - c0)
        if elapsed < best_pipe:
            best_pipe, timing = elapsed, res.meta["timing_s"]
        if res.num_snippets != snippets:
            raise AssertionError(f"{name}: {res.num_snippets} snippets, captured {snippets}")

    for i in range(repeat):  # interleaved, each first in turn, so load changes hit both alike
        for step in (forward, pipeline) if i % 2 == 0 else (pipeline, forward):
            step()
    spec = model.spec
    shape = tuple(next(iter(batches[0].values())).shape[1:])
    return {
        "row": f"forward, {name}",
        "video": f"{spec.resize_short}->{spec.input_size}px x{spec.clip_len}",
        "unit": "snip/s",
        "ours": snippets / best_pipe,
        "baseline": snippets / best_fwd,
        "ratio": best_fwd / best_pipe,
        "target": "ratio >= 0.9",
        "met": best_fwd / best_pipe >= 0.9,
        "detail": {
            "snippets": snippets,
            "batches": len(batches),
            "input_shape": shape,
            "pipeline_s": best_pipe,
            "forward_s": best_fwd,
            "cpu_s": cpu,
            "cpu_ratio": cpu["forward"] / cpu["pipeline"],
            # Within the best pipeline run: its own forward time over its total.
            "forward_share_in_pipeline": timing["forward"] / timing["total"],
            "inside_pipeline_s": timing,
        },
    }


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
        "unit": "s",
        "ours": best_multi,
        "baseline": best_sum,
        "ratio": best_multi / best_sum,
        "target": "ratio <= 0.8",
        "met": best_multi / best_sum <= 0.8,
        "detail": {"decode": decode},
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
        "unit": "GB",
        "ours": out["long"]["peak_rss_gb"],
        "baseline": out["short"]["peak_rss_gb"],
        "ratio": out["long"]["peak_rss_gb"] / out["short"]["peak_rss_gb"],
        "target": "ours < 3 GB",
        "met": out["long"]["peak_rss_gb"] < 3,
        "detail": {"long": out["long"], "short": out["short"]},
    }


def row_i3d_rss(seconds: int, workdir: Path) -> dict[str, Any]:
    """Row 3: benchmarks/i3d.py's in-process I3D RGB child and its common-extractor
    baseline, each in a fresh process, on a ``seconds`` long 320x240 video."""
    loader = importlib.util.spec_from_file_location("bench_i3d", Path(__file__).with_name("i3d.py"))
    assert loader is not None and loader.loader is not None
    bench_i3d = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(bench_i3d)
    video = workdir / f"i3d_320x240_{seconds}s.mp4"
    if not video.exists():
        write_signature_video(video, num_frames=seconds * 25, fps=25, size=(320, 240), seed=2)
    ours = bench_i3d._in_child("extract_video", video)
    base = bench_i3d._in_child("baseline", video)
    gib, peak = 2**30, int(ours["peak_rss"])
    print(f"# peak RSS, I3D RGB extract_video: {bench_i3d.rss_verdict(peak)}", flush=True)
    return {
        "row": "peak RSS, I3D RGB",
        "video": video.name,
        "unit": "GiB",
        "ours": peak / gib,
        "baseline": base["peak_rss"] / gib,
        "ratio": peak / base["peak_rss"],
        "target": "ours <= 1.5 GB",  # 1.5e9 bytes = 1.397 GiB
        "met": peak <= bench_i3d.TARGET_RSS,
        "detail": {"extract_video": ours, "common_extractor": base, "peak_gb": peak / 1e9},
    }


def peak_rss_gb() -> float:
    """This process's own peak RSS (GiB): VmHWM, the high-water mark of the address space
    exec gave it. ``ru_maxrss`` would not do in a child: Linux carries the parent's peak
    over into it through fork/vfork and exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def rss_child(path: Path, args: argparse.Namespace) -> None:
    """Runs in the fresh process of row 2; prints one JSON line."""
    torch.set_num_threads(args.threads)
    models = backbones(args.input_size, args.flow)
    before = peak_rss_gb()
    t0 = time.perf_counter()
    result = extract_video_multi(path, models, batch_size=8)
    first = next(iter(result.values()))
    print(
        json.dumps(
            {
                "peak_rss_gb": peak_rss_gb(),
                "rss_before_extraction_gb": before,
                "seconds": time.perf_counter() - t0,
                "video_s": first.meta["video"]["duration_s"],
                "snippets": {n: f.num_snippets for n, f in result.items()},
                "peak_frames_held": first.meta["decode"]["peak_frames_held"],
            }
        )
    )


def print_table(rows: list[dict[str, Any]]) -> None:
    """The summary: each row's numbers, its target, and whether this run met it."""
    print(
        f"{'row':<28} {'video / input':<24} {'ours':>9} {'baseline':>9} {'unit':<6} "
        f"{'ratio':>6}  {'target':<15} met"
    )
    for r in rows:
        print(
            f"{r['row']:<28} {r['video']:<24} {r['ours']:>9.3f} {r['baseline']:>9.3f} "
            f"{r['unit']:<6} {r['ratio']:>6.3f}  {r['target']:<15} "
            f"{'yes' if r['met'] else 'NO'}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="shorter videos, quick check")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--input-size", type=int, default=112)
    parser.add_argument("--flow", default="farneback", help="flow method of the flow streams")
    parser.add_argument(
        "--forward-input",
        type=int,
        default=None,
        help="input px of the forward rows (default: each backbone's own; --small: 64)",
    )
    parser.add_argument(
        "--forward-repeat", type=int, default=5, help="best of N for the forward rows"
    )
    parser.add_argument("--batch-size", type=int, default=8, help="batch of the forward rows")
    parser.add_argument(
        "--rows",
        default="forward,decode,rss,i3d_rss",
        help="which rows: forward, decode, rss, i3d_rss",
    )
    parser.add_argument(
        "--backbones",
        default=",".join(FORWARD_BACKBONES),
        help=f"which forward rows: a comma-separated subset of {','.join(FORWARD_BACKBONES)}",
    )
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
        f"# threads {args.threads}, random weights; videos in {workdir}; "
        f"load average {os.getloadavg()[0]:.2f} at the start",
        flush=True,
    )
    wanted = set(args.rows.split(","))
    unknown = wanted - {"forward", "decode", "rss", "i3d_rss"}
    if unknown:
        parser.error(f"unknown rows {sorted(unknown)}; pick from forward, decode, rss, i3d_rss")
    names = tuple(n for n in args.backbones.split(",") if n)
    unknown = set(names) - set(FORWARD_BACKBONES)
    if unknown or not names:
        parser.error(
            f"unknown backbones {sorted(unknown)}; pick from {', '.join(FORWARD_BACKBONES)}"
        )
    rows = []
    # Memory rows: each child reads its own VmHWM, so this process's size cannot leak in.
    if "i3d_rss" in wanted:
        rows.append(row_i3d_rss(12 if args.small else 60, workdir))
    if "rss" in wanted:
        print(f"# rss: input {args.input_size} px, flow {args.flow}, batch 8", flush=True)
        long = long_video(workdir / f"long_720p_{long_s}s.mp4", long_s, SIZE_720P)
        short = long_video(workdir / f"long_720p_{long_s // 10}s.mp4", long_s // 10, SIZE_720P)
        rows.append(row_peak_rss(long, short, args))
    if "forward" in wanted:
        forward_s = 7 if args.small else 16
        size = args.forward_input or (64 if args.small else None)
        video = textured_video(
            workdir / f"textured_320x240_{forward_s}s.mp4", forward_s, (320, 240)
        )
        for name, model in forward_models(size, names).items():
            rows.append(row_forward(video, name, model, args.batch_size, args.forward_repeat))
            print(f"# {rows[-1]['row']}: {json.dumps(rows[-1]['detail'])}", flush=True)
    if "decode" in wanted:
        print(f"# decode: input {args.input_size} px, flow {args.flow}, batch 8", flush=True)
        models = backbones(args.input_size, args.flow)
        video = textured_video(workdir / f"textured_720p_{ratio_s}s.mp4", ratio_s, SIZE_720P)
        rows.append(row_single_decode(video, models, args.repeat))
        del models
    for r in rows:
        if not r["row"].startswith("forward"):
            print(f"# {r['row']}: {json.dumps(r['detail'])}")
    print(f"# load average {os.getloadavg()[0]:.2f} at the end")
    print_table(rows)


if __name__ == "__main__":
    main()
