"""The lean crop-read path (talkit.store.fastread) returns exactly what zarr returns.

Every codec and chunk layout the store writes is read both ways, over crops that start and
end inside chunks, on chunk edges, past the end, and empty; every layout the store writes
(transposed chunks too) goes through the lean path, whose chunk checksums are checked.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from talkit.store import FeatureStore, StorageOptions, fastread
from tests.store_helpers import DIMS, DS, FS, features, spec

T = 53  # not a multiple of any chunk length below
CROPS = [
    (0, T),
    (0, 1),
    (3, 17),
    (16, 32),
    (15, 33),
    (8, 29),  # starts on a chunk edge, ends inside a chunk
    (31, 49),  # crosses shard edges at 32 and 48 when shards hold 16 snippets
    (40, 53),
    (40, 90),
    (52, 53),
    (20, 20),
]


@pytest.fixture
def zarr_path() -> Iterator[None]:
    """Read through zarr-python's general path while the fixture is active."""
    fastread.ENABLED = False
    try:
        yield
    finally:
        fastread.ENABLED = True


def write(path: Path, storage: StorageOptions, engine: str = "icechunk", **spec_kw: object):
    store = FeatureStore.create(str(path), engine=engine)  # type: ignore[arg-type]
    store.create_feature_set(DS, FS, spec(**spec_kw), storage=storage)
    data = features(3, T)
    data["rgb"][16:32] = 0.0  # a whole chunk of zeros: zarr does not store it
    with store.writer(message="w") as w:
        w.write_video(DS, FS, "v", streams=data)
    return data


def read_all_ways(path: Path) -> dict[str, object]:
    """Crops, joint crops, slices and whole reads from a freshly opened store."""
    video = FeatureStore.open(str(path)).feature_set(DS, FS).video("v")
    out: dict[str, object] = {}
    for a, b in CROPS:
        out[f"features{a}:{b}"] = video.features(start=a, stop=b)
        out[f"flow{a}:{b}"] = video.features(["flow"], a, b)
        out[f"rgb[{a}:{b}]"] = video.stream("rgb")[a:b]
    out["neg"] = video.stream("flow")[-10:-2]
    out["tuple"] = video.stream("flow")[5:9, :]
    out["step"] = video.stream("rgb")[1:40:3]
    out["cols"] = video.stream("rgb")[4:12, 2:5]
    for name, array in video.read().items():
        out[f"read-{name}"] = array
    out["whole"] = video.stream("flow").read()
    return out


STORAGES = [
    StorageOptions(),  # the default: pcodec, chunks packed into shards (one chunk here)
    StorageOptions(chunk_t=16),  # pcodec, 4 chunks in one shard
    StorageOptions(chunk_t=8, shard_t=16),  # 4 shards, the last one partial
    StorageOptions(chunk_t=16, shard_t=None),  # unsharded: every chunk its own object
    StorageOptions(chunk_t=8, shard_t=32, codec="blosc-zstd"),
    StorageOptions(chunk_t=16, codec="blosc-zstd"),
    StorageOptions(chunk_t=16, codec="blosc-lz4", shuffle="bitshuffle"),
    StorageOptions(chunk_t=16, codec="zstd"),
    StorageOptions(chunk_t=16, codec="none"),
    StorageOptions(chunk_t=16, codec="blosc-zstd", transpose=True),
]


@pytest.mark.parametrize(
    "storage", STORAGES, ids=lambda s: f"{s.codec}-{s.chunk_t}-{s.shard_t}-{s.transpose}"
)
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_lean_path_reads_exactly_what_zarr_reads(
    tmp_path: Path, storage: StorageOptions, dtype: str
) -> None:
    data = write(tmp_path / "s", storage, dtype=dtype)
    fast = read_all_ways(tmp_path / "s")
    fastread.ENABLED = False
    try:
        slow = read_all_ways(tmp_path / "s")
    finally:
        fastread.ENABLED = True
    assert fast.keys() == slow.keys()
    for key in fast:
        got, want = np.asarray(fast[key]), np.asarray(slow[key])
        assert got.dtype == want.dtype and got.shape == want.shape, key
        np.testing.assert_array_equal(got, want, err_msg=key)
    joint = np.concatenate([data[s] for s in DIMS], axis=1).astype(dtype)
    np.testing.assert_array_equal(fast["features3:17"], joint[3:17])
    np.testing.assert_array_equal(fast["features16:32"][:, : DIMS["rgb"]], 0.0)
    video = FeatureStore.open(str(tmp_path / "s")).feature_set(DS, FS).video("v")
    plan = video.stream("rgb").plan
    assert plan is not None and plan.checksum  # every layout written is read and checked
    assert plan.transposed == storage.transpose


