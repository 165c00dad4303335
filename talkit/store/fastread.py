"""A lean read path for row ranges of (T, D) feature arrays, beside zarr's general one.

Why: a training loop reads thousands of random crops, and for each one zarr-python runs its
general indexing and codec pipeline (buffer wrappers, per-chunk task bookkeeping, then a
concatenation of the streams). Reading rows ``a..b`` of every stream of a video needs none
of that: fetch the bytes that cover ``a..b`` for all streams in one gather on the store,
decode them in the calling thread and a small pool at once (pcodec, Blosc and Zstd release
the GIL), and copy their rows straight into the joint output array. pcodec decodes only
up to the last row a crop needs.

Each request to a store has a fixed cost (for a local icechunk repository ~0.2-0.3 ms of
CPU, as much as reading half a MB), so the store writes sharded arrays: chunks packed into
one stored object per stream. For a sharded array this path reads each shard's index once
per handle (an array in a snapshot never changes) and then fetches the chunks a crop needs
as one byte range per shard. With the open store's chunk cache
(:mod:`talkit.store.chunk_cache`), chunks found there are neither fetched nor copied, and a
crop found whole there never goes to the store.

Every chunk this path returns is checked first (:mod:`talkit.store.integrity`): a chunk
whose codec chain ends in crc32c must match its checksum before it is decoded or cached (a
cached chunk is trusted), a shard index must match its own, and in such arrays a chunk the
store does not have is damage (the writer stores every chunk), not the fill value. Bytes
that do not decode, objects that are missing or short, all raise CorruptDataError naming
the array and chunk. ``verify=False`` skips only the checksum arithmetic.

This path is used only for layouts it decodes exactly like zarr does
(:mod:`talkit.store.chunk_format`): zarr v3, 2-d, a
floating dtype, a regular chunk grid whose chunks span the full second dim, no filter but
an optional (1, 0) transpose, and a codec chain of pcodec alone or bytes (either endian)
optionally followed by Zstd or Blosc, then optionally crc32c, either directly or inside a
sharding codec (index: little-endian bytes, optionally crc32c, at the start or end).
:func:`plan` returns None for anything else and the caller falls back to zarr. Tests
compare it with zarr's own read for every layout the store writes.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zarr
from zarr.abc.store import RangeByteRequest, SuffixByteRequest
from zarr.codecs import ShardingCodec
from zarr.core.buffer import default_buffer_prototype
from zarr.core.chunk_grids import RegularChunkGrid
from zarr.core.metadata.v3 import ArrayV3Metadata
from zarr.core.sync import sync

from talkit.store.chunk_cache import ChunkCache
from talkit.store.chunk_format import (
    Damaged,
    DecodeInto,
    Decoder,
    ShardLayout,
    crc32c,
    decoders,
    shard_layout,
    split_chain,
)
from talkit.store.errors import CorruptDataError
from talkit.store.integrity import corrupt, library_error, read_error

__all__ = ["ENABLED", "ArrayPlan", "Damaged", "ShardLayout", "plan", "read_rows"]

ENABLED = True  # False sends every read through zarr (tests and the benchmark compare both)

_MAX_THREADS = 4  # decode threads besides the caller's
_NO_CHUNK = np.uint64(2**64 - 1)  # a shard index entry for a chunk that was not written
_pool: ThreadPoolExecutor | None = None
_pool_pid = -1
_pool_lock = threading.Lock()
_threads = 1
_scratch = threading.local()  # per decode thread: a reused buffer for one decoded chunk


def _scratch_buffer(dtype: np.dtype, size: int) -> np.ndarray:
    """A flat buffer of ``size`` values owned by this thread (no page faults per chunk)."""
    buffer = getattr(_scratch, "buffer", None)
    if buffer is None or buffer.nbytes < size * dtype.itemsize:
        buffer = _scratch.buffer = np.empty(size * dtype.itemsize, dtype=np.uint8)
    return buffer[: size * dtype.itemsize].view(dtype)


def _executor() -> ThreadPoolExecutor:
    """The decode pool, made per process (a pool inherited through fork has no threads)."""
    global _pool, _pool_pid, _threads
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():
            cpus = len(os.sched_getaffinity(0))
            workers = max(1, min(_MAX_THREADS, cpus))
            _pool = ThreadPoolExecutor(workers, thread_name_prefix="talkit-decode")
            _pool_pid = os.getpid()
            # Decoding threads worth keeping busy: the caller and the pool, at most one per CPU
            # (more jobs than CPUs only adds hand-offs).
            _threads = max(1, min(cpus, workers + 1))
        return _pool


@dataclass(frozen=True)
class ArrayPlan:
    """How to fetch and decode the chunks of one (T, D) array without zarr's pipeline."""

    store: Any  # a zarr.abc.store.Store
    prefix: str
    metadata: ArrayV3Metadata
    rows: int
    dim: int
    chunk_rows: int  # rows per decodable chunk
    object_rows: int  # rows per stored object: a shard, or the chunk itself
    dtype: np.dtype
    fill_value: Any
    decode: Decoder
    decode_into: DecodeInto | None = None  # decodes a prefix straight into an array
    shard: ShardLayout | None = None
    checksum: bool = False  # each chunk ends in a crc32c of its bytes
    verify: bool = True  # compare checksums (False: strip them unchecked)
    transposed: bool = False  # chunks stored (dim, rows): decoded whole, then transposed
    url: str = ""  # the store's, for error messages
    # Shard indexes read so far, by shard number: an array in a snapshot never changes.
    indexes: dict[int, np.ndarray | None] = field(default_factory=dict, compare=False)
    cache: ChunkCache | None = field(default=None, compare=False)  # the open store's

    def object_key(self, index: int) -> str:
        key = self.metadata.encode_chunk_key((index, 0))
        return f"{self.prefix}/{key}" if self.prefix else key

    @property
    def complete(self) -> bool:
        """Whether every chunk is stored (arrays written with checksums are), so a gap is damage."""
        return self.checksum

    def damage(self, what: str, chunk: int | None = None) -> CorruptDataError:
        return corrupt(self.url, self.prefix, what, chunk=chunk)


