"""TV-L1 at cluster scale: talkit's torch TV-L1 against OpenCV's DualTVL1, in one run.

    python benchmarks/flow.py [--sizes 224,112] [--pairs 16] [--threads 1] [--repeat 2]
                              [--cuda-pairs 256] [--skip-features] [--skip-truth]

Prints, each against a baseline measured in the same run:

1. Speed on CPU, per frame size: pairs/s of ``tvl1_torch`` (compiled; eager too) and
   ``tvl1_torch_fast`` as a ratio to OpenCV's TV-L1 with the same threads. The OpenCV
   baseline is the faster of its two ways of using ``--threads`` cores: OpenCV's own
   threads in one process, or that many single-thread worker processes (talkit's
   FlowComputer). Target: >= 1.0 for tvl1_torch. Frames: consecutive 25 fps frames of a
   synthetic action video (greyscale, resized square), the stretch with the most motion.
   Also printed: the mean endpoint difference of each torch flow from OpenCV's, and
   whether compiled and eager runs give the same bits.
2. Accuracy on pairs with known motion (translations, rotations, synthetic action
   frames, 64x64): mean endpoint error of OpenCV, tvl1_torch and tvl1_torch_fast.
3. Features: I3D flow features (random weights) of demo-like videos (64x48, I3D at
   48 px, the demo's settings) from OpenCV's flow vs the torch flows: per-snippet cosine
   similarity (min / mean), with Farneback's for scale.
4. CUDA, where a device is present: pairs/s of tvl1_torch at the first size with the
   automatic batch (target >= 50 pairs/s at 224x224 on a data-centre GPU); otherwise it
   prints "no CUDA device".

The first compile of the torch TV-L1 on a machine takes a minute or more (then it is
cached on disk); it is done in a warm-up and reported, not timed.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

from talkit.datasets.synthetic.flow_pairs import (
    action_pair,
    endpoint_error,
    rotation_pair,
    translation_pair,
)
from talkit.extractors.flow import FlowComputer, flow_spec


def demo_frames(size: int, pairs: int, workdir: Path) -> np.ndarray:
    """``pairs + 1`` consecutive greyscale frames (size x size) of a synthetic action video:
    the stretch whose frames change most (the action, not the still wall)."""
    from talkit.datasets.synthetic.videos import generate_videos
    from talkit.extractors.video import open_video

    generate_videos(
        workdir, num_videos=1, size=(320, 240), duration_s=8.0, seed=5, write_annotations=False
    )
    path = next((workdir / "videos").iterdir())
    grey = [cv2.cvtColor(f.rgb, cv2.COLOR_RGB2GRAY) for f in open_video(path).iter_frames(fps=25)]
    frames = np.stack([cv2.resize(g, (size, size), interpolation=cv2.INTER_AREA) for g in grey])
    change = np.abs(np.diff(frames.astype(np.int16), axis=0)).mean((1, 2))
    window = np.convolve(change, np.ones(pairs), mode="valid")
    start = int(window.argmax())
    return frames[start : start + pairs + 1]


def _time(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _mean_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(((a - b) ** 2).sum(-1)).mean())


def bench_cpu(size: int, args: argparse.Namespace, workdir: Path) -> dict[str, float]:
    frames = demo_frames(size, args.pairs, workdir / f"video{size}")
    firsts, seconds = frames[:-1], frames[1:]
    n = len(firsts)
    threads = args.threads
    torch.set_num_threads(threads)
    print(f"\n== CPU, {size}x{size}, {n} pairs, {threads} thread(s) ==")

    opencv_spec = flow_spec("tvl1")
    in_process = cv2.optflow.DualTVL1OpticalFlow_create()
    reference: list[np.ndarray] = []

    def opencv_threads() -> None:
        previous = cv2.getNumThreads()
        cv2.setNumThreads(threads)
        try:
            reference[:] = [
                in_process.calc(a, b, None) for a, b in zip(firsts, seconds, strict=True)
            ]
        finally:
            cv2.setNumThreads(previous)

    pool = FlowComputer(opencv_spec, workers=threads) if threads > 1 else None
    torch_spec = flow_spec("tvl1_torch")
    compiled = FlowComputer(torch_spec)
    eager = FlowComputer(flow_spec("tvl1_torch", compile=False))
    fast = FlowComputer(flow_spec("tvl1_torch_fast"))
    try:
        t0 = time.perf_counter()
        for c in (compiled, fast):
            c.pairs(firsts[:3], seconds[:3])  # compile (or load the compiled code) once
        print(f"  warm-up (torch.compile or its cache): {time.perf_counter() - t0:.1f} s")
        if pool is not None:
            pool.pairs(firsts[:threads], seconds[:threads])  # start the worker processes
        out: dict[str, np.ndarray] = {}
        times: dict[str, float] = {k: float("inf") for k in ("threads", "pool", "c", "e", "f")}
        for _ in range(args.repeat):  # interleaved, so load changes hit all alike
            times["threads"] = min(times["threads"], _time(opencv_threads, 1))
            if pool is not None:
                times["pool"] = min(times["pool"], _time(lambda: pool.pairs(firsts, seconds), 1))
            for key, comp in (("c", compiled), ("e", eager), ("f", fast)):

                def run(key: str = key, comp: FlowComputer = comp) -> None:
                    out[key] = comp.pairs(firsts, seconds)

                times[key] = min(times[key], _time(run, 1))
    finally:
        if pool is not None:
            pool.close()
    opencv = np.stack(reference)
    base = min(times["threads"], times["pool"])
    rate = {k: n / t for k, t in times.items()}
    print(f"  OpenCV TV-L1, {threads} OpenCV thread(s)   : {rate['threads']:7.3f} pairs/s")
    if pool is not None:
        print(f"  OpenCV TV-L1, {threads} worker processes   : {rate['pool']:7.3f} pairs/s")
    rows = (("c", "tvl1_torch (compiled)"), ("e", "tvl1_torch (eager)"), ("f", "tvl1_torch_fast"))
    for key, name in rows:
        diff = _mean_difference(out[key], opencv)
        print(
            f"  {name:26s}: {rate[key]:7.3f} pairs/s  ratio to OpenCV {base / times[key]:5.2f}"
            f"   mean endpoint difference from OpenCV {diff:.4f} px"
        )
    print(f"  compiled and eager give the same bits: {np.array_equal(out['c'], out['e'])}")
    print(f"  RATIO tvl1_torch / OpenCV at {size}: {base / times['c']:.2f}  (target >= 1.0)")
    return {"ratio": base / times["c"], "fast_ratio": base / times["f"]}


def bench_truth() -> None:
    cases = {
        "translate(2.3,-1.7)": translation_pair(2.3, -1.7),
        "translate(-0.6,3.4)": translation_pair(-0.6, 3.4, seed=2),
        "translate(5.2,0.8)": translation_pair(5.2, 0.8, seed=3),
        "rotate(4deg)": rotation_pair(4.0),
        "rotate(-7deg)": rotation_pair(-7.0, seed=4),
    }
    for seed, t, cls in ((0, 1.0, 0), (1, 2.3, 1), (2, 0.6, 2), (3, 3.1, 3), (4, 1.7, 4)):
        cases[f"action(seed{seed})"] = action_pair(seed=seed, time_s=t, class_idx=cls)
    firsts = np.stack([c[0] for c in cases.values()])
    seconds = np.stack([c[1] for c in cases.values()])
    opencv = FlowComputer(flow_spec("tvl1")).pairs(firsts, seconds)
    ours = FlowComputer(flow_spec("tvl1_torch")).pairs(firsts, seconds)
    fast = FlowComputer(flow_spec("tvl1_torch_fast")).pairs(firsts, seconds)
    print("\n== accuracy on pairs with known motion (64x64): mean endpoint error, px ==")
    print(f"  {'pair':22s} {'OpenCV':>8s} {'torch':>8s} {'fast':>8s}")
    errors = []
    for i, (name, (_a, _b, truth)) in enumerate(cases.items()):
        e = [endpoint_error(f[i], truth) for f in (opencv, ours, fast)]
        errors.append(e)
        print(f"  {name:22s} {e[0]:8.4f} {e[1]:8.4f} {e[2]:8.4f}")
    mean = np.mean(errors, axis=0)
    worst = np.max(np.array(errors)[:, 1:] / np.array(errors)[:, :1], axis=0)
    print(f"  {'mean':22s} {mean[0]:8.4f} {mean[1]:8.4f} {mean[2]:8.4f}")
    print(
        f"  EPE ratio to OpenCV: tvl1_torch mean {mean[1] / mean[0]:.3f} (worst pair "
        f"{worst[0]:.3f}); tvl1_torch_fast mean {mean[2] / mean[0]:.3f} (worst {worst[1]:.3f})"
    )


def bench_features(workdir: Path) -> None:
    from talkit.datasets.synthetic.videos import generate_videos
    from talkit.extractors.extract import extract_video
    from talkit.pipelines.demo import DEMO_CONFIG, DEMO_SIZE

    generate_videos(workdir, num_videos=3, size=DEMO_SIZE, duration_s=4.0, seed=11)
    kw = {
        "streams": ("flow",),
        "input_size": DEMO_CONFIG["backbones"]["i3d"]["input_size"],
        "resize_short": DEMO_CONFIG["backbones"]["i3d"]["resize_short"],
        "random_weights_seed": 0,
    }
    feats: dict[str, list[np.ndarray]] = {"tvl1": [], "tvl1_torch": [], "fast": [], "farneback": []}
    methods = {"tvl1": "tvl1", "tvl1_torch": "tvl1_torch", "fast": "tvl1_torch_fast"}
    methods["farneback"] = "farneback"
    for video in sorted((workdir / "videos").iterdir()):
        for key, method in methods.items():
            feats[key].append(extract_video(video, flow_method=method, **kw).streams["flow"])
    ref = np.concatenate(feats["tvl1"])
    print(f"\n== I3D flow features (random weights), {len(ref)} snippets of demo-like videos ==")
    for key, name in (
        ("tvl1_torch", "tvl1_torch"),
        ("fast", "tvl1_torch_fast"),
        ("farneback", "Farneback (for scale)"),
    ):
        other = np.concatenate(feats[key])
        cos = (ref * other).sum(1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(other, axis=1)
        rel = np.linalg.norm(ref - other, axis=1) / np.linalg.norm(ref, axis=1)
        print(
            f"  {name:22s} cosine to OpenCV TV-L1's: min {cos.min():.5f} mean {cos.mean():.5f}"
            f"   relative L2 difference: median {np.median(rel):.4f} max {rel.max():.4f}"
        )


def bench_cuda(size: int, args: argparse.Namespace, workdir: Path) -> None:
    print(f"\n== CUDA, {size}x{size} ==")
    if not torch.cuda.is_available():
        print("  no CUDA device: CUDA numbers not measured")
        return
    frames = demo_frames(size, 32, workdir / "cuda")
    reps = -(-args.cuda_pairs // 32)
    firsts = np.concatenate([frames[:-1]] * reps)[: args.cuda_pairs]
    seconds = np.concatenate([frames[1:]] * reps)[: args.cuda_pairs]
    comp = FlowComputer(flow_spec("tvl1_torch", device="cuda"))
    fast = FlowComputer(flow_spec("tvl1_torch_fast", device="cuda"))
    t0 = time.perf_counter()
    comp.pairs(firsts[:64], seconds[:64])
    fast.pairs(firsts[:64], seconds[:64])
    torch.cuda.synchronize()
    print(f"  {torch.cuda.get_device_name()}; warm-up {time.perf_counter() - t0:.1f} s")
    batch = comp._torch.auto_batch(size, size)  # reported, not used
    for name, c in (("tvl1_torch", comp), ("tvl1_torch_fast", fast)):
        elapsed = _time(lambda c=c: c.pairs(firsts, seconds), args.repeat)
        print(
            f"  {name:16s}: {len(firsts) / elapsed:8.1f} pairs/s  ({len(firsts)} pairs, "
            f"automatic batch {batch}; target >= 50 at 224x224)"
        )
    ref = FlowComputer(flow_spec("tvl1_torch")).pairs(firsts[:4], seconds[:4])
    got = comp.pairs(firsts[:4], seconds[:4])
    print(f"  mean endpoint difference CUDA vs CPU (4 pairs): {_mean_difference(got, ref):.2e} px")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="224,112", help="square frame sizes, comma-separated")
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="a worker's torch/OpenCV threads")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--cuda-pairs", type=int, default=256)
    parser.add_argument("--skip-truth", action="store_true")
    parser.add_argument("--skip-features", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    print(f"OpenCV {cv2.__version__}, torch {torch.__version__}, {args.threads} thread(s)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        results = {size: bench_cpu(size, args, work) for size in sizes}
        torch.set_num_threads(args.threads)
        if not args.skip_truth:
            bench_truth()
        if not args.skip_features:
            bench_features(work / "features")
        bench_cuda(sizes[0], args, work)
    print("\n== summary ==")
    for size, r in results.items():
        print(
            f"  {size}x{size}: tvl1_torch {r['ratio']:.2f}x OpenCV TV-L1 pairs/s, "
            f"tvl1_torch_fast {r['fast_ratio']:.2f}x (CPU, {args.threads} thread(s))"
        )


if __name__ == "__main__":
    main()