def test_plain_zarr_store_reads_through_the_lean_path(tmp_path: Path) -> None:
    data = write(tmp_path / "z", StorageOptions(chunk_t=16), engine="zarr")
    video = FeatureStore.open(str(tmp_path / "z")).feature_set(DS, FS).video("v")
    assert video.stream("flow").plan is not None
    np.testing.assert_array_equal(
        video.features(start=10, stop=40)[:, DIMS["rgb"] :], data["flow"][10:40]
    )


def test_zarr_path_fixture_really_disables_the_lean_path(tmp_path: Path, zarr_path: None) -> None:
    data = write(tmp_path / "s", StorageOptions(chunk_t=16))
    video = FeatureStore.open(str(tmp_path / "s")).feature_set(DS, FS).video("v")
    assert video.stream("rgb").plan is None
    np.testing.assert_array_equal(video.stream("flow")[5:20], data["flow"][5:20])


def test_shard_indexes_are_read_once_per_handle_and_follow_its_version(tmp_path: Path) -> None:
    """A handle keeps the shard indexes of its own snapshot; other versions read theirs."""
    url = str(tmp_path / "s")
    old = write(tmp_path / "s", StorageOptions(chunk_t=8, shard_t=16))
    store = FeatureStore.open(url, mode="a")
    a = store.snapshot_id
    video = store.feature_set(DS, FS).video("v")
    np.testing.assert_array_equal(video.stream("rgb")[10:40], old["rgb"][10:40])
    plan = video.stream("rgb").plan
    assert plan is not None and sorted(plan.indexes) == [0, 1, 2]
    new = features(7, T)  # same shape, other values: new chunks with other byte ranges
    new["rgb"][:, 0] = 1e3  # incompressible, so shard layouts differ between versions
    with store.writer(message="re-extract") as w:
        w.write_video(DS, FS, "v", streams=new, overwrite=True)
    # The old handle still reads its snapshot (same cached indexes, same chunk objects).
    np.testing.assert_array_equal(video.stream("rgb")[0:T], old["rgb"])
    np.testing.assert_array_equal(
        FeatureStore.open(url, version=a).feature_set(DS, FS).video("v").features(start=5, stop=50),
        np.concatenate([old[s][5:50] for s in DIMS], axis=1),
    )
    # The store itself moved on with its commit: it reads the new version.
    fresh = store.feature_set(DS, FS).video("v")
    assert fresh is not video
    np.testing.assert_array_equal(
        fresh.features(start=5, stop=50), np.concatenate([new[s][5:50] for s in DIMS], axis=1)
    )


def test_corrupt_shard_index_is_an_error_not_wrong_values() -> None:
    layout = fastread.ShardLayout(
        chunks_per_shard=2, index_nbytes=36, index_at_start=False, checksum=True
    )
    import google_crc32c

    body = np.array([[0, 10], [10, 12]], dtype="<u8").tobytes()
    good = body + np.uint32(google_crc32c.value(body)).tobytes()
    np.testing.assert_array_equal(layout.parse(good), [[0, 10], [10, 12]])
    bad = bytes([good[0] ^ 1]) + good[1:]
    with pytest.raises(fastread.Damaged, match="checksum"):
        layout.parse(bad)
    with pytest.raises(fastread.Damaged, match="36"):
        layout.parse(good[:-1])
    # verify=False skips only the arithmetic: the damaged index parses, the short one does not
    assert layout.parse(bad, verify=False).shape == (2, 2)
    with pytest.raises(fastread.Damaged, match="36"):
        layout.parse(good[:-1], verify=False)


def test_storage_options_shards_and_the_layout_of_older_feature_sets() -> None:
    assert StorageOptions().shard_rows(53) == StorageOptions().chunk_t  # no bigger than needed
    assert StorageOptions(chunk_t=8, shard_t=16).shard_rows(53) == 16
    assert StorageOptions(shard_t=None).shard_rows(53) is None
    assert StorageOptions(chunk_t=64, shard_t=100).shard_rows(1000) == 64  # whole chunks
    assert StorageOptions(chunk_t=64, shard_t=10).shard_rows(1000) == 64  # at least one
    # Feature sets created before sharding recorded no shard_t: they stay unsharded.
    legacy = {
        "chunk_t": 256,
        "codec": "pcodec",
        "clevel": 8,
        "shuffle": "shuffle",
        "transpose": False,
    }
    assert StorageOptions.from_attrs(legacy).shard_t is None
    assert (
        StorageOptions.from_attrs(StorageOptions().resolved().model_dump())
        == StorageOptions().resolved()
    )
