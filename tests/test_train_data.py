"""Feature datasets over the store: sampling, labels, joined feature sets, workers, splits."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from talkit.datasets import Dataset, Segment, Video
from talkit.datasets.store_dataset import (
    ArrayFeatureSource,
    FeatureAlignmentError,
    SnippetDataset,
    StoreFeatureSource,
    collate_items,
    crop_window,
    feature_stats,
    multi_hot,
    position_times,
    stratified_indices,
    uniform_indices,
)
from talkit.errors import InputError
from talkit.store import FeatureSetSpec, FeatureStore
from talkit.wtal_heads.data import carve_validation


def _dataset(ids: list[str], classes=("A", "B", "C")) -> Dataset:
    videos = {
        v: Video(
            id=v,
            subset="train",
            annotations=[Segment(label=classes[i % len(classes)], start_s=1.0, end_s=2.0)],
        )
        for i, v in enumerate(ids)
    }
    return Dataset(classes=list(classes), videos=videos)


def _write_store(path: Path, sets: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]) -> str:
    """sets: feature set name -> video -> (features (T, D), timestamps (T, 2))."""
    url = str(path)
    store = FeatureStore.create(url)
    for name, videos in sets.items():
        dim = next(iter(videos.values()))[0].shape[1]
        spec = FeatureSetSpec(
            backbone=name,
            streams={"rgb": dim // 2, "flow": dim - dim // 2},
            fps=25.0,
            clip_len=16,
            stride=16,
        )
        store.create_feature_set("toy", name, spec)
        with store.writer(message=f"write {name}") as w:
            for vid, (x, ts) in videos.items():
                half = dim // 2
                w.write_video(
                    "toy",
                    name,
                    vid,
                    streams={"rgb": x[:, :half], "flow": x[:, half:]},
                    timestamps=ts,
                )
    return url


def _ts(n: int, step: float = 0.64, offset: float = 0.0) -> np.ndarray:
    s = offset + np.arange(n) * step
    return np.stack([s, s + step], axis=1)


def test_stratified_sampling_draws_one_snippet_per_bin_and_covers_the_video() -> None:
    rng = np.random.default_rng(0)
    idx = stratified_indices(1000, 100, rng)
    assert len(idx) == 100 and (np.diff(idx) >= 0).all()  # bins share their edge snippet
    assert ((idx >= np.arange(100) * 10) & (idx <= np.arange(100) * 10 + 10)).all()
    assert idx.max() >= 990  # the last bin reaches the end
    # A video shorter than T repeats snippets but keeps their order and covers all of them.
    short = stratified_indices(10, 64, rng)
    assert len(short) == 64 and (np.diff(short) >= 0).all() and set(short) == set(range(10))
    # Different draws differ; the same generator state gives the same draw.
    a = stratified_indices(500, 50, np.random.default_rng(1))
    assert np.array_equal(a, stratified_indices(500, 50, np.random.default_rng(1)))
    assert not np.array_equal(a, stratified_indices(500, 50, np.random.default_rng(2)))


def test_uniform_sampling_is_floor_of_even_positions() -> None:
    assert uniform_indices(10, 4).tolist() == [0, 2, 5, 7]
    assert uniform_indices(3, 6).tolist() == [0, 0, 1, 1, 2, 2]
    assert uniform_indices(5, 5).tolist() == [0, 1, 2, 3, 4]


def test_crop_window_is_contiguous_and_never_longer_than_asked() -> None:
    rng = np.random.default_rng(0)
    starts = set()
    for _ in range(50):
        a, b = crop_window(100, 30, rng)
        assert b - a == 30 and a >= 0 and b <= 100
        starts.add(a)
    assert len(starts) > 10
    assert crop_window(20, 30, rng) == (0, 20)


def test_resampled_positions_map_back_to_seconds_over_the_whole_video() -> None:
    ts = _ts(100)  # 64 s of back-to-back snippets
    times = position_times(ts, 10, uniform_indices(100, 10))
    assert times.shape == (10, 2)
    assert times[0, 0] == 0.0 and np.isclose(times[-1, 1], 64.0)
    assert np.allclose(np.diff(times[:, 0]), 6.4)
    # Full sampling keeps each snippet's own interval.
    assert np.allclose(position_times(ts, 100, None), ts)


def test_multi_hot_labels_follow_the_class_list() -> None:
    assert multi_hot(["C", "A"], ["A", "B", "C"]).tolist() == [1, 0, 1]


def test_dataset_samples_each_method_and_pads_crops_with_a_mask() -> None:
    feats = {
        f"v{i}": np.random.default_rng(i).random((20 + 10 * i, 6), dtype=np.float32)
        for i in range(3)
    }
    src = ArrayFeatureSource(feats)
    ann = _dataset(list(feats))
    strat = SnippetDataset(src, ann, list(feats), sampling="stratified", num_segments=16)
    item = strat[(2, 123)]
    assert item.features.shape == (16, 6) and item.label.tolist() == [0, 0, 1]
    assert np.array_equal(item.features, strat[(2, 123)].features)  # the seed decides
    # Each sampled row is one of the video's snippets.
    rows = {tuple(r) for r in feats["v2"]}
    assert all(tuple(r) in rows for r in item.features)

    full = SnippetDataset(src, ann, list(feats), sampling="full")
    assert np.array_equal(full[1].features, feats["v1"])

    crop = SnippetDataset(src, ann, list(feats), sampling="crop", num_segments=25)
    batch = collate_items([crop[(i, 7)] for i in range(3)])
    assert batch["features"].shape == (3, 25, 6)
    assert batch["mask"].sum(1).tolist() == [20, 25, 25]
    assert batch["labels"].shape == (3, 3)
    # Uniform batches need no mask.
    uni = SnippetDataset(src, ann, list(feats), sampling="uniform", num_segments=8)
    assert collate_items([uni[i] for i in range(3)])["mask"] is None


def test_store_source_selects_streams_and_joins_aligned_feature_sets(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    a = {v: (rng.random((12, 4), dtype=np.float32), _ts(12)) for v in ("x", "y")}
    b = {v: (rng.random((12, 6), dtype=np.float32), _ts(12)) for v in ("x", "y")}
    url = _write_store(tmp_path / "s", {"a": a, "b": b})

    both = StoreFeatureSource(url, ["toy/a", "toy/b"], streams="both")
    assert both.dim == 10 and both.dims == {"toy/a": 4, "toy/b": 6}
    both.check_alignment(["x", "y"])
    x = both.open().read("x")
    assert np.allclose(x, np.concatenate([a["x"][0], b["x"][0]], axis=1))

    rgb = StoreFeatureSource(url, ["toy/a"], streams="rgb")
    assert rgb.dim == 2 and np.allclose(rgb.open().read("y", 3, 5), a["y"][0][3:5, :2])
    flow = StoreFeatureSource(url, ["toy/b"], streams="flow")
    assert flow.dim == 3 and np.allclose(flow.open().read("y"), b["y"][0][:, 3:])
    with pytest.raises(InputError, match="no stream 'audio'"):
        StoreFeatureSource(url, ["toy/a"], streams="audio")


def test_misaligned_feature_sets_fail_with_the_video_and_the_snippet(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    a = {
        "x": (rng.random((12, 4), dtype=np.float32), _ts(12)),
        "y": (rng.random((8, 4), dtype=np.float32), _ts(8)),
    }
    b = {
        "x": (rng.random((12, 4), dtype=np.float32), _ts(12, offset=0.5)),  # shifted half a second
        "y": (rng.random((9, 4), dtype=np.float32), _ts(9)),  # one snippet more
    }
    url = _write_store(tmp_path / "s", {"a": a, "b": b})
    src = StoreFeatureSource(url, ["toy/a", "toy/b"])
    with pytest.raises(FeatureAlignmentError, match=r"video x: snippet 0 covers .* toy/b"):
        src.check_alignment(["x"])
    with pytest.raises(FeatureAlignmentError, match="toy/a has 8 snippets but toy/b has 9"):
        src.check_alignment(["y"])


def test_store_source_pickles_without_its_open_handle(tmp_path: Path) -> None:
    """DataLoader workers get the URL and open their own store."""
    rng = np.random.default_rng(0)
    url = _write_store(
        tmp_path / "s", {"a": {"x": (rng.random((12, 4), dtype=np.float32), _ts(12))}}
    )
    src = StoreFeatureSource(url, ["toy/a"])
    reader = src.open()
    assert src.open() is reader  # one handle per process, reused
    clone = pickle.loads(pickle.dumps(src))
    assert clone._reader is None
    assert np.array_equal(clone.open().read("x"), reader.read("x"))
    ann = _dataset(["x"])
    ds = SnippetDataset(src, ann, ["x"], sampling="stratified", num_segments=6)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=1, num_workers=1, collate_fn=collate_items, multiprocessing_context="spawn"
    )
    batch = next(iter(loader))
    assert batch["features"].shape == (1, 6, 4)


def test_decoded_video_cache_returns_the_same_snippets_and_respects_its_budget(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(0)
    videos = {v: (rng.random((40, 64), dtype=np.float32), _ts(40)) for v in ("x", "y")}
    url = _write_store(tmp_path / "s", {"a": videos})
    plain = StoreFeatureSource(url, ["toy/a"]).open()
    one_video_mb = 40 * 64 * 4 / 2**20
    cached = StoreFeatureSource(url, ["toy/a"], cache_mb=1.5 * one_video_mb).open()
    for start, stop in ((None, None), (5, 17), (30, None)):
        assert np.array_equal(cached.read("x", start, stop), plain.read("x", start, stop))
    assert list(cached._cache) == ["x"]
    cached.read("y", 2, 4)  # room for one video only: x goes
    assert list(cached._cache) == ["y"]
    assert np.array_equal(cached.read("y"), videos["y"][0])
    assert plain._cache == {}  # cache_mb=0 keeps nothing


def test_feature_stats_are_mean_and_std_per_dim() -> None:
    rng = np.random.default_rng(0)
    feats = {f"v{i}": (3 + 2 * rng.standard_normal((400, 3))).astype(np.float32) for i in range(5)}
    mean, std = feature_stats(ArrayFeatureSource(feats), list(feats), per_video=400)
    assert np.allclose(mean, 3, atol=0.15) and np.allclose(std, 2, atol=0.15)


def test_validation_split_is_carved_from_training_videos_deterministically() -> None:
    ids = [f"v{i:02d}" for i in range(40)]
    labels = {v: [f"c{i % 5}"] for i, v in enumerate(ids)}
    train, val = carve_validation(ids, labels, 0.2, seed=0)
    assert len(val) == 8 and not set(train) & set(val) and set(train) | set(val) == set(ids)
    assert {labels[v][0] for v in val} == {f"c{i}" for i in range(5)}  # every class held out
    assert carve_validation(list(reversed(ids)), labels, 0.2, seed=0) == (train, val)
    assert carve_validation(ids, labels, 0.2, seed=1)[1] != val
    # Single-video classes still give a validation split, and training keeps a video.
    one_each = {v: [v] for v in ids[:3]}
    tr, va = carve_validation(ids[:3], one_each, 0.5, seed=0)
    assert len(va) == 2 and len(tr) == 1
