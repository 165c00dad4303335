"""Feature-store I/O against the formats people use today: per-video .npy and HDF5.

    python benchmarks/store_io.py            # THUMOS-sized: 200 videos, T in 100..2000, D 2048
    python benchmarks/store_io.py --small    # quick run: 20 videos, T in 100..600
    python benchmarks/store_io.py --sweep    # chunk/codec sweep that chose the defaults
    python benchmarks/store_io.py --sweep layouts   # only the sharded layouts vs the old one
    python benchmarks/store_io.py --verify   # the cost of checking every read (checksums)

Everything is measured in one run on the same data with a warm page cache (all files fit
in memory), so the printed ratios compare formats, not disks.

The data are synthetic but shaped like real I3D snippet features (non-negative average-pooled
ReLU outputs, smooth in time, per-channel scales, some exact zeros); see ``make_features``.
Random Gaussian floats would be incompressible and are not what features look like.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.special import ndtr

from talkit.store import FeatureSetSpec, FeatureStore, StorageOptions, fastread

DATASET, FS = "thumos14", "i3d"
# The layout before sharding: 256-snippet chunks, each chunk its own stored object.
PREVIOUS_DEFAULT = StorageOptions(chunk_t=256, shard_t=None)
CROP = 750
STREAMS = {"rgb": 1024, "flow": 1024}


def make_features(rng: np.random.Generator, num_snippets: int, dim: int) -> np.ndarray:
    """Synthetic I3D-like snippet features, float32 (T, dim).

    Model of an I3D feature: each dim is the average over P = 98 (2x7x7) positions of a
    ReLU unit, ``x_td = mean_p relu(mu_td + e_tdp)`` with e ~ N(0, 1) independent across
    positions. Its pre-activation mean ``mu_td`` is
      - a rank-16 latent trajectory, Gaussian-smoothed in time (sigma 4 snippets), mixed
        into the dims by random weights (content changes slowly within a video),
      - plus a per-dim bias ~ N(-1, 0.75) (some units are rarely active),
      - plus N(0, 0.3) snippet-level noise.
    The pooled value is drawn from its exact mean and variance of relu(N(mu, 1)) over 98
    positions; it is exactly 0 with probability (1 - P(fire))^98, the chance that none of
    the 98 positions fires, which is how real pooled ReLU features get their zeros. Result: values >= 0, median ~0.08,
    ~12% exact zeros, channel scales that differ by orders of magnitude.
    """
    k, positions = 16, 98
    latent = gaussian_filter1d(rng.standard_normal((num_snippets, k)), sigma=4.0, axis=0) * 3.0
    weights = rng.standard_normal((k, dim)) / np.sqrt(k)
    bias = rng.normal(-1.0, 0.75, size=dim)
    mu = latent @ weights * 0.8 + bias + 0.3 * rng.standard_normal((num_snippets, dim))
    p_active = ndtr(mu)
    density = np.exp(-0.5 * mu * mu) / np.sqrt(2 * np.pi)
    mean = mu * p_active + density
    var = np.maximum((mu * mu + 1) * p_active + mu * density - mean * mean, 0.0)
    silent = rng.random((num_snippets, dim)) < (1.0 - p_active) ** positions
    pooled = mean + np.sqrt(var / positions) * rng.standard_normal((num_snippets, dim))
    return np.where(silent, 0.0, np.maximum(pooled, 0.0)).astype(np.float32)


def make_dataset(
    n_videos: int, t_range: tuple[int, int], seed: int
) -> dict[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(t_range[0], t_range[1] + 1, size=n_videos)
    return {
        f"video_{i:04d}": {s: make_features(rng, int(t), d) for s, d in STREAMS.items()}
        for i, t in enumerate(lengths)
    }


def spec(dtype: str = "float32") -> FeatureSetSpec:
    return FeatureSetSpec(
        backbone="i3d", streams=STREAMS, dtype=dtype, fps=25, clip_len=16, stride=16
    )


def timed(fn: Callable[[], object], repeat: int = 1) -> float:
    """Best of ``repeat`` wall times (the machine is shared and noisy)."""
    return interleaved({"x": fn}, repeat)["x"]


def interleaved(fns: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Best wall time of each function over ``rounds`` rounds that run them all in turn.

    Interleaving keeps a burst of load from other processes from favouring one method.
    """
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# -- writers ---------------------------------------------------------------------------
def write_npy(root: Path, data: dict[str, dict[str, np.ndarray]]) -> None:
    for s in STREAMS:
        (root / s).mkdir(parents=True, exist_ok=True)
    for vid, streams in data.items():
        for s, arr in streams.items():
            np.save(root / s / f"{vid}.npy", arr)


