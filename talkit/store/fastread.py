"""A lean read path for row ranges of (T, D) feature arrays, beside zarr's general one.

Why: a training loop reads thousands of random crops, and for each one zarr-python runs its
general indexing and codec pipeline (buffer wrappers, per-chunk task bookkeeping, then a
concatenation of the streams). Reading rows ``a..b`` of every stream of a video needs none
of that: fetch the chunks that cover ``a..b`` for all streams in one gather on the store,
decode each one in a small thread pool as soon as it arrives (pcodec, Blosc and Zstd
release the GIL), and copy its rows straight into the joint output array.

This path is used only for layouts it decodes exactly like zarr does: zarr v3, 2-d, a
floating dtype, a regular chunk grid whose chunks span the full second dim, no filters,
no sharding, and a codec chain of pcodec alone or bytes (either endian) optionally
followed by Zstd or Blosc. :func:`plan` returns None for anything else and the caller
falls back to zarr. Tests compare it with zarr's own read for every codec the store writes.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec, BytesCodec, ZstdCodec
from zarr.core.buffer import default_buffer_prototype
from zarr.core.chunk_grids import RegularChunkGrid
from zarr.core.metadata.v3 import ArrayV3Metadata
from zarr.core.sync import sync

Decoder = Callable[[bytes], np.ndarray]

ENABLED = True  # False sends every read through zarr (tests and the benchmark compare both)

_MAX_THREADS = 4
_pool: ThreadPoolExecutor | None = None
_pool_pid = -1
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    """The decode pool, made per process (a pool inherited through fork has no threads)."""
    global _pool, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():
            workers = max(1, min(_MAX_THREADS, len(os.sched_getaffinity(0))))
            _pool = ThreadPoolExecutor(workers, thread_name_prefix="talkit-decode")
            _pool_pid = os.getpid()
        return _pool


@dataclass(frozen=True)
class ArrayPlan:
    """How to fetch and decode the chunks of one (T, D) array without zarr's pipeline."""

    store: Any  # a zarr.abc.store.Store
    prefix: str
    metadata: ArrayV3Metadata
    rows: int
    dim: int
    chunk_rows: int
    dtype: np.dtype
    fill_value: Any
    decode: Decoder

    def chunk_key(self, index: int) -> str:
        key = self.metadata.encode_chunk_key((index, 0))
        return f"{self.prefix}/{key}" if self.prefix else key


def _decoder(metadata: ArrayV3Metadata, dtype: np.dtype) -> Decoder | None:
    """A bytes -> flat ndarray decoder for the array's codec chain, or None if unsupported."""
    codecs = list(metadata.codecs)
    if not codecs:
        return None
    first = codecs[0]
    if type(first).__name__ == "PCodec":
        if len(codecs) != 1 or getattr(first, "codec_name", "").split(".")[-1] != "pcodec":
            return None
        try:
            from pcodec import standalone
        except ImportError:
            return None
        return standalone.simple_decompress
    if not isinstance(first, BytesCodec) or len(codecs) > 2:
        return None
    endian = getattr(first.endian, "value", first.endian)
    stored = dtype.newbyteorder("<" if endian in (None, "little") else ">")
    if len(codecs) == 1:
        return lambda raw: np.frombuffer(raw, dtype=stored)
    second = codecs[1]
    if isinstance(second, ZstdCodec):
        from numcodecs import Zstd

        zstd = Zstd()
        return lambda raw: np.frombuffer(zstd.decode(raw), dtype=stored)
    if isinstance(second, BloscCodec):
        from numcodecs import Blosc

        blosc = Blosc()  # a Blosc frame carries its own settings; decoding needs none
        return lambda raw: np.frombuffer(blosc.decode(raw), dtype=stored)
    return None


def plan(array: zarr.Array) -> ArrayPlan | None:
    """A plan for reading row ranges of ``array``, or None when zarr must read it."""
    metadata = array.metadata
    if not isinstance(metadata, ArrayV3Metadata) or len(metadata.shape) != 2:
        return None
    grid = metadata.chunk_grid
    if not isinstance(grid, RegularChunkGrid):
        return None
    chunk_rows, chunk_dim = grid.chunk_shape
    rows, dim = metadata.shape
    if chunk_dim != dim or chunk_rows <= 0:
        return None
    try:
        dtype = np.dtype(metadata.dtype.to_native_dtype())
    except (AttributeError, TypeError):
        return None
    if dtype.kind != "f":
        return None
    decode = _decoder(metadata, dtype)
    if decode is None:
        return None
    fill = metadata.fill_value
    return ArrayPlan(
        store=array.store_path.store,
        prefix=array.store_path.path,
        metadata=metadata,
        rows=int(rows),
        dim=int(dim),
        chunk_rows=int(chunk_rows),
        dtype=dtype,
        fill_value=0 if fill is None else fill,
        decode=decode,
    )


def read_rows(
    plans: Sequence[ArrayPlan], start: int, stop: int, *, joint: bool
) -> list[np.ndarray]:
    """Rows ``start..stop`` of every planned array, fetched in one gather on the store.

    ``joint``: one (rows, sum of dims) array with the plans side by side, as a training
    loader wants [rgb, flow]; otherwise one array per plan. All plans have the same
    rows and dtype; ``0 <= start <= stop <= rows``.
    """
    dtype = plans[0].dtype
    if joint:
        outs = [np.empty((stop - start, sum(p.dim for p in plans)), dtype=dtype)]
    else:
        outs = [np.empty((stop - start, p.dim), dtype=dtype) for p in plans]
    if stop <= start:
        return outs
    jobs: list[tuple[ArrayPlan, int, np.ndarray]] = []  # (plan, chunk index, its columns)
    column = 0
    for i, p in enumerate(plans):
        target = outs[0][:, column : column + p.dim] if joint else outs[i]
        column += p.dim
        for index in range(start // p.chunk_rows, (stop - 1) // p.chunk_rows + 1):
            jobs.append((p, index, target))
    prototype = default_buffer_prototype()

    def place(job: tuple[ArrayPlan, int, np.ndarray], raw: Any) -> None:
        p, index, columns = job
        first = index * p.chunk_rows
        lo, hi = max(start, first), min(stop, first + p.chunk_rows)
        target = columns[lo - start : hi - start]
        if raw is None:  # never written: zarr skips chunks that are all fill value
            target[...] = p.fill_value
            return
        flat = p.decode(raw.to_bytes())
        if flat.size != p.chunk_rows * p.dim:
            raise ValueError(
                f"chunk {p.chunk_key(index)} decoded to {flat.size} values, "
                f"expected {p.chunk_rows * p.dim}"
            )
        target[...] = flat.reshape(p.chunk_rows, p.dim)[lo - first : hi - first]

    pool = _executor()

    async def fetch_and_place(job: tuple[ArrayPlan, int, np.ndarray]) -> None:
        # Each chunk is decoded as soon as it arrives, overlapping fetches and decodes.
        raw = await job[0].store.get(job[0].chunk_key(job[1]), prototype)
        await asyncio.get_running_loop().run_in_executor(pool, place, job, raw)

    async def read_all() -> None:
        await asyncio.gather(*(fetch_and_place(job) for job in jobs))

    sync(read_all())
    return outs
