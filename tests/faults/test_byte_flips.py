"""A flipped byte anywhere in a store is an error or changes nothing: never other values.

For each kind of file a store keeps (chunk objects and the shard indexes at their ends,
icechunk manifests, the snapshot of the version read; plain zarr: chunk files and
zarr.json metadata), 50 seeded byte offsets are inverted one at a time and the store is
read through the Python API, the lean read path with its chunk cache, the training
loader and ``talkit store export``. Every read must raise CorruptDataError (the CLI: exit
1, one line) or return exactly the values written.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_helpers import run_cli
from fault_helpers import (
    Expected,
    cli_outcome,
    export_check,
    flipped,
    icechunk_files,
    outcome,
    read_api,
    read_cached,
    read_loader,
    sample_offsets,
    zarr_files,
)

OFFSETS = 50
SHARD_INDEX = 16 * 2 + 4  # two chunks per shard (STORAGE), then the index's crc32c

READERS: dict[str, Callable[[str, Expected], None]] = {
    "api": read_api,
    "cache": read_cached,
    "loader": read_loader,
}


def spots(files: dict[str, list[Path]], kind: str) -> list[tuple[Path, int]]:
    if kind == "shard index":
        return sample_offsets(files["chunk"], OFFSETS, seed=7, tail=SHARD_INDEX)
    return sample_offsets(files[kind], OFFSETS, seed=sum(map(ord, kind)))


def check_all(results: Counter[str], total: int) -> None:
    failures = {k: n for k, n in results.items() if k not in ("detected", "harmless")}
    assert not failures, f"{failures} (of {total} flips; {dict(results)})"
    assert results["detected"] > 0, f"no flip was even noticed: {dict(results)}"


@pytest.mark.parametrize("reader", sorted(READERS))
@pytest.mark.parametrize("kind", ["chunk", "shard index", "manifest", "snapshot"])
def test_icechunk_flips_are_detected_or_harmless(
    icechunk_store: tuple[Path, Expected], kind: str, reader: str
) -> None:
    path, want = icechunk_store
    results: Counter[str] = Counter()
    for file, offset in spots(icechunk_files(path), kind):
        with flipped(file, offset):
            result = outcome(lambda: READERS[reader](str(path), want))
        results[
            result if result in ("detected", "harmless") else f"{file.name}@{offset}: {result}"
        ] += 1
    check_all(results, OFFSETS)
    if kind in ("chunk", "shard index"):
        assert results["harmless"] == 0, "every byte of a chunk or shard index is checked"


@pytest.mark.parametrize("kind", ["chunk", "shard index", "manifest", "snapshot"])
def test_icechunk_flips_through_export(
    icechunk_store: tuple[Path, Expected],
    kind: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path, want = icechunk_store
    results: Counter[str] = Counter()
    for i, (file, offset) in enumerate(spots(icechunk_files(path), kind)):
        out = tmp_path / f"out{i}"
        with flipped(file, offset):
            code, stdout, err = run_cli(
                capsys,
                "store",
                "export",
                str(path),
                str(out),
                "--format",
                "npy",
                "-f",
                "thumos14/i3d",
            )
        result = cli_outcome(code, stdout, err, export_check(out, want))
        results[
            result if result in ("detected", "harmless") else f"{file.name}@{offset}: {result}"
        ] += 1
    check_all(results, OFFSETS)


@pytest.mark.parametrize("reader", ["api", "export"])
@pytest.mark.parametrize("kind", ["chunk", "metadata"])
def test_plain_zarr_flips_are_detected_or_harmless(
    zarr_store: tuple[Path, Expected],
    kind: str,
    reader: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path, want = zarr_store
    results: Counter[str] = Counter()
    for i, (file, offset) in enumerate(spots(zarr_files(path), kind)):
        with flipped(file, offset):
            if reader == "api":
                result = outcome(lambda: read_api(str(path), want))
            else:
                out = tmp_path / f"out{i}"
                code, stdout, err = run_cli(
                    capsys, "store", "export", str(path), str(out), "--format", "npy"
                )
                result = cli_outcome(code, stdout, err, export_check(out, want))
        where = file.relative_to(path)
        results[
            result if result in ("detected", "harmless") else f"{where}@{offset}: {result}"
        ] += 1
    check_all(results, OFFSETS)
