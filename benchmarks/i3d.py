"""I3D extraction: does decoding hide behind the forward pass, and does TV-L1 scale?

    python benchmarks/i3d.py [--input-size 224] [--batch-size 8] [--batches 3]
                             [--pairs 8] [--flow-size 224] [--repeat 2]

Two ratios, each against a baseline measured in the same run (best of ``--repeat``):

1. RGB path. Baseline: the I3D rgb forward pass alone on pre-made tensors of the same
   batch size (snippets/s). Measured: ``extract_video`` on a 320x240 H.264 video at
   25 fps (decode + resample + resize 256 + crop + normalise + forward, decoding in
   the background thread). Target: ratio >= 0.85.
2. TV-L1 pairs/s with 2 worker processes vs 1 (frames ``--flow-size`` square, OpenCV
   defaults, pools warmed up before timing). Target: >= 1.7x on 2 free cores.

Random weights: the speed of a forward pass does not depend on the weights' values.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from talkit.extractors.extract import build_backbone, extract_video
from talkit.extractors.flow import FlowComputer, flow_spec


def bench_rgb(args: argparse.Namespace, workdir: Path) -> tuple[float, float]:
    from talkit.datasets.synthetic.signature import write_signature_video

    frames = args.batches * args.batch_size * 16
    video = workdir / "bench.mp4"
    write_signature_video(video, num_frames=frames, fps=25, size=(320, 240), seed=1)
    resize = None if args.input_size < 224 else 256
    model = build_backbone(
        "i3d",
        streams=("rgb",),
        input_size=args.input_size,
        resize_short=resize,
        random_weights_seed=0,
    )
    gen = torch.Generator().manual_seed(0)
    shape = (args.batch_size, 3, 16, args.input_size, args.input_size)
    tensors = [torch.rand(shape, generator=gen) * 2 - 1 for _ in range(args.batches)]
    model.extract({"rgb": tensors[0]})  # warm-up: oneDNN builds its kernels once per shape

    forward_best = pipeline_best = float("inf")
    timing: dict[str, float] = {}
    snippets = args.batches * args.batch_size
    for _ in range(args.repeat):  # interleaved, so load changes hit both alike
        t0 = time.perf_counter()
        for x in tensors:
            model.extract({"rgb": x})
        forward_best = min(forward_best, time.perf_counter() - t0)
        t0 = time.perf_counter()
        res = extract_video(video, model, batch_size=args.batch_size)
        elapsed = time.perf_counter() - t0
        if elapsed < pipeline_best:
            pipeline_best, timing = elapsed, res.meta["timing_s"]
        assert res.num_snippets == snippets, (res.num_snippets, snippets)
    print(
        f"  inside the best extract_video run: forward {timing['forward']:.2f} s, "
        f"waiting for decoded input {timing['waiting_for_input']:.2f} s, "
        f"total {timing['total']:.2f} s (forward alone: {forward_best:.2f} s)"
    )
    return snippets / forward_best, snippets / pipeline_best


def bench_flow(args: argparse.Namespace) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    size = args.flow_size
    big = cv2.GaussianBlur(rng.random((size + 64, size + 64)).astype(np.float32), (0, 0), 3)
    big = ((big - big.min()) / (big.max() - big.min()) * 255).astype(np.uint8)
    seq = np.stack([big[k : k + size, k : k + size] for k in range(args.pairs + 1)])
    spec = flow_spec("tvl1")
    rates = {}
    computers = {w: FlowComputer(spec, workers=w) for w in (1, 2)}
    try:
        for c in computers.values():  # warm-up: start the worker processes
            c.pairs(seq[:2], seq[1:3])
        best = {1: float("inf"), 2: float("inf")}
        for _ in range(args.repeat):
            for w, c in computers.items():
                t0 = time.perf_counter()
                c.sequence(seq)
                best[w] = min(best[w], time.perf_counter() - t0)
        rates = {w: args.pairs / t for w, t in best.items()}
    finally:
        for c in computers.values():
            c.close()
    return rates[1], rates[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--flow-size", type=int, default=224)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--skip-rgb", action="store_true")
    parser.add_argument("--skip-flow", action="store_true")
    args = parser.parse_args()
    print(f"torch threads: {torch.get_num_threads()}, OpenCV threads: {cv2.getNumThreads()}")
    if not args.skip_rgb:
        with tempfile.TemporaryDirectory() as tmp:
            fwd, pipe = bench_rgb(args, Path(tmp))
        print(
            f"rgb forward alone   : {fwd:8.3f} snippets/s  (batch {args.batch_size}, "
            f"{args.input_size}px, {args.batches * args.batch_size} snippets)"
        )
        print(f"rgb extract_video   : {pipe:8.3f} snippets/s  (decode+preprocess+forward)")
        print(f"ratio pipeline/forward: {pipe / fwd:.3f}  (target >= 0.85)")
    if not args.skip_flow:
        one, two = bench_flow(args)
        print(f"TV-L1 1 worker      : {one:8.3f} pairs/s  ({args.flow_size}x{args.flow_size})")
        print(f"TV-L1 2 workers     : {two:8.3f} pairs/s")
        print(f"ratio 2 workers/1   : {two / one:.3f}  (target >= 1.7)")


if __name__ == "__main__":
    main()