def write_h5(path: Path, data: dict[str, dict[str, np.ndarray]]) -> None:
    with h5py.File(path, "w") as f:
        for vid, streams in data.items():
            g = f.create_group(vid)
            for s, arr in streams.items():
                g.create_dataset(s, data=arr)


def write_store(
    path: Path,
    data: dict[str, dict[str, np.ndarray]],
    storage: StorageOptions,
    dtype: str = "float32",
    engine: str = "icechunk",
) -> FeatureStore:
    store = FeatureStore.create(str(path), engine=engine)
    store.create_feature_set(DATASET, FS, spec(dtype), storage=storage)
    with store.writer(message="benchmark") as w:
        for vid, streams in data.items():
            w.write_video(DATASET, FS, vid, streams=streams)
    return store


# -- readers ---------------------------------------------------------------------------
def crops(data: dict[str, dict[str, np.ndarray]], n: int, seed: int) -> list[tuple[str, int, int]]:
    """Random (video, start, stop) crops of CROP snippets; shorter videos are read whole."""
    rng = np.random.default_rng(seed)
    vids = list(data)
    out = []
    for vid in rng.choice(vids, size=n):
        t = len(data[vid]["rgb"])
        start = int(rng.integers(0, t - CROP + 1)) if t > CROP else 0
        out.append((str(vid), start, min(t, start + CROP)))
    return out


def read_all_npy(root: Path, vids: list[str]) -> None:
    for vid in vids:
        for s in STREAMS:
            np.load(root / s / f"{vid}.npy")


def read_all_h5(path: Path, vids: list[str]) -> None:
    with h5py.File(path, "r") as f:
        for vid in vids:
            for s in STREAMS:
                f[vid][s][...]


def read_all_store(store: FeatureStore, vids: list[str]) -> None:
    fs = store.feature_set(DATASET, FS)
    for vid in vids:
        fs.video(vid).read()


# Crops return the joint (crop, 2048) [rgb, flow] array, as a training loader needs it.
def crop_npy_load(root: Path, cs: list[tuple[str, int, int]]) -> None:
    """What BaSNet-style loaders do: load both whole files, then crop and concatenate."""
    for vid, a, b in cs:
        np.concatenate([np.load(root / s / f"{vid}.npy")[a:b] for s in STREAMS], axis=1)


def crop_npy_mmap(root: Path, cs: list[tuple[str, int, int]]) -> None:
    """Best case for .npy: memory-map and copy only the crop."""
    for vid, a, b in cs:
        np.concatenate(
            [np.load(root / s / f"{vid}.npy", mmap_mode="r")[a:b] for s in STREAMS], axis=1
        )


def crop_h5(path: Path, cs: list[tuple[str, int, int]]) -> None:
    with h5py.File(path, "r") as f:
        for vid, a, b in cs:
            np.concatenate([f[vid][s][a:b] for s in STREAMS], axis=1)


def crop_store(store: FeatureStore, cs: list[tuple[str, int, int]]) -> None:
    """A training loop holds the feature set open and reads crops through it."""
    fs = store.feature_set(DATASET, FS)
    for vid, a, b in cs:
        fs.video(vid).features(start=a, stop=b)


def crop_store_zarr_path(store: FeatureStore, cs: list[tuple[str, int, int]]) -> None:
    """The same crops through zarr-python's general read path (talkit's lean path off)."""
    fastread.ENABLED = False
    try:
        crop_store(store, cs)
    finally:
        fastread.ENABLED = True


