"""Feature store basics: create/open, write/read, lazy slicing, validation before writing."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import icechunk
import numpy as np
import pytest
import zarr
from cli_helpers import run_cli

from talkit.store import (
    FeatureSetNotFoundError,
    FeatureSetSpec,
    FeatureStore,
    FeatureValidationError,
    SourceInfo,
    StorageOptions,
    StoreError,
    StoreFormatError,
    VersionNotFoundError,
    VideoExistsError,
    VideoNotFoundError,
)
from talkit.store.integrity import attrs_digest
from tests.store_helpers import DIMS, DS, FS, assert_unchanged, features, make_store, spec


def test_write_then_read_back_exact_with_spec_timestamps_and_attrs(tmp_path: Path) -> None:
    store = FeatureStore.create(str(tmp_path / "s"))
    fs = store.create_feature_set(DS, FS, spec())
    source = tmp_path / "v.mp4"
    source.write_bytes(b"not really a video")
    arrays = features(1, 300)
    with store.writer(message="one video", metadata={"run": 7}) as w:
        w.write_video(
            DS,
            FS,
            "v1",
            streams=arrays,
            attrs={"source": SourceInfo.of_file(source), "native_fps": np.float64(30.0)},
        )
    fs = store.feature_set(DS, FS)
    assert fs.spec == spec()
    assert fs.videos() == ["v1"]
    video = store.video(fs, "v1")
    for name, array in arrays.items():
        got = video.stream(name)
        assert got.shape == array.shape and got.dtype == np.float32
        np.testing.assert_array_equal(got[:], array)
        np.testing.assert_array_equal(got[130:170], array[130:170])  # crosses a chunk edge
    np.testing.assert_array_equal(
        video.features(start=5, stop=9),
        np.concatenate([arrays["rgb"][5:9], arrays["flow"][5:9]], axis=1),
    )
    # I3D convention: snippet i covers [16 i / 25, (16 i + 16) / 25) s
    np.testing.assert_allclose(video.timestamps[3], [48 / 25, 64 / 25])
    assert video.attrs["status"] == "complete"
    assert video.attrs["source"]["size"] == len(b"not really a video")
    assert len(video.attrs["source"]["sha256"]) == 64
    assert video.attrs["native_fps"] == 30.0
    head = store.log()[0]
    assert head.message == "one video"
    assert head.metadata["run"] == 7
    assert head.metadata["talkit"]["videos"] == 1
    assert head.metadata["talkit"]["feature_sets"][f"{DS}/{FS}"]["backbone"] == "i3d"


def test_reopen_and_iterate(tmp_path: Path) -> None:
    make_store(tmp_path / "s", {"a": 20, "b": 25, "c": 30})
    store = FeatureStore.open(str(tmp_path / "s"))
    fs = store.feature_set(f"{DS}/{FS}")
    assert [v.id for v in fs] == ["a", "b", "c"]
    assert [len(v) for v in fs] == [20, 25, 30]
    assert "b" in fs and "zz" not in fs
    assert store.feature_sets() == [f"{DS}/{FS}"]
    with pytest.raises(VideoNotFoundError, match="'zz' is not in feature set"):
        fs.video("zz")
    with pytest.raises(FeatureSetNotFoundError, match="feature sets here: thumos14/i3d"):
        store.feature_set("thumos14", "slowfast")


def test_youtube_ids_starting_with_a_dash_are_stored(tmp_path: Path) -> None:
    # 38 ActivityNet 1.2 ids start with '-' (e.g. '-0ds4HFnJWA'); they must be storable.
    store = make_store(tmp_path / "s", {"-0ds4HFnJWA": 12})
    fs = FeatureStore.open(str(tmp_path / "s")).feature_set(DS, FS)
    assert fs.videos() == ["-0ds4HFnJWA"]
    np.testing.assert_array_equal(fs.video("-0ds4HFnJWA").stream("rgb")[:], features(0, 12)["rgb"])
    with pytest.raises(StoreError, match="invalid video id"), store.writer() as w:
        w.write_video(DS, FS, ".hidden", streams=features(1, 12))


def test_writer_is_one_commit_and_invisible_until_exit(tmp_path: Path) -> None:
    store = make_store(tmp_path / "s", {"a": 10})
    before = len(store.log())
    with store.writer(message="two") as w:
        w.write_video(DS, FS, "b", streams=features(5, 12))
        w.write_video(DS, FS, "c", streams=features(6, 12))
        reader = FeatureStore.open(str(tmp_path / "s"))
        assert reader.feature_set(DS, FS).videos() == ["a"]  # not yet committed
    assert len(store.log()) == before + 1
    assert store.feature_set(DS, FS).videos() == ["a", "b", "c"]


def test_exception_in_writer_discards_everything(tmp_path: Path) -> None:
    store = make_store(tmp_path / "s", {"a": 10})
    before = store.snapshot_id
    with pytest.raises(RuntimeError), store.writer() as w:
        w.write_video(DS, FS, "b", streams=features(5, 12))
        raise RuntimeError("extraction failed")
    assert_unchanged(str(tmp_path / "s"), before, ["a"])


def test_overwrite_is_explicit(tmp_path: Path) -> None:
    store = make_store(tmp_path / "s", {"a": 10})
    new = features(99, 14)
    with (
        pytest.raises(VideoExistsError, match=r"already exists.*overwrite=True"),
        store.writer() as w,
    ):
        w.write_video(DS, FS, "a", streams=new)
    np.testing.assert_array_equal(
        store.video(f"{DS}/{FS}", "a").stream("rgb")[:], features(0, 10)["rgb"]
    )
    with store.writer() as w:
        w.write_video(DS, FS, "a", streams=new, overwrite=True)
    np.testing.assert_array_equal(store.video(f"{DS}/{FS}", "a").stream("rgb")[:], new["rgb"])


@pytest.mark.parametrize(
    ("streams", "kwargs", "match"),
    [
        (
            {"rgb": np.ones((10, 8), np.float32), "flow": np.ones((11, 6), np.float32)},
            {},
            r"different numbers of snippets \(rgb: T=10, flow: T=11\)",
        ),
        (
            {"rgb": np.ones((10, 9), np.float32), "flow": np.ones((10, 6), np.float32)},
            {},
            r"stream 'rgb' has D=9 but the feature set's spec says rgb=8",
        ),
        ({"rgb": np.ones((10, 8), np.float32)}, {}, r"missing flow"),
        (
            {"rgb": np.ones((10, 8), np.int32), "flow": np.ones((10, 6), np.float32)},
            {},
            r"dtype int32, expected floating point",
        ),
        (
            {"rgb": np.ones((10, 8), np.float32), "flow": np.ones((10, 6), np.float32)},
            {"timestamps": np.zeros((9, 2))},
            r"timestamps have shape \(9, 2\), expected \(10, 2\)",
        ),
        (
            {"rgb": np.ones((10, 8), np.float32), "flow": np.ones((10, 6), np.float32)},
            {"attrs": {"status": "complete"}},
            r"attr 'status' is set by the store",
        ),
    ],
)
def test_invalid_video_is_rejected_before_writing(
    tmp_path: Path, streams: dict, kwargs: dict, match: str
) -> None:
    store = make_store(tmp_path / "s", {"a": 10})
    before = store.snapshot_id
    with pytest.raises(FeatureValidationError, match=match), store.writer() as w:
        w.write_video(DS, FS, "bad", streams=streams, **kwargs)
    assert_unchanged(str(tmp_path / "s"), before, ["a"])


def test_nonfinite_rejected_by_default_and_allowed_on_request(tmp_path: Path) -> None:
    store = make_store(tmp_path / "s", {"a": 10})
    arrays = features(3, 10)
    arrays["flow"][4, 2] = np.nan
    arrays["flow"][7, 1] = np.inf
    with (
        pytest.raises(FeatureValidationError, match=r"2 NaN/Inf values.*snippet 4, dim 2"),
        store.writer() as w,
    ):
        w.write_video(DS, FS, "bad", streams=arrays)
    assert "bad" not in FeatureStore.open(str(tmp_path / "s")).feature_set(DS, FS)
    with store.writer() as w:
        w.write_video(DS, FS, "bad", streams=arrays, allow_nonfinite=True)
    got = store.video(f"{DS}/{FS}", "bad").stream("flow")[:]
    assert np.isnan(got[4, 2]) and np.isinf(got[7, 1])


def test_nonexistent_version_and_unknown_format_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = str(tmp_path / "s")
    make_store(tmp_path / "s", {"a": 10})
    with pytest.raises(VersionNotFoundError, match="version 'v9' not found"):
        FeatureStore.open(url, version="v9")
    with pytest.raises(VersionNotFoundError):
        FeatureStore.open(url, version="ABCDEFGHJKMNPQRSTVWX")  # well-formed, absent snapshot
    code, _, err = run_cli(capsys, "store", "info", url, "--version", "v9")
    assert code == 2 and "version 'v9' not found" in err

    # A store written by a future talkit: its root says format version 99 (with the
    # digest of its attrs that every talkit writes, docs/store.md).
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(url))
    session = repo.writable_session("main")
    root = zarr.open_group(store=session.store, mode="r+")
    future = {"talkit_store": {"format_version": 99}}
    root.attrs.update({**future, "attrs_sha256": attrs_digest("", future)})
    session.commit("from the future")
    with pytest.raises(
        StoreFormatError, match=r"format version 99; this talkit .* reads format versions 1\.\.1"
    ):
        FeatureStore.open(url)
    code, _, err = run_cli(capsys, "store", "info", url)
    assert code == 2 and "format version 99" in err


def test_not_a_store(tmp_path: Path) -> None:
    with pytest.raises(StoreFormatError, match="does not exist"):
        FeatureStore.open(str(tmp_path / "nothing"))
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.txt").write_text("hi")
    with pytest.raises(StoreFormatError, match="neither a talkit store nor zarr"):
        FeatureStore.open(str(tmp_path / "junk"))
    with pytest.raises(StoreError, match="exists and is not empty"):
        FeatureStore.create(str(tmp_path / "junk"))


@pytest.mark.parametrize("stage", ["snapshots-only", "repository-without-root"])
def test_create_exist_ok_waits_for_a_store_another_process_is_creating(
    tmp_path: Path, stage: str
) -> None:
    """Two runs start on one new store: the second may look at any moment of the first's
    create (icechunk writes snapshots/, then refs/, then talkit commits the root group)."""
    url = tmp_path / "s"
    if stage == "snapshots-only":
        (url / "snapshots").mkdir(parents=True)
    else:
        icechunk.Repository.create(icechunk.local_filesystem_storage(str(url)))

    def finish_creating() -> None:
        time.sleep(0.5)
        shutil.rmtree(url)
        FeatureStore.create(str(url))

    creator = threading.Thread(target=finish_creating)
    creator.start()
    try:
        store = FeatureStore.create(str(url), exist_ok=True)
    finally:
        creator.join()
    assert store.feature_sets() == [] and store.mode == "a"
    # A folder that is nothing like a store is still refused at once.
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.txt").write_text("hi")
    t0 = time.monotonic()
    with pytest.raises(StoreFormatError, match="neither a talkit store nor zarr"):
        FeatureStore.create(str(tmp_path / "junk"), exist_ok=True)
    assert time.monotonic() - t0 < 5


def test_read_only_and_fixed_version_cannot_write(tmp_path: Path) -> None:
    store = make_store(tmp_path / "s", {"a": 10})
    with pytest.raises(StoreError, match="opened read-only"):
        FeatureStore.open(str(tmp_path / "s")).writer()
    snapshot = store.snapshot_id
    with pytest.raises(StoreError, match="fixed version"):
        FeatureStore.open(str(tmp_path / "s"), version=snapshot, mode="a").writer()


def test_feature_set_spec_conflict_is_refused(tmp_path: Path) -> None:
    store = make_store(tmp_path / "s", {"a": 10})
    store.create_feature_set(DS, FS, spec(), exist_ok=True)  # same spec: fine
    with pytest.raises(StoreError, match=r"already exists \(spec fields that differ: stride\)"):
        store.create_feature_set(DS, FS, spec(stride=8), exist_ok=True)


def test_float16_storage_reports_its_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = FeatureStore.create(str(tmp_path / "s"))
    store.create_feature_set(DS, "half", spec(dtype="float16"))
    arrays = features(4, 200)
    with store.writer() as w:
        w.write_video(DS, "half", "v", streams=arrays)
    got = store.video(f"{DS}/half", "v").stream("rgb")[:]
    assert got.dtype == np.float16
    true_err = float(np.abs(got.astype(np.float64) - arrays["rgb"]).max())
    info = store.info()["feature_sets"][f"{DS}/half"]
    assert info["dtype"] == "float16"
    assert info["float16_error"]["max_abs"] >= true_err > 0
    assert info["float16_error"]["max_rel"] < 1e-3
    with store.writer() as w, pytest.raises(FeatureValidationError, match="too large for float16"):
        w.write_video(
            DS,
            "half",
            "big",
            streams={"rgb": np.full((3, 8), 1e6, np.float32), "flow": np.ones((3, 6), np.float32)},
        )
    code, out, _ = run_cli(capsys, "store", "info", str(tmp_path / "s"))
    assert code == 0 and "float16 error" in out


def test_info_reports_dims_chunks_codec_and_ratio(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    make_store(tmp_path / "s", {"a": 300, "b": 40})
    code, out, _ = run_cli(capsys, "store", "info", str(tmp_path / "s"), "--json")
    assert code == 0
    info = json.loads(out)
    entry = info["feature_sets"][f"{DS}/{FS}"]
    assert entry["videos"] == 2 and entry["snippets"] == 340
    assert entry["streams"] == DIMS and entry["dtype"] == "float32"
    assert entry["spec"]["backbone"] == "i3d"
    defaults = StorageOptions()
    assert entry["chunks"]["rgb"] == [defaults.chunk_t, 8]
    assert entry["bytes_logical"] == 340 * 14 * 4
    assert entry["compression_ratio"] == pytest.approx(
        entry["bytes_logical"] / entry["bytes_stored"]
    )
    assert info["bytes_on_disk"] > 0


def test_plain_zarr_engine_reads_and_writes_the_same_layout(tmp_path: Path) -> None:
    store = FeatureStore.create(str(tmp_path / "z"), engine="zarr")
    store.create_feature_set(DS, FS, spec())
    arrays = features(2, 50)
    with store.writer() as w:
        w.write_video(DS, FS, "v", streams=arrays)
    reopened = FeatureStore.open(str(tmp_path / "z"))
    assert reopened.engine == "zarr"
    np.testing.assert_array_equal(
        reopened.video(f"{DS}/{FS}", "v").stream("flow")[:], arrays["flow"]
    )
    # Any zarr v3 reader sees the same arrays.
    group = zarr.open_group(str(tmp_path / "z"), mode="r")
    np.testing.assert_array_equal(group[f"{DS}/{FS}/v/rgb"][:], arrays["rgb"])
    with pytest.raises(StoreError, match="plain zarr directory: it has no history"):
        reopened.log()


def test_spec_rejects_bad_streams() -> None:
    with pytest.raises(ValueError, match="reserved"):
        FeatureSetSpec(backbone="x", streams={"timestamps": 3})
    with pytest.raises(ValueError, match="positive integer dim"):
        FeatureSetSpec(backbone="x", streams={"rgb": 0})