def plan(
    array: zarr.Array,
    cache: ChunkCache | None = None,
    *,
    verify: bool = True,
    url: str = "",
) -> ArrayPlan | None:
    """A plan for reading row ranges of ``array``, or None when zarr must read it.

    ``cache``: where to keep the compressed chunks this plan fetches (and look first).
    ``verify``: compare chunk checksums (on by default); ``url`` names the store in errors.
    """
    metadata = array.metadata
    if not isinstance(metadata, ArrayV3Metadata) or len(metadata.shape) != 2:
        return None
    grid = metadata.chunk_grid
    if not isinstance(grid, RegularChunkGrid):
        return None
    object_rows, object_dim = grid.chunk_shape
    rows, dim = metadata.shape
    if object_dim != dim or object_rows <= 0:
        return None
    try:
        dtype = np.dtype(metadata.dtype.to_native_dtype())
    except (AttributeError, TypeError):
        return None
    if dtype.kind != "f":
        return None
    codecs = list(metadata.codecs)
    shard = None
    chunk_rows = object_rows
    if len(codecs) == 1 and isinstance(codecs[0], ShardingCodec):
        shard = shard_layout(codecs[0], int(object_rows), int(dim))
        if shard is None:
            return None
        chunk_rows = int(codecs[0].chunk_shape[0])
        codecs = list(codecs[0].codecs)
    chain = split_chain(codecs)
    if chain is None:
        return None
    codecs, transposed, checksum = chain
    decoding = decoders(codecs, dtype)
    if decoding is None:
        return None
    fill = metadata.fill_value
    return ArrayPlan(
        store=array.store_path.store,
        prefix=array.store_path.path,
        metadata=metadata,
        rows=int(rows),
        dim=int(dim),
        chunk_rows=int(chunk_rows),
        object_rows=int(object_rows),
        dtype=dtype,
        fill_value=0 if fill is None else fill,
        decode=decoding[0],
        decode_into=None if transposed else decoding[1],
        shard=shard,
        checksum=checksum,
        verify=verify,
        transposed=transposed,
        url=url,
        cache=cache,
    )