# -- runs ------------------------------------------------------------------------------
def run_main(args: argparse.Namespace, work: Path) -> None:
    n, t_range = (20, (100, 600)) if args.small else (200, (100, 2000))
    print(f"generating {n} videos, T in {t_range[0]}..{t_range[1]}, D 2048 (rgb+flow) ...")
    data = make_dataset(n, t_range, args.seed)
    vids = list(data)
    nbytes = sum(a.nbytes for v in data.values() for a in v.values())
    zeros = sum(int((a == 0).sum()) for v in data.values() for a in v.values()) / (nbytes / 4)
    print(f"  {nbytes / 1e9:.2f} GB float32, {zeros:.1%} exact zeros")

    npy, h5, st, st16 = work / "npy", work / "feats.h5", work / "store", work / "store16"
    st_flat, st_plain = work / "store_unsharded", work / "store_plain_zarr"
    t_npy = timed(lambda: write_npy(npy, data))
    t_h5 = timed(lambda: write_h5(h5, data))
    t0 = time.perf_counter()
    store = write_store(st, data, StorageOptions())
    t_st = time.perf_counter() - t0
    t0 = time.perf_counter()
    store16 = write_store(st16, data, StorageOptions(), dtype="float16")
    t_st16 = time.perf_counter() - t0
    write_store(st_flat, data, PREVIOUS_DEFAULT)
    write_store(st_plain, data, StorageOptions(), engine="zarr")

    r = args.repeat
    full = interleaved(
        {
            "npy": lambda: read_all_npy(npy, vids),
            "h5": lambda: read_all_h5(h5, vids),
            "st": lambda: read_all_store(FeatureStore.open(str(st)), vids),
            "st16": lambda: read_all_store(FeatureStore.open(str(st16)), vids),
        },
        r,
    )
    rd_npy, rd_h5, rd_st, rd_st16 = full["npy"], full["h5"], full["st"], full["st16"]

    cs = crops(data, args.crops, args.seed + 1)
    crop_bytes = sum((b - a) * 2048 * 4 for _, a, b in cs)
    opened, opened16 = FeatureStore.open(str(st)), FeatureStore.open(str(st16))
    unverified = FeatureStore.open(str(st), verify=False)
    via_zarr = FeatureStore.open(str(st))
    flat = FeatureStore.open(str(st_flat))
    plain = FeatureStore.open(str(st_plain))
    # A chunk cache that holds the whole compressed store, as a training job would size it.
    cache = int(dir_bytes(st) * 1.1)
    cached = FeatureStore.open(str(st), cache_bytes=cache)
    t0 = time.perf_counter()
    crop_store(cached, cs)  # the first pass fills the cache (a training job's first epoch)
    cache_first = time.perf_counter() - t0
    crop = interleaved(
        {
            "load": lambda: crop_npy_load(npy, cs),
            "mmap": lambda: crop_npy_mmap(npy, cs),
            "h5": lambda: crop_h5(h5, cs),
            "st": lambda: crop_store(opened, cs),
            "st_nover": lambda: crop_store(unverified, cs),
            "st_fresh": lambda: crop_store(FeatureStore.open(str(st)), cs),
            "st_zarr": lambda: crop_store_zarr_path(via_zarr, cs),
            "st_flat": lambda: crop_store(flat, cs),
            "st_plain": lambda: crop_store(plain, cs),
            "st_cache": lambda: crop_store(cached, cs),
            "st16": lambda: crop_store(opened16, cs),
        },
        r,
    )
    cr_load, cr_mmap, cr_h5 = crop["load"], crop["mmap"], crop["h5"]

    info = store.info()["feature_sets"][f"{DATASET}/{FS}"]
    info16 = store16.info()["feature_sets"][f"{DATASET}/{FS}"]
    gb = nbytes / 1e9
    print(
        f"\ndefaults: chunks {info['chunks']['rgb']} in shards of up to "
        f"{info['storage']['shard_t']} snippets, codec {info['compression']}"
    )
    print("\n== write (GB/s of float32 features) ==")
    print(f"  npy per video  {gb / t_npy:7.2f}")
    print(f"  h5py           {gb / t_h5:7.2f}")
    print(f"  store float32  {gb / t_st:7.2f}   ratio vs npy {t_npy / t_st:.2f}x")
    print(f"  store float16  {gb / t_st16:7.2f}   ratio vs npy {t_npy / t_st16:.2f}x")
    print("\n== whole-dataset read (GB/s) ==")
    print(f"  npy            {gb / rd_npy:7.2f}")
    print(f"  h5py           {gb / rd_h5:7.2f}")
    print(
        f"  store float32  {gb / rd_st:7.2f}   vs npy {rd_npy / rd_st:.2f}x   vs h5py {rd_h5 / rd_st:.2f}x"
    )
    print(
        f"  store float16  {gb / rd_st16:7.2f}   vs npy {rd_npy / rd_st16:.2f}x   vs h5py {rd_h5 / rd_st16:.2f}x"
    )
    print(f"\n== random-crop read: {len(cs)} crops of {CROP} snippets (crops/s) ==")
    print(f"  npy load+crop  {len(cs) / cr_load:7.1f}   (how BaSNet/ActionFormer loaders read)")
    print(f"  npy mmap crop  {len(cs) / cr_mmap:7.1f}   (best case for .npy)")
    print(f"  h5py           {len(cs) / cr_h5:7.1f}")
    for label, key in (
        ("store float32", "st"),
        ("  verify off  ", "st_nover"),
        ("  fresh open  ", "st_fresh"),
        ("  zarr path   ", "st_zarr"),
        ("  unsharded   ", "st_flat"),
        ("  plain zarr  ", "st_plain"),
        ("  cache, 1st  ", "st_cache_first"),
        ("  cache, warm ", "st_cache"),
        ("store float16", "st16"),
    ):
        t = cache_first if key == "st_cache_first" else crop[key]
        print(
            f"  {label}  {len(cs) / t:7.1f}   vs npy load {cr_load / t:.2f}x   "
            f"vs npy mmap {cr_mmap / t:.2f}x   vs h5py {cr_h5 / t:.2f}x"
        )
    print(
        "  store float32: the default layout, read through a store held open as a training"
        " loop does (array\n  metadata and shard indexes in memory, no chunk data cached);"
        " fresh open: the same crops through a\n  store opened just before (every video's"
        " metadata and shard indexes read on first touch); zarr path:\n  the store read"
        " through zarr-python's general path; unsharded: the previous default layout"
        f" ({PREVIOUS_DEFAULT.chunk_t}-snippet\n  chunks, each its own object); plain zarr: the"
        " default layout in a plain zarr v3 directory (engine='zarr',\n  no versions);"
        " cache: the store opened with"
        f" FeatureStore.open(cache_bytes={cache / 1e9:.2f} GB)\n  (its compressed size), as a"
        " training loop that rereads it opens it: 1st = the pass that fills the cache\n"
        "  (one pass, a first epoch), warm = the best later pass (every chunk in memory, as"
        " the .npy files are in the\n  page cache)"
    )
    print(f"  ({crop_bytes / 1e9:.2f} GB of crops per pass)")
    for label, key in (("no cache", "st"), ("chunk cache warm", "st_cache")):
        ratio = cr_load / crop[key]
        verdict = "met" if ratio >= 0.5 else "NOT met"
        print(f"  target: random-crop read >= 0.5x npy load, {label}: {ratio:.2f}x, {verdict}")
    ratio = crop["st_nover"] / crop["st"]
    verdict = "met" if ratio >= 0.9 else "NOT met"
    print(f"  target: verified crops >= 0.9x unverified: {ratio:.2f}x, {verdict}")
    stats = cached.cache_stats()
    assert stats is not None
    print(
        f"  chunk cache: {stats.bytes / 1e9:.2f} GB in {stats.chunks} chunks, hit rate"
        f" {stats.hit_rate:.1%} over all passes"
    )
    print("\n== size ==")
    print(f"  npy dir        {dir_bytes(npy) / 1e9:6.2f} GB")
    print(f"  h5py file      {h5.stat().st_size / 1e9:6.2f} GB")
    print(
        f"  store float32  {dir_bytes(st) / 1e9:6.2f} GB   compression {info['compression_ratio']:.3f}x "
        f"(npy/store on disk {dir_bytes(npy) / dir_bytes(st):.3f}x)"
    )
    err = info16["float16_error"]
    print(
        f"  store float16  {dir_bytes(st16) / 1e9:6.2f} GB   vs float32 npy "
        f"{dir_bytes(npy) / dir_bytes(st16):.3f}x   error max_abs {err['max_abs']:.2e} "
        f"max_rel {err['max_rel']:.2e} rmse {err['rmse']:.2e}"
    )


