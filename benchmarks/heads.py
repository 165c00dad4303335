"""Benchmark: s/iter of BaSNet, LGBM-Net, D2-Net and DGAM at the paper's width, batch and T.

For each head (the ``{head}_thumos14`` preset: width 2048, batch 16 (D2-Net 20, DGAM 32),
the preset's T (750; DGAM 400) unless ``--num-segments`` says otherwise; D2-Net sampled
(stratified) to exactly T, where its preset crops at most T; DGAM with one-step stages, so
that both measurements alternate a CVAE step and a model step alike) it measures, in the
same run:

- loop: seconds per iteration of ``talkit.wtal_heads.train.train`` itself, reading a
  synthetic THUMOS-shaped store (2048-d, ``--videos`` videos) through the real data path
  (sampling, cache, collation, device copy) with the preset's optimizer; from the
  per-iteration log, the first iteration (cold cache, allocator warm-up) left out;
- compute: the same model's forward, loss, backward and Adam step on in-memory tensors of
  the same shape, after one warm-up step.

Prints both, their ratio compute / loop (target >= 0.9: the data path and the loop add at
most ~10%), and LGBM-Net / BaSNet for each (target <= 1.5).

    python benchmarks/heads.py [--iterations 3] [--num-segments 750] [--threads 2]
        [--videos 24] [--store DIR] [--heads basnet,lgbm,d2net,dgam]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from talkit.datasets import load_annotations, write_activitynet_json
from talkit.datasets.bundled import BUNDLED
from talkit.datasets.synthetic.features import write_features_to_store
from talkit.wtal_heads.config import RunConfig, load_config
from talkit.wtal_heads.train import build_model, build_optimizer, train


def build_store(root: Path, videos: int) -> tuple[str, Path]:
    """``videos`` THUMOS14 videos per subset with their real timelines, synthetic features."""
    gt = root / "gt.json"
    url = str(root / "feats.store")
    if gt.is_file():
        return url, gt
    ds = load_annotations(BUNDLED["thumos14"].path)
    keep = {}
    for subset in ("train", "test"):
        ids = sorted(v for v in ds.videos if ds.videos[v].subset == subset)
        picked: list[str] = []
        for c in ds.classes:  # every class at least once, then evenly spaced videos
            first = next((v for v in ids if c in ds.videos[v].labels and v not in picked), None)
            if first is not None and len(picked) < videos:
                picked.append(first)
        rest = [v for v in ids if v not in picked]
        picked += rest[:: max(1, len(rest) // max(1, videos - len(picked)))][: videos - len(picked)]
        keep.update({v: ds.videos[v] for v in picked})
    sub = ds.model_copy(update={"videos": keep})
    filled, _ = write_features_to_store(
        url, sub, dataset_name="thumos14", feature_set="i3d", dim=2048, seed=0
    )
    write_activitynet_json(filled, gt)
    return url, gt


def config(head: str, num_segments: int | None, iterations: int) -> RunConfig:
    # D2-Net's preset crops at most T snippets (batches as long as their longest crop); the
    # benchmark samples exactly T (stratified) so the loop's batches have the in-memory shape.
    extra: dict[str, object] = {"data.sampling": "stratified"} if head == "d2net" else {}
    if head == "dgam":
        # A DGAM step is a CVAE step or a model step (different costs), in stages of
        # stage_iterations steps. With 1-step stages the loop's timed iterations 2..N and the
        # in-memory steps 1..N-1 (after the warm-up step 0) are the same stage sequence.
        extra["model.params.stage_iterations"] = 1
    if num_segments is not None:
        extra["data.num_segments"] = extra["data.eval_num_segments"] = num_segments
    return load_config(
        f"{head}_thumos14",
        {
            **extra,
            "data.num_workers": 0,
            "data.val_fraction": 0.05,
            "train.iterations": iterations,
            "train.eval_every": 10**6,  # validation only at the end, after the timed steps
            "train.log_every": 1,
            "train.device": "cpu",
            "eval.predict_split": None,
        },
    )


def loop_seconds(cfg: RunConfig, url: str, gt: Path, out: Path) -> float:
    """Seconds per iteration of the real loop, iterations 2..N (from its it/s log)."""
    train(cfg, store=url, annotations=gt, out=out, show_progress=False)
    rows = [
        json.loads(line)
        for line in (out / "metrics.jsonl").read_text().splitlines()
        if '"split": "train"' in line
    ]
    elapsed = {r["iteration"]: r["iteration"] / r["it_per_s"] for r in rows}
    n = max(elapsed)
    return (elapsed[n] - elapsed[1]) / (n - 1)


def compute_seconds(cfg: RunConfig, steps: int) -> float:
    """Seconds per forward + loss + backward + Adam step on in-memory tensors."""
    torch.manual_seed(0)
    model = build_model(cfg, 2048, 20)
    opt = build_optimizer(model.parameters(), cfg.optim)
    x = torch.rand(cfg.train.batch_size, cfg.data.num_segments, 2048)
    y = torch.zeros(cfg.train.batch_size, 20)
    y[torch.arange(cfg.train.batch_size), torch.arange(cfg.train.batch_size) % 20] = 1
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        model.train()
        loss, _ = model.loss(model(x, None), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return sum(times[1:]) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iterations", type=int, default=3, help="loop iterations (>= 2)")
    ap.add_argument(
        "--num-segments", type=int, default=None, help="T (default: each preset's, 750; DGAM 400)"
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--videos", type=int, default=24, help="videos per subset in the store")
    ap.add_argument("--store", type=Path, default=None, help="reuse/keep the store in this dir")
    ap.add_argument("--heads", default="basnet,lgbm,d2net,dgam")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    heads = args.heads.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        root = args.store or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        url, gt = build_store(root, args.videos)
        results: dict[str, tuple[float, float]] = {}
        for head in heads:
            cfg = config(head, args.num_segments, max(2, args.iterations))
            loop = loop_seconds(cfg, url, gt, Path(tmp) / f"run_{head}")
            compute = compute_seconds(cfg, max(1, args.iterations - 1))
            results[head] = (loop, compute)
            print(
                f"{head:7s} width 2048, batch {cfg.train.batch_size}, T {cfg.data.num_segments}: "
                f"loop {loop:7.2f} s/iter, compute {compute:7.2f} s/iter, "
                f"compute/loop {compute / loop:.2f} (target >= 0.9)",
                flush=True,
            )
        if "basnet" in results and "lgbm" in results:
            (lb, cb), (ll, cl) = results["basnet"], results["lgbm"]
            print(f"LGBM-Net / BaSNet: loop {ll / lb:.2f}, compute {cl / cb:.2f} (target <= 1.5)")


if __name__ == "__main__":
    main()