@dataclass
class _Fetch:
    """One request (a stored object, or a byte range of a shard) and the chunks it holds."""

    plan: ArrayPlan
    columns: np.ndarray  # the output columns of this plan's array
    key: str = ""  # "" for chunks that were never written (read as the fill value)
    byte_range: tuple[int, int] | None = None  # None: the whole object
    chunks: list[tuple[int, int, int]] = field(default_factory=list)  # (chunk, lo, hi) bytes
    cached: dict[int, bytes] | None = None  # chunks found in the cache: nothing to fetch


def _from_cache(
    p: ArrayPlan, first: int, last: int, columns: np.ndarray
) -> tuple[_Fetch | None, list[int]]:
    """Chunks first..last of one array: those in the cache (as a fetch), and the rest."""
    if p.cache is None:
        return None, list(range(first, last + 1))
    hit = _Fetch(p, columns, cached={})
    rest: list[int] = []
    for c in range(first, last + 1):
        raw = p.cache.get((p.prefix, c))
        if raw is None:
            rest.append(c)
        else:
            hit.cached[c] = raw  # type: ignore[index]
            hit.chunks.append((c, 0, 0))
    return (hit if hit.chunks else None), rest


def _shards_needed(wanted: Sequence[tuple[ArrayPlan, list[int]]]) -> list[tuple[ArrayPlan, int]]:
    """Shards holding the wanted chunks whose index this handle has not read yet."""
    needed: dict[tuple[int, int], tuple[ArrayPlan, int]] = {}
    for p, chunks in wanted:
        if p.shard is None:
            continue
        for c in chunks:
            s = c // p.shard.chunks_per_shard
            if s not in p.indexes:
                needed.setdefault((id(p), s), (p, s))
    return list(needed.values())


async def _load_index(p: ArrayPlan, shard: int) -> None:
    """Read and remember the index of one shard (None: the shard was never written)."""
    layout = p.shard
    assert layout is not None
    request = (
        RangeByteRequest(0, layout.index_nbytes)
        if layout.index_at_start
        else SuffixByteRequest(layout.index_nbytes)
    )
    first = shard * layout.chunks_per_shard
    try:
        raw = await p.store.get(p.object_key(shard), default_buffer_prototype(), byte_range=request)
    except BaseException as exc:
        if not library_error(exc):
            raise
        raise read_error(p.url, p.prefix, exc, chunk=first) from exc
    if raw is None:
        if p.complete:
            raise p.damage(f"shard {shard} ({p.object_key(shard)}) is missing", chunk=first)
        p.indexes[shard] = None
        return
    try:
        p.indexes[shard] = layout.parse(raw.to_bytes(), verify=p.verify)
    except Damaged as exc:
        raise p.damage(f"shard {shard}: {exc.what}", chunk=first) from None


