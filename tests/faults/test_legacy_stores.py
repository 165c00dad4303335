"""Stores written before chunks had checksums still open and read, checked whole.

tests/data/legacy/ holds an icechunk and a plain zarr store written by talkit 8a961f5
(tests/data/make_legacy_stores.py): no crc32c in their chunk codecs, no attrs digests,
only the sha256 of each array in each video's attrs. Reading a whole array compares it
with that sha256; crops of such stores are not checked (docs/store.md).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import icechunk
import pytest
import zarr
from cli_helpers import run_cli
from fault_helpers import (
    Expected,
    cli_outcome,
    copy_legacy,
    export_check,
    flipped,
    icechunk_files,
    outcome,
    read_api,
    read_loader,
    sample_offsets,
    zarr_files,
)

from talkit.store import FeatureStore
from talkit.store.codecs import quiet_codec_warnings
from talkit.store.errors import CorruptDataError
from talkit.store.integrity import ATTRS_DIGEST, has_checksum
from tests.store_helpers import KEY

ENGINES = ["icechunk", "zarr"]


@pytest.fixture(scope="module", params=ENGINES)
def legacy(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Expected]:
    path = tmp_path_factory.mktemp("legacy") / request.param
    return path, copy_legacy(request.param, path)


def test_legacy_stores_have_no_checksums_and_read_back_exactly(
    legacy: tuple[Path, Expected],
) -> None:
    path, want = legacy
    video = FeatureStore.open(str(path)).video(KEY, "c")
    assert ATTRS_DIGEST not in video.attrs and "content_sha256" in video.attrs
    assert not has_checksum(video.stream("rgb").zarr_array.metadata.codecs)
    assert video.stream("rgb").plan is not None  # read through the lean path
    read_api(str(path), want)
    read_loader(str(path), want)


def chunk_flips(path: Path) -> list[tuple[Path, int]]:
    files = icechunk_files(path) if (path / "refs").exists() else zarr_files(path)
    return sample_offsets(files["chunk"], 50, seed=3)


def test_whole_reads_of_legacy_stores_are_checked_against_their_sha256(
    legacy: tuple[Path, Expected], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, want = legacy
    results: Counter[str] = Counter()
    for i, (file, offset) in enumerate(chunk_flips(path)):
        with flipped(file, offset):
            api = outcome(lambda: read_api(str(path), want, whole_only=True))
            out = tmp_path / f"o{i}"
            code, stdout, err = run_cli(
                capsys, "store", "export", str(path), str(out), "--format", "npy"
            )
            cli = cli_outcome(code, stdout, err, export_check(out, want))
        for result in (api, cli):
            results[
                result if result in ("detected", "harmless") else f"{file.name}@{offset}: {result}"
            ] += 1
    failures = {k: n for k, n in results.items() if k not in ("detected", "harmless")}
    assert not failures, failures
    assert results["detected"] > 0


def rewrite_values(path: Path, engine: str) -> None:
    """Change stored values of video c's rgb in a way that still decodes (no error to see)."""
    if engine == "zarr":
        zarr.open_array(str(path / KEY / "c" / "rgb"), mode="r+")[0:10] = 0.5
        return
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(path)))
    session = repo.writable_session("main")
    zarr.open_array(session.store, path=f"{KEY}/c/rgb", mode="r+")[0:10] = 0.5
    session.commit("values changed behind talkit's back")


@pytest.mark.parametrize("engine", ENGINES)
def test_values_that_decode_but_differ_are_caught_by_whole_reads(
    engine: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / engine
    copy_legacy(engine, path)
    with quiet_codec_warnings():
        rewrite_values(path, engine)
    video = FeatureStore.open(str(path)).video(KEY, "c")
    pattern = r"thumos14/i3d video c, array rgb: its values differ from the sha256"
    with pytest.raises(CorruptDataError, match=pattern):
        video.read()
    with pytest.raises(CorruptDataError, match=pattern):
        FeatureStore.open(str(path)).video(KEY, "c").features()
    with pytest.raises(CorruptDataError, match=pattern):
        FeatureStore.open(str(path)).video(KEY, "c").stream("rgb")[:]
    code, _, err = run_cli(
        capsys, "store", "export", str(path), str(tmp_path / "o"), "--format", "h5"
    )
    assert code == 1 and "video c, array rgb" in err and len(err.strip().splitlines()) == 1
    code, out, _ = run_cli(capsys, "store", "verify", str(path))
    assert code == 1 and f"damaged {KEY}/c rgb: its values differ" in out
    # What the docs say is not checked: a crop of an array without chunk checksums.
    assert (FeatureStore.open(str(path)).video(KEY, "c").stream("rgb")[0:10] == 0.5).all()