# (codec, level, shuffle, transpose) tried by ``--sweep all``.
_F32_CODECS = (
    ("none", 0, "noshuffle", False),
    ("blosc-lz4", 5, "shuffle", False),
    ("blosc-zstd", 3, "shuffle", False),
    ("blosc-zstd", 3, "shuffle", True),
    ("zstd", 3, "noshuffle", False),
    ("pcodec", 4, "noshuffle", False),
    ("pcodec", 8, "noshuffle", False),
)
_F16_CODECS = (
    ("blosc-zstd", 3, "shuffle", False),
    ("blosc-zstd", 3, "shuffle", True),
    ("pcodec", 4, "noshuffle", False),
)


def run_sweep(args: argparse.Namespace, work: Path) -> None:
    """Chunk length x codec on a THUMOS-like subset: compression, full read, crop read."""
    data = make_dataset(30 if not args.small else 8, (100, 2000), args.seed)
    vids = list(data)
    npy = work / "npy"
    write_npy(npy, data)
    cs = crops(data, 100, args.seed + 1)
    candidates: list[tuple[str, StorageOptions, str]] = []
    # Sharded: chunks packed into one stored object per stream (the default since sharding).
    for chunk in (64, 128, 256):
        candidates.append(
            ("f32", StorageOptions(chunk_t=chunk, codec="pcodec", clevel=8), "float32")
        )
    candidates.append(("f32", StorageOptions(chunk_t=128, codec="blosc-zstd"), "float32"))
    candidates.append(("f16", StorageOptions(chunk_t=128, codec="pcodec", clevel=4), "float16"))
    if args.sweep == "layouts":
        candidates.append(("f32", PREVIOUS_DEFAULT, "float32"))
    # The unsharded grid that chose the codec and chunk length (``--sweep all``).
    grid = (
        ("f32", "float32", (128, 256, 512), _F32_CODECS),
        ("f16", "float16", (128, 256), _F16_CODECS),
    )
    for label, dtype, chunks, codecs in grid if args.sweep == "all" else ():
        for chunk in chunks:
            for codec, clevel, shuffle, transpose in codecs:
                opts = StorageOptions(
                    chunk_t=chunk,
                    codec=codec,
                    clevel=clevel,
                    shuffle=shuffle,
                    transpose=transpose,
                    shard_t=None,
                )
                candidates.append((label, opts, dtype))
    header = f"{'dtype':5} {'chunk':>5} {'codec':32} {'ratio':>6} {'write':>6} {'full':>6} {'crop/load':>9} {'crop/mmap':>9}"
    print(header)
    for i, (label, opts, dtype) in enumerate(candidates):
        path = work / f"sweep{i}"
        t0 = time.perf_counter()
        store = write_store(path, data, opts, dtype)
        t_write = time.perf_counter() - t0
        info = store.info()["feature_sets"][f"{DATASET}/{FS}"]
        opened = FeatureStore.open(str(path))
        t = interleaved(
            {
                "full": lambda s=opened: read_all_store(s, vids),
                "npy_full": lambda: read_all_npy(npy, vids),
                "crop": lambda s=opened: crop_store(s, cs),
                "npy_load": lambda: crop_npy_load(npy, cs),
                "npy_mmap": lambda: crop_npy_mmap(npy, cs),
            },
            args.repeat,
        )
        t_full, t_crop = t["full"], t["crop"]
        base_full, base_crop, base_mmap = t["npy_full"], t["npy_load"], t["npy_mmap"]
        ratio = info["bytes_logical"] / info["bytes_stored"] * (2 if dtype == "float16" else 1)
        print(
            f"{label:5} {opts.chunk_t:5d} {info['compression']:32} {ratio:6.3f} "
            f"{t_write:6.1f} {base_full / t_full:6.2f} {base_crop / t_crop:9.2f} {base_mmap / t_crop:9.2f}"
        )
        shutil.rmtree(path)
    print("ratio: float32 bytes / stored bytes; write: seconds; full, crop: speed relative to .npy")


