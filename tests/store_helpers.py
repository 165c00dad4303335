"""Small synthetic features and worker functions for the store tests.

Worker functions live here (an importable module) so ``spawn`` subprocesses can run them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from talkit.store import FeatureSetSpec, FeatureStore, ForkWriter

DS, FS = "thumos14", "i3d"
KEY = f"{DS}/{FS}"
DIMS = {"rgb": 8, "flow": 6}


def spec(**overrides: object) -> FeatureSetSpec:
    """A small two-stream spec with the I3D sampling convention."""
    base: dict[str, object] = {
        "backbone": "i3d",
        "streams": dict(DIMS),
        "fps": 25.0,
        "clip_len": 16,
        "stride": 16,
        "checkpoints": {"rgb": "random:0", "flow": "random:0"},
    }
    base.update(overrides)
    return FeatureSetSpec(**base)


def features(
    seed: int, num_snippets: int, dims: dict[str, int] | None = None
) -> dict[str, np.ndarray]:
    """Deterministic non-negative float32 streams (seeded, so a reader can recompute them)."""
    rng = np.random.default_rng(seed)
    return {
        name: np.maximum(rng.standard_normal((num_snippets, dim)), 0).astype(np.float32)
        for name, dim in (dims or DIMS).items()
    }


def make_store(
    path: Path, videos: dict[str, int], *, seed0: int = 0, **spec_overrides: object
) -> FeatureStore:
    """A store with one feature set and the given videos (id -> T), in one commit."""
    store = FeatureStore.create(str(path))
    store.create_feature_set(DS, FS, spec(**spec_overrides))
    with store.writer(message="initial videos") as w:
        for i, (vid, t) in enumerate(videos.items()):
            w.write_video(DS, FS, vid, streams=features(seed0 + i, t), attrs={"duration": t * 0.64})
    return store


def assert_unchanged(url: str, snapshot: str | None, videos: list[str]) -> None:
    """A failed write left no trace: the head is still ``snapshot``, with just ``videos``."""
    reopened = FeatureStore.open(url)
    assert reopened.snapshot_id == snapshot
    assert reopened.feature_set(KEY).videos() == videos


def fork_worker(fork: ForkWriter, video_ids: list[str], seeds: list[int]) -> ForkWriter:
    """Worker process: write videos through a forked writer and hand it back."""
    for vid, seed in zip(video_ids, seeds, strict=True):
        fork.write_video(DS, FS, vid, streams=features(seed, 30 + seed % 7))
    return fork


def independent_writer(url: str, video_ids: list[str], seeds: list[int]) -> None:
    """Worker process: open the store itself and commit its own writer."""
    store = FeatureStore.open(url, mode="a")
    with store.writer(message=f"worker writes {len(video_ids)} videos") as w:
        for vid, seed in zip(video_ids, seeds, strict=True):
            w.write_video(DS, FS, vid, streams=features(seed, 30 + seed % 7))


def _crash_child(url: str) -> None:
    """Write big videos in one writer; say when the first is in, so the parent can kill us."""
    store = FeatureStore.open(url, mode="a")
    dims = {"rgb": 256, "flow": 256}
    with store.writer(message="never committed") as w:
        for i in range(4):
            w.write_video(DS, "big", f"big{i}", streams=features(100 + i, 12000, dims))
            print(f"wrote big{i}", flush=True)


if __name__ == "__main__":  # used by the crash test: python tests/store_helpers.py URL
    _crash_child(sys.argv[1])
