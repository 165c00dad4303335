"""The chunk cache of an open store (``FeatureStore.open(cache_bytes=N)``).

It must never change what a read returns: the same values as an uncached read for every
layout, none of the store's I/O once a crop is cached, a bounded size, and no data of an
older snapshot after the store moved on.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from talkit.store import FeatureStore, StorageOptions, StoreError, fastread
from talkit.store.chunk_cache import ChunkCache
from tests.store_helpers import DIMS, DS, FS, features, spec

T = 53
CROPS = [(0, T), (3, 17), (15, 33), (31, 49), (40, 90), (52, 53), (20, 20)]
STORAGES = [
    StorageOptions(),  # one shard, one chunk
    StorageOptions(chunk_t=8, shard_t=16),  # several shards
    StorageOptions(chunk_t=16, shard_t=None),  # unsharded
    StorageOptions(chunk_t=8, codec="blosc-zstd"),
]


def write(path: Path, storage: StorageOptions, seed: int = 3) -> dict[str, np.ndarray]:
    store = FeatureStore.create(str(path))
    store.create_feature_set(DS, FS, spec(), storage=storage)
    data = features(seed, T)
    data["rgb"][16:32] = 0.0  # an all-zero chunk: never written, read as the fill value
    with store.writer(message="w") as w:
        w.write_video(DS, FS, "v", streams=data)
    return data


def joint(data: dict[str, np.ndarray], a: int, b: int) -> np.ndarray:
    return np.concatenate([data[s][a:b] for s in DIMS], axis=1)


@pytest.mark.parametrize("storage", STORAGES, ids=lambda s: f"{s.codec}-{s.chunk_t}-{s.shard_t}")
def test_cached_reads_equal_the_data_and_a_warm_crop_does_no_io(
    tmp_path: Path, storage: StorageOptions, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = write(tmp_path / "s", storage)
    store = FeatureStore.open(str(tmp_path / "s"), cache_bytes=1 << 20)
    video = store.feature_set(DS, FS).video("v")
    cold = {(a, b): video.features(start=a, stop=b) for a, b in CROPS}
    stats = store.cache_stats()
    assert stats is not None and stats.chunks > 0 and stats.bytes > 0

    def no_io(coroutine: object) -> None:
        getattr(coroutine, "close", lambda: None)()
        raise AssertionError("a cached crop went to the store")

    # Crops of written chunks only: every one of them is in the cache now.
    monkeypatch.setattr(fastread, "sync", no_io)
    for a, b in [(0, 16), (33, 53), (40, 53)]:
        np.testing.assert_array_equal(video.features(start=a, stop=b), joint(data, a, b))
    monkeypatch.undo()
    for (a, b), got in cold.items():
        np.testing.assert_array_equal(got, joint(data, a, b))
        np.testing.assert_array_equal(video.features(start=a, stop=b), got)
        np.testing.assert_array_equal(video.stream("flow")[a:b], data["flow"][a:b])
    after = store.cache_stats()
    assert after is not None and after.hits > stats.hits


def test_cache_stays_within_its_budget_and_still_reads_right(tmp_path: Path) -> None:
    data = write(tmp_path / "s", StorageOptions(chunk_t=8, shard_t=16))
    budget = 700  # about two compressed chunks of this tiny feature set
    store = FeatureStore.open(str(tmp_path / "s"), cache_bytes=budget)
    video = store.feature_set(DS, FS).video("v")
    misses = []
    for _ in range(2):
        for a, b in CROPS:
            np.testing.assert_array_equal(video.features(start=a, stop=b), joint(data, a, b))
            stats = store.cache_stats()
            assert stats is not None and stats.bytes <= budget
        misses.append(stats.misses)
    assert misses[1] > misses[0]  # chunks were dropped and fetched again


def test_cache_is_dropped_when_the_store_moves_to_a_new_snapshot(tmp_path: Path) -> None:
    url = str(tmp_path / "s")
    old = write(tmp_path / "s", StorageOptions(chunk_t=8, shard_t=16))
    store = FeatureStore.open(url, mode="a", cache_bytes=1 << 20)
    before = store.feature_set(DS, FS).video("v")
    np.testing.assert_array_equal(before.features(start=0, stop=T), joint(old, 0, T))
    new = features(11, T)
    with store.writer(message="re-extract") as w:
        w.write_video(DS, FS, "v", streams=new, overwrite=True)
    after = store.feature_set(DS, FS).video("v")
    # Same array paths, other snapshot: nothing of the old chunks may answer for the new.
    np.testing.assert_array_equal(after.features(start=0, stop=T), joint(new, 0, T))
    np.testing.assert_array_equal(before.features(start=5, stop=40), joint(old, 5, 40))
    np.testing.assert_array_equal(after.features(start=5, stop=40), joint(new, 5, 40))


def test_without_a_cache_there_are_no_stats_and_bad_sizes_are_refused(tmp_path: Path) -> None:
    write(tmp_path / "s", StorageOptions())
    assert FeatureStore.open(str(tmp_path / "s")).cache_stats() is None
    for bad in (-1, 1.5, True):
        with pytest.raises(StoreError, match="cache_bytes"):
            FeatureStore.open(str(tmp_path / "s"), cache_bytes=bad)  # type: ignore[arg-type]


def test_chunk_cache_drops_least_recently_used_first() -> None:
    cache = ChunkCache(10)
    cache.put("a", b"1234")
    cache.put("b", b"1234")
    assert cache.get("a") == b"1234"  # "a" is now the most recent
    cache.put("c", b"1234")  # 12 bytes > 10: "b" goes
    assert cache.get("b") is None and cache.get("a") == b"1234" and cache.get("c") == b"1234"
    cache.put("big", b"x" * 11)  # larger than the budget: not kept, nothing dropped for it
    assert cache.get("big") is None and cache.get("a") is not None
    cache.put("a", b"12")  # replacing an entry counts its new size only
    stats = cache.stats()
    assert (stats.bytes, stats.chunks) == (6, 2)
    assert stats.hits == 4 and stats.misses == 2 and stats.hit_rate == pytest.approx(4 / 6)
    cache.clear()
    assert cache.stats().bytes == 0 and cache.get("a") is None
    with pytest.raises(ValueError, match="max_bytes"):
        ChunkCache(0)


def test_chunk_cache_keeps_its_accounting_under_concurrent_use() -> None:
    cache = ChunkCache(4000)

    def work(worker: int) -> None:
        for i in range(2000):
            key = (worker, i % 37)
            if cache.get(key) is None:
                cache.put(key, bytes(10 + (i % 50)))

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats = cache.stats()
    held = sum(len(cache.get(k) or b"") for k in [(w, i) for w in range(4) for i in range(37)])
    assert stats.bytes <= 4000 and stats.bytes == held