def run_verify(args: argparse.Namespace, work: Path) -> None:
    """What checking every read costs: the same reads with verification on and off.

    Verified reads compare each fetched chunk with its crc32c before decoding it (the
    default); ``FeatureStore.open(verify=False)`` skips that arithmetic. Stores written
    before chunks had checksums are instead hashed (sha256) when a whole array is read;
    that cost is the hash of the decoded arrays, timed here on the same data.
    """
    from talkit.store.validate import content_hash

    n, t_range = (20, (100, 600)) if args.small else (200, (100, 2000))
    print(f"generating {n} videos, T in {t_range[0]}..{t_range[1]}, D 2048 (rgb+flow) ...")
    data = make_dataset(n, t_range, args.seed)
    vids = list(data)
    nbytes = sum(a.nbytes for v in data.values() for a in v.values())
    st = work / "store"
    write_store(st, data, StorageOptions())
    cs = crops(data, args.crops, args.seed + 1)
    on, off = FeatureStore.open(str(st)), FeatureStore.open(str(st), verify=False)
    arrays = [a for v in data.values() for a in v.values()]
    rounds = max(args.repeat, 5)
    t = interleaved(
        {
            "crop_on": lambda: crop_store(on, cs),
            "crop_off": lambda: crop_store(off, cs),
            "fresh_on": lambda: crop_store(FeatureStore.open(str(st)), cs),
            "fresh_off": lambda: crop_store(FeatureStore.open(str(st), verify=False), cs),
            "whole_on": lambda: read_all_store(on, vids),
            "whole_off": lambda: read_all_store(off, vids),
            "sha256": lambda: [content_hash(a) for a in arrays],
        },
        rounds,
    )
    gb = nbytes / 1e9
    print(f"\n== verification cost: {len(cs)} crops of {CROP} snippets, best of {rounds} rounds ==")
    print(f"{'read':34} {'verified':>10} {'unverified':>10} {'ratio':>6}")
    rows = (
        ("random crops, store held open", "crop", "crops/s", len(cs)),
        ("random crops, fresh open", "fresh", "crops/s", len(cs)),
        ("whole dataset", "whole", "GB/s", gb),
    )
    for label, key, unit, amount in rows:
        a, b = t[f"{key}_on"], t[f"{key}_off"]
        print(f"{label:34} {amount / a:10.2f} {amount / b:10.2f} {b / a:6.2f}   ({unit})")
    legacy = t["whole_off"] / (t["whole_off"] + t["sha256"])
    print(
        f"{'whole dataset, pre-checksum store':34} {gb / (t['whole_off'] + t['sha256']):10.2f} "
        f"{gb / t['whole_off']:10.2f} {legacy:6.2f}   (GB/s; sha256 of every array added)"
    )
    ratio = t["crop_off"] / t["crop_on"]
    verdict = "met" if ratio >= 0.9 else "NOT met"
    print(f"target: verified random crops >= 0.9x unverified: {ratio:.2f}x, {verdict}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", action="store_true", help="quick run on 20 short videos")
    parser.add_argument(
        "--sweep",
        nargs="?",
        const="all",
        choices=["all", "layouts"],
        help="chunk/codec sweep instead of the main run (layouts: only sharded pcodec and "
        "blosc layouts against the previous unsharded default)",
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="only the cost of verified reads (checksums on) against verify=False",
    )
    parser.add_argument("--crops", type=int, default=400, help="random crops per pass")
    parser.add_argument("--repeat", type=int, default=3, help="read passes (best is reported)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where to write (default: a temp dir)"
    )
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="talkit-store-bench-", dir=args.workdir))
    try:
        run = run_verify if args.verify else run_sweep if args.sweep else run_main
        run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
