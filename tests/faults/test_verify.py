"""``talkit store verify``: every damaged video on its own line, exit 1; an intact store, 0."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import run_cli
from fault_helpers import VIDEOS, copy_legacy, write_store

from talkit.store import FeatureStore, StorageOptions
from talkit.store.verify import verify_store
from tests.store_helpers import DS, FS, KEY, features, spec


def damage(path: Path, relative: str, offset: int) -> None:
    target = path / relative
    data = bytearray(target.read_bytes())
    data[offset] ^= 0x10
    target.write_bytes(bytes(data))


def test_verify_lists_each_damaged_video_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "z"
    write_store(path, engine="zarr")
    store = FeatureStore.open(str(path), mode="a")  # a second feature set, left intact
    store.create_feature_set(DS, "i3d_other", spec())
    with store.writer() as w:
        w.write_video(DS, "i3d_other", "x", streams=features(5, 30))
    code, out, _ = run_cli(capsys, "store", "verify", str(path))
    assert code == 0 and "verified 4 videos in 2 feature sets" in out and "no damage" in out

    fs = f"{DS}/{FS}"
    damage(path, f"{fs}/a/rgb/c/0/0", 10)  # inside chunk 0's bytes
    damage(path, f"{fs}/c/flow/c/1/0", 5)  # shard 1: chunks 2 and 3
    (path / fs / "b" / "timestamps" / "c" / "0" / "0").unlink()
    code, out, _ = run_cli(capsys, "store", "verify", str(path))
    damaged = [ln for ln in out.splitlines() if ln.startswith("damaged ")]
    assert code == 1
    assert damaged == [
        f"damaged {fs}/a rgb chunk 0: its bytes fail their crc32c checksum",
        f"damaged {fs}/b timestamps chunk 0: the store does not have this chunk",
        f"damaged {fs}/c flow chunk 2: its bytes fail their crc32c checksum",
    ]
    assert "3 damaged of 4 videos in 2 feature sets" in out

    code, out, _ = run_cli(capsys, "store", "verify", str(path), "--json", "-f", f"{DS}/i3d_other")
    report = json.loads(out)
    assert code == 0 and report["ok"] and report["videos_checked"] == 1
    code, out, _ = run_cli(capsys, "store", "verify", str(path), "--json", "-f", fs)
    report = json.loads(out)
    assert code == 1 and not report["ok"] and report["videos_checked"] == len(VIDEOS)
    assert [(d["video"], d["array"], d["chunk"]) for d in report["damaged"]] == [
        ("a", "rgb", 0),
        ("b", "timestamps", 0),
        ("c", "flow", 2),
    ]


def test_verify_on_icechunk_and_at_an_older_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s"
    write_store(path)
    store = FeatureStore.open(str(path), mode="a")
    store.tag("before")
    with store.writer() as w:  # rewrites video a: new chunk objects
        w.write_video(DS, FS, "a", streams=features(11, 150), overwrite=True)
    report = verify_store(FeatureStore.open(str(path)))
    assert report.ok and report.videos_checked == 3
    for obj in (path / "chunks").iterdir():  # damage everything: both versions see it
        data = bytearray(obj.read_bytes())
        data[len(data) // 2] ^= 1
        obj.write_bytes(bytes(data))
    for version in ("before", "main"):
        code, out, _ = run_cli(capsys, "store", "verify", str(path), "--version", version)
        assert code == 1 and out.count("damaged thumos14/i3d/") == 3, out


def test_verify_checks_stores_written_before_checksums(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for engine in ("icechunk", "zarr"):
        path = tmp_path / engine
        copy_legacy(engine, path)
        code, out, _ = run_cli(capsys, "store", "verify", str(path))
        assert code == 0 and "verified 3 videos" in out
    obj = tmp_path / "zarr" / DS / FS / "c" / "rgb" / "c" / "0" / "0"
    data = bytearray(obj.read_bytes())
    data[60] ^= 0x01  # inside the Blosc frame: decodes, to other values
    obj.write_bytes(bytes(data))
    code, out, _ = run_cli(capsys, "store", "verify", str(tmp_path / "zarr"))
    lines = [ln for ln in out.splitlines() if ln.startswith("damaged")]
    assert code == 1 and len(lines) == 1 and lines[0].startswith(f"damaged {KEY}/c rgb")


def test_verify_reads_every_layout(tmp_path: Path) -> None:
    """Every codec and chunk layout the store writes passes verify when intact."""
    store = FeatureStore.create(str(tmp_path / "s"))
    layouts = {
        "pcodec_unsharded": StorageOptions(chunk_t=16, shard_t=None),
        "blosc_transposed": StorageOptions(chunk_t=16, codec="blosc-zstd", transpose=True),
        "zstd": StorageOptions(chunk_t=16, codec="zstd"),
        "raw": StorageOptions(chunk_t=16, codec="none"),
    }
    for name, storage in layouts.items():
        store.create_feature_set(DS, name, spec(), storage=storage)
    with store.writer() as w:
        for name in layouts:
            w.write_video(DS, name, "v", streams=features(1, 53))
    report = verify_store(FeatureStore.open(str(tmp_path / "s")))
    assert report.ok and report.videos_checked == len(layouts)
