"""Damage stores on disk and read them back every way a user reads a store.

A fault test damages one file of a small store (a flipped byte, a truncated or deleted
object), reads it through one path (the Python API, the lean read path with its chunk
cache, ``talkit store export``, the training loader) and sorts the outcome:

- ``detected``: the read raised CorruptDataError (the CLI: exit 1, one line naming the
  damage and the hint);
- ``harmless``: the read returned exactly the values that were written, bit for bit;
- anything else (other values, another error, a traceback) is a failure.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from talkit.store import FeatureStore, StorageOptions
from talkit.store.errors import CorruptDataError
from tests.store_helpers import DIMS, DS, FS, KEY, features, spec

VIDEOS = {"a": 150, "b": 40, "c": 260}  # 64-snippet chunks: 3, 1 and 5 chunks
STORAGE = StorageOptions(chunk_t=64, shard_t=128)  # c: 3 shards, the last one short
CROPS = [(0, 40), (10, 140), (63, 65), (100, 260)]  # clipped to each video's length
LEGACY = Path(__file__).parents[1] / "data" / "legacy"  # written by talkit before checksums

Expected = dict[str, dict[str, np.ndarray]]


def write_store(path: Path | str, engine: str = "icechunk") -> Expected:
    """A small store as this talkit writes it (a path or URL); returns what it must read back."""
    store = FeatureStore.create(str(path), engine=engine)  # type: ignore[arg-type]
    store.create_feature_set(DS, FS, spec(), storage=STORAGE)
    with store.writer(message="videos") as w:
        for i, (vid, t) in enumerate(VIDEOS.items()):
            w.write_video(DS, FS, vid, streams=features(i, t), attrs={"duration": t * 0.64})
    return expected()


def copy_legacy(engine: str, dest: Path) -> Expected:
    """A copy of the store talkit wrote before chunks had checksums (tests/data/legacy)."""
    shutil.copytree(LEGACY / engine, dest)
    return expected()


def expected() -> Expected:
    """The streams and timestamps of VIDEOS, recomputed."""
    out: Expected = {}
    for i, (vid, t) in enumerate(VIDEOS.items()):
        out[vid] = dict(features(i, t))
        out[vid]["timestamps"] = spec().snippet_timestamps(t)
    return out


# -- the files of a store -----------------------------------------------------------------
def icechunk_files(path: Path) -> dict[str, list[Path]]:
    """The files of a local icechunk store by kind: what the current version reads."""
    ref = json.loads((path / "refs" / "branch.main" / "ref.json").read_text())
    return {
        "chunk": sorted((path / "chunks").iterdir()),
        "manifest": sorted((path / "manifests").iterdir()),
        "snapshot": [path / "snapshots" / ref["snapshot"]],
        "ref": [path / "refs" / "branch.main" / "ref.json"],
    }


def zarr_files(path: Path) -> dict[str, list[Path]]:
    """The files of a plain zarr store by kind: chunk objects and zarr.json metadata."""
    files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    return {
        "chunk": [p for p in files if p.name != "zarr.json"],
        "metadata": [p for p in files if p.name == "zarr.json"],
    }


def sample_offsets(
    files: list[Path], n: int, seed: int, *, tail: int | None = None
) -> list[tuple[Path, int]]:
    """``n`` seeded (file, byte offset) pairs over ``files`` (``tail``: in their last bytes)."""
    rng = np.random.default_rng(seed)
    spots = []
    for f in files:
        size = f.stat().st_size
        first = 0 if tail is None else max(0, size - tail)
        spots.extend((f, off) for off in range(first, size))
    picks = rng.choice(len(spots), size=min(n, len(spots)), replace=False)
    return [spots[i] for i in sorted(picks)]


@contextlib.contextmanager
def flipped(path: Path, offset: int) -> Iterator[None]:
    """The byte at ``offset`` inverted while the block runs, then restored."""
    original = path.read_bytes()
    data = bytearray(original)
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    try:
        yield
    finally:
        path.write_bytes(original)


# -- reading every way ----------------------------------------------------------------------
def read_api(url: str, want: Expected, *, whole_only: bool = False, **open_kw: Any) -> None:
    """Everything a user reads through the Python API; raises if a value differs.

    Whole videos (``read``, ``features()``, ``timestamps``), joint crops, lazy stream
    crops (``video.stream(name)[a:b]``), a step slice and a single row.
    """
    fs = FeatureStore.open(url, **open_kw).feature_set(KEY)
    assert fs.videos() == sorted(want), f"videos listed: {fs.videos()}"
    for vid, arrays in want.items():
        video = fs.video(vid)
        joint = np.concatenate([arrays[s] for s in DIMS], axis=1)
        for name, got in video.read().items():
            same(got, arrays[name], f"{vid} read {name}")
        same(video.timestamps, arrays["timestamps"], f"{vid} timestamps")
        if whole_only:
            continue
        same(video.features(), joint, f"{vid} features()")
        for a, b in CROPS:
            same(video.features(start=a, stop=b), joint[a:b], f"{vid} features {a}:{b}")
            for name in DIMS:
                same(video.stream(name)[a:b], arrays[name][a:b], f"{vid} {name}[{a}:{b}]")
        same(video.stream("rgb")[5::7], arrays["rgb"][5::7], f"{vid} rgb[5::7]")
        same(video.stream("flow")[3], arrays["flow"][3], f"{vid} flow[3]")


def read_cached(url: str, want: Expected) -> None:
    """The lean read path with a chunk cache: every crop twice (the second from the cache)."""
    store = FeatureStore.open(url, cache_bytes=1 << 22)
    fs = store.feature_set(KEY)
    for _ in range(2):
        for vid, arrays in want.items():
            video = fs.video(vid)
            assert all(video.stream(s).plan is not None for s in DIMS), "not the lean path"
            joint = np.concatenate([arrays[s] for s in DIMS], axis=1)
            for a, b in CROPS:
                same(video.features(start=a, stop=b), joint[a:b], f"{vid} cached {a}:{b}")
            same(video.timestamps, arrays["timestamps"], f"{vid} timestamps")


def read_loader(url: str, want: Expected) -> None:
    """What training reads: the store feature source, whole and cropped, with its video cache."""
    from talkit.datasets.feature_sources import StoreFeatureSource

    for cache_mb in (0, 16):
        reader = StoreFeatureSource(url, [KEY], cache_mb=cache_mb).open()
        for vid, arrays in want.items():
            joint = np.concatenate([arrays[s] for s in DIMS], axis=1)
            same(reader.timestamps(vid), arrays["timestamps"], f"{vid} loader timestamps")
            same(reader.read(vid), joint, f"{vid} loader whole")
            for a, b in CROPS:
                same(reader.read(vid, a, b), joint[a:b], f"{vid} loader {a}:{b}")


def same(got: Any, want: np.ndarray, what: str) -> None:
    got = np.asarray(got)
    assert got.dtype == want.dtype and got.shape == want.shape, (
        f"{what}: {got.dtype}{got.shape} != {want.dtype}{want.shape}"
    )
    assert got.tobytes() == want.tobytes(), f"{what}: different values"


def outcome(read: Callable[[], None]) -> str:
    """``detected``, ``harmless``, or a description of what went wrong (a failure)."""
    try:
        read()
    except CorruptDataError as exc:
        return "detected" if "\n" not in str(exc) else f"multi-line error: {exc}"
    except AssertionError as exc:
        return f"SILENT: {exc}"
    except Exception as exc:
        return f"other error {type(exc).__name__}: {exc}"
    return "harmless"


def cli_outcome(code: int, out: str, err: str, check: Callable[[], None]) -> str:
    """The same for a CLI run: exit 1 and one line, or exit 0 and exactly the values."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    if code == 0:
        try:
            check()
        except AssertionError as exc:
            return f"SILENT (exit 0): {exc}"
        return "harmless"
    if code == 1 and len(lines) == 1 and lines[0].startswith("error: damaged"):
        return "detected"
    return f"exit {code}: {err!r}"


def export_check(out: Path, want: Expected) -> Callable[[], None]:
    """A check that an npy export at ``out`` holds exactly the expected values."""

    def check() -> None:
        names = sorted(p.stem for p in (out / "rgb").glob("*.npy"))
        assert names == sorted(want), f"exported videos {names}"
        for vid, arrays in want.items():
            for name in DIMS:
                same(np.load(out / name / f"{vid}.npy"), arrays[name], f"export {vid} {name}")
            side = json.loads((out / "talkit.json").read_text())["videos"][vid]["timestamps"]
            same(np.asarray(side, dtype=np.float64), arrays["timestamps"], f"export {vid} ts")

    return check