def _plan_fetches(p: ArrayPlan, chunks: list[int], columns: np.ndarray) -> list[_Fetch]:
    """The requests that fetch ``chunks`` (ascending) of one array: one per run of stored bytes."""
    if p.shard is None:
        return [_Fetch(p, columns, p.object_key(c), None, [(c, 0, -1)]) for c in chunks]
    per_shard = p.shard.chunks_per_shard
    by_shard: dict[int, list[int]] = {}
    for c in chunks:
        by_shard.setdefault(c // per_shard, []).append(c)
    fetches: list[_Fetch] = []
    for s, in_shard in by_shard.items():
        index = p.indexes[s]
        unwritten = _Fetch(p, columns)
        stored: list[tuple[int, int, int]] = []  # (offset, length, chunk)
        for c in in_shard:
            entry = None if index is None else index[c - s * per_shard]
            if entry is None or entry[0] == _NO_CHUNK:
                unwritten.chunks.append((c, 0, 0))
            else:
                stored.append((int(entry[0]), int(entry[1]), c))
        if unwritten.chunks:
            fetches.append(unwritten)
        stored.sort()
        while stored:  # runs of chunks stored back to back: one byte range each
            n = 1
            while n < len(stored) and stored[n][0] == stored[n - 1][0] + stored[n - 1][1]:
                n += 1
            run, stored = stored[:n], stored[n:]
            base, end = run[0][0], run[-1][0] + run[-1][1]
            placed = [(c, off - base, off - base + length) for off, length, c in run]
            fetches.append(_Fetch(p, columns, p.object_key(s), (base, end), placed))
    return fetches


def _chunk_bytes(p: ArrayPlan, c: int, data: np.ndarray, lo_byte: int, hi_byte: int) -> bytes:
    """The encoded bytes of chunk ``c`` from fetched ``data``, its checksum checked and removed."""
    raw = data if hi_byte < 0 else data[lo_byte:hi_byte]
    if not p.checksum:
        return bytes(raw)
    if raw.size < 4:
        raise Damaged(f"it has {raw.size} bytes, too few for its crc32c checksum", c)
    body = bytes(raw[:-4])  # the copy the decoder needs; crc32c lets go of the GIL on bytes
    if p.verify and crc32c(body) != raw[-4:].tobytes():
        raise Damaged("its bytes fail their crc32c checksum", c)
    return body


def _decode_chunk(p: ArrayPlan, c: int, raw: bytes, target: np.ndarray, lo: int, hi: int) -> None:
    """Decode chunk ``c`` (verified bytes) and write its rows ``lo..hi`` into ``target``."""
    first = c * p.chunk_rows
    if p.decode_into is None:
        flat = p.decode(raw)
        if flat.size != p.chunk_rows * p.dim:
            raise Damaged(f"it decoded to {flat.size} values, expected {p.chunk_rows * p.dim}", c)
        if p.transposed:
            target[...] = flat.reshape(p.dim, p.chunk_rows).T[lo - first : hi - first]
        else:
            target[...] = flat.reshape(p.chunk_rows, p.dim)[lo - first : hi - first]
        return
    want = (hi - first) * p.dim  # values up to the last row needed
    direct = lo == first and target.flags.c_contiguous
    out = target.reshape(-1) if direct else _scratch_buffer(p.dtype, want)
    got = p.decode_into(raw, out)  # direct: straight into the output, no copy
    if got != want:
        raise Damaged(f"it decoded to {got} values, expected {want}", c)
    if not direct:
        target[...] = out[(lo - first) * p.dim :].reshape(hi - lo, p.dim)


def _place(
    fetch: _Fetch,
    data: np.ndarray | None,
    chunks: list[tuple[int, int, int]],
    start: int,
    stop: int,
) -> None:
    """Check and decode ``chunks`` of one fetch and copy their rows ``start..stop`` out.

    ``data``: the fetched bytes as uint8 (None: nothing stored). Only the rows up to the
    crop's end are decoded where the codec can stop early (pcodec); a checksum covers the
    whole chunk, which is always fetched whole. Every failure names the array and chunk.
    """
    p = fetch.plan
    for c, lo_byte, hi_byte in chunks:
        first = c * p.chunk_rows
        lo, hi = max(start, first), min(stop, first + p.chunk_rows)
        target = fetch.columns[lo - start : hi - start]
        try:
            if fetch.cached is not None:
                raw = fetch.cached[c]  # checked before it was cached
            elif data is None or not fetch.key:
                if p.complete:  # the writer stored every chunk of this array
                    raise Damaged("the store does not have this chunk", c)
                target[...] = p.fill_value  # older arrays: zarr skipped all-fill chunks
                continue
            else:
                raw = _chunk_bytes(p, c, data, lo_byte, hi_byte)
                if p.cache is not None:
                    p.cache.put((p.prefix, c), raw)
            _decode_chunk(p, c, raw, target, lo, hi)
        except Damaged as exc:
            raise p.damage(exc.what, chunk=c) from None
        except CorruptDataError:
            raise
        except BaseException as exc:  # a codec that cannot decode what it was given
            if not library_error(exc):
                raise
            raise read_error(p.url, p.prefix, exc, chunk=c) from exc


def _split(
    fetched: list[tuple[_Fetch, np.ndarray | None]], threads: int
) -> list[tuple[_Fetch, np.ndarray | None, list[tuple[int, int, int]]]]:
    """Decode jobs: each fetch's chunks in consecutive runs, about one job per thread.

    A crop is one fetch per stream; on a machine with more CPUs than streams each stream's
    chunks are decoded by several threads at once.
    """
    per_fetch = -(-threads // len(fetched))
    jobs = []
    for fetch, data in fetched:
        n = len(fetch.chunks)
        parts = max(1, min(per_fetch, n))
        for i in range(parts):
            jobs.append((fetch, data, fetch.chunks[i * n // parts : (i + 1) * n // parts]))
    return jobs


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
    targets: list[np.ndarray] = []
    column = 0
    for i, p in enumerate(plans):
        targets.append(outs[0][:, column : column + p.dim] if joint else outs[i])
        column += p.dim
    prototype = default_buffer_prototype()
    ready: list[tuple[_Fetch, np.ndarray | None]] = []  # chunks found in the cache
    wanted: list[tuple[ArrayPlan, list[int]]] = []  # the rest, to fetch
    wanted_targets: list[np.ndarray] = []
    for p, target in zip(plans, targets, strict=True):
        hit, rest = _from_cache(p, start // p.chunk_rows, (stop - 1) // p.chunk_rows, target)
        if hit is not None:
            ready.append((hit, None))
        if rest:
            wanted.append((p, rest))
            wanted_targets.append(target)

    async def fetch(f: _Fetch) -> np.ndarray | None:
        if not f.key:
            return None
        request = None if f.byte_range is None else RangeByteRequest(*f.byte_range)
        first = f.chunks[0][0]
        try:
            buffer = await f.plan.store.get(f.key, prototype, byte_range=request)
        except BaseException as exc:  # a missing or short object, an unreadable manifest
            if not library_error(exc):
                raise
            raise read_error(f.plan.url, f.plan.prefix, exc, chunk=first) from exc
        if buffer is None:
            return None
        data = buffer.as_numpy_array()
        if f.byte_range is not None and data.size != f.byte_range[1] - f.byte_range[0]:
            raise f.plan.damage(
                f"{f.key} returned {data.size} of bytes {f.byte_range[0]}..{f.byte_range[1]} "
                "(the object is shorter than its shard index says)",
                chunk=first,
            )
        return data

    async def fetch_all() -> tuple[list[_Fetch], list[np.ndarray | None]]:
        missing = _shards_needed(wanted)
        if missing:
            await asyncio.gather(*(_load_index(p, s) for p, s in missing))
        fetches = [
            f
            for (p, chunks), t in zip(wanted, wanted_targets, strict=True)
            for f in _plan_fetches(p, chunks, t)
        ]
        return fetches, await asyncio.gather(*(fetch(f) for f in fetches))

    if wanted:  # all in the cache: no hop to zarr's I/O loop at all
        fetches, data = sync(fetch_all())
        ready.extend(zip(fetches, data, strict=True))
    # Decode here and in the pool at once (pcodec, Blosc and Zstd release the GIL); the
    # calling thread would only wait otherwise.
    pool = _executor()
    jobs = _split(ready, _threads)
    pending = [pool.submit(_place, *job, start, stop) for job in jobs[1:]]
    try:
        _place(*jobs[0], start, stop)
    finally:
        errors = [e for e in (future.exception() for future in pending) if e is not None]
    if errors:
        raise errors[0]
    return outs
