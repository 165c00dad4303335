"""Benchmark: training iterations/s reading from the store vs from in-memory tensors.

Builds a THUMOS-shaped synthetic store (every third THUMOS14 video of the real gt.json,
2048-d two-stream features at the default difficulty), then runs the same training loop
(the training test's narrowed BaSNet or LGBM-Net: T = 64, batch 16, standardized input)
for ``--iterations`` steps fed two ways:

- store: ``SnippetDataset`` over a fresh ``StoreFeatureSource`` (cold cache) through a
  ``DataLoader`` with ``--workers`` spawned workers (0: read in the training process),
  each with its own store handle and decoded-video cache (``--cache-mb``);
- memory: the same dataset over ``ArrayFeatureSource`` holding every video's features as
  in-memory arrays, no workers.

Both see the same batches (the resumable sampler is a function of seed and iteration).
The two loops advance in alternating blocks of 2 steps so that the noise of a shared
machine hits both alike; each is timed from its first batch (worker start-up is reported
apart). Prints iterations/s, the time each step waited for data, and the ratio.
Target: >= 0.9, i.e. data loading is never the bottleneck.

    python benchmarks/train_io.py [--iterations 400] [--workers 0] [--head basnet]
        [--cache-mb 2048] [--store DIR] [--step 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from talkit.datasets import load_annotations, write_activitynet_json
from talkit.datasets.bundled import BUNDLED
from talkit.datasets.store_dataset import (
    ArrayFeatureSource,
    SnippetDataset,
    StoreFeatureSource,
    collate_items,
    feature_stats,
)
from talkit.datasets.synthetic.features import write_features_to_store
from talkit.wtal_heads.config import RunConfig, load_config
from talkit.wtal_heads.train import ResumableBatchSampler, build_model, build_optimizer

DEFAULT_GT = BUNDLED["thumos14"].path  # shipped with talkit


def config(head: str) -> RunConfig:
    overrides = {
        "data.num_segments": 64,
        "model.params.cas_dim": 32,
        "train.batch_size": 16,
        "train.device": "cpu",
        "optim.lr": 1e-3,
    }
    overrides["model.params.filter_dim" if head == "basnet" else "model.params.attention_dim"] = 16
    return load_config(f"{head}_thumos14", overrides)


def build_store(root: Path, step: int) -> tuple[str, Path]:
    ds = load_annotations(DEFAULT_GT)
    ids = sorted(ds.videos)[::step]
    sub = ds.model_copy(update={"videos": {v: ds.videos[v] for v in ids}})
    url = str(root / "feats.store")
    filled, _ = write_features_to_store(
        url, sub, dataset_name="thumos14", feature_set="i3d", dim=2048
    )
    gt = root / "gt.json"
    write_activitynet_json(filled, gt)
    return url, gt


class Loop:
    """One training loop (model, optimizer, loader) that can be advanced a few steps at a time."""

    def __init__(
        self,
        cfg: RunConfig,
        dataset: SnippetDataset,
        workers: int,
        mean: np.ndarray,
        std: np.ndarray,
    ) -> None:
        torch.manual_seed(cfg.train.seed)
        self.model = build_model(cfg, dataset.source.dim, len(dataset.classes))
        self.model.set_input_stats(torch.from_numpy(mean), torch.from_numpy(std))
        self.optimizer = build_optimizer(self.model.parameters(), cfg.optim)
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_sampler=ResumableBatchSampler(len(dataset), cfg.train.batch_size, cfg.train.seed),
            collate_fn=collate_items,
            num_workers=workers,
            prefetch_factor=4 if workers else None,
            multiprocessing_context="spawn" if workers else None,
            generator=torch.Generator().manual_seed(0),
        )
        t0 = time.perf_counter()
        self.batches = iter(loader)
        self.pending = next(self.batches)  # includes worker start-up
        self.startup = time.perf_counter() - t0
        self.seconds = 0.0
        self.waited = 0.0
        self.steps = 0

    def run(self, steps: int) -> None:
        t0 = time.perf_counter()
        for _ in range(steps):
            if self.pending is not None:
                batch, self.pending = self.pending, None
            else:
                tw = time.perf_counter()
                batch = next(self.batches)
                self.waited += time.perf_counter() - tw
            self.model.train()
            out = self.model(batch["features"], batch["mask"])
            loss, _ = self.model.loss(out, batch["labels"])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        self.seconds += time.perf_counter() - t0
        self.steps += steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iterations", type=int, default=400)
    ap.add_argument("--workers", type=int, default=0, help="loader processes for the store run")
    ap.add_argument("--head", default="basnet", choices=["basnet", "lgbm"])
    ap.add_argument("--cache-mb", type=float, default=2048)
    ap.add_argument("--store", type=Path, default=None, help="reuse/keep the store in this dir")
    ap.add_argument("--step", type=int, default=3, help="every STEP-th THUMOS14 video")
    args = ap.parse_args()
    torch.set_num_threads(2)

    with tempfile.TemporaryDirectory() as tmp:
        root = args.store or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        if (root / "feats.store").exists():
            url, gt = str(root / "feats.store"), root / "gt.json"
        else:
            url, gt = build_store(root, args.step)
        print(f"store: {url} ready in {time.perf_counter() - t:.1f} s")
        ann = load_annotations(gt)
        cfg = config(args.head)
        ids = [v for v in sorted(ann.subset("train").videos) if ann.videos[v].labels]
        reader = StoreFeatureSource(url, ["thumos14/i3d"], streams="both").open()
        memory_src = ArrayFeatureSource(
            {v: reader.read(v) for v in ids}, {v: reader.timestamps(v) for v in ids}
        )
        mean, std = feature_stats(memory_src, ids)
        nbytes = sum(memory_src.read(v).nbytes for v in ids)
        print(
            f"{len(ids)} training videos, {nbytes / 2**20:.0f} MB of features; head {args.head}, "
            f"T=64, batch 16, {args.iterations} iterations, {args.workers} workers, "
            f"cache {args.cache_mb:g} MB per process"
        )

        def dataset(src):
            return SnippetDataset(src, ann, ids, sampling="stratified", num_segments=64, seed=0)

        # Both loops advance in alternating blocks of 2 steps, so machine noise hits both
        # alike. The store loop starts with a fresh handle: its cache is cold, as in a run.
        loops = {
            "memory": Loop(cfg, dataset(memory_src), 0, mean, std),
            "store": Loop(
                cfg,
                dataset(
                    StoreFeatureSource(
                        url, ["thumos14/i3d"], streams="both", cache_mb=args.cache_mb
                    )
                ),
                args.workers,
                mean,
                std,
            ),
        }
        block = 2
        for k in range(0, args.iterations, block):
            order = ("memory", "store") if (k // block) % 2 == 0 else ("store", "memory")
            for name in order:
                loops[name].run(min(block, args.iterations - k))
        rates = {}
        for name, loop in loops.items():
            rates[name] = loop.steps / loop.seconds
            print(
                f"  {name:6s}: {rates[name]:6.2f} it/s, waiting for data "
                f"{1000 * loop.waited / loop.steps:5.1f} ms/it (start-up {loop.startup:.1f} s, not counted)"
            )
        ratio = rates["store"] / rates["memory"]
        print(
            f"ratio store/memory: {ratio:.3f} (target >= 0.9) -> {'OK' if ratio >= 0.9 else 'BELOW TARGET'}"
        )


if __name__ == "__main__":
    main()
