"""An in-memory cache of compressed chunks, for training loops that reread a store.

Why: fetching a chunk from a local icechunk store costs more CPU than decoding it (its
reader streams files in 8 KiB blocking reads), so a loop that crops the same videos every
epoch pays that cost again and again. This cache keeps each chunk's compressed bytes,
ready for the decoder: a hit skips the fetch, the hop to zarr's I/O loop and the copy into
``bytes``. It holds compressed data, so a store of N bytes on disk needs about N bytes
here, and it belongs to one open store: a store's snapshot never changes under it, and
:meth:`FeatureStore.refresh` empties it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass


@dataclass(frozen=True)
class CacheStats:
    """How the cache has done so far (``FeatureStore.cache_stats``)."""

    max_bytes: int
    bytes: int
    chunks: int
    hits: int
    misses: int

    @property
    def hit_rate(self) -> float:
        asked = self.hits + self.misses
        return self.hits / asked if asked else 0.0


class ChunkCache:
    """Compressed chunks by key, least recently used dropped past ``max_bytes``.

    Thread-safe: the read path looks chunks up in the caller's thread and adds them from
    its decode threads.
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be > 0, got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self._chunks: OrderedDict[Hashable, bytes] = OrderedDict()
        self._bytes = 0
        self._hits = 0
        self._misses = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> bytes | None:
        with self._lock:
            raw = self._chunks.get(key)
            if raw is None:
                self._misses += 1
                return None
            self._chunks.move_to_end(key)
            self._hits += 1
            return raw

    def put(self, key: Hashable, raw: bytes) -> None:
        """Keep ``raw``; a chunk larger than the whole budget is not kept."""
        if len(raw) > self.max_bytes:
            return
        with self._lock:
            old = self._chunks.pop(key, None)
            if old is not None:
                self._bytes -= len(old)
            self._chunks[key] = raw
            self._bytes += len(raw)
            while self._bytes > self.max_bytes:
                _, dropped = self._chunks.popitem(last=False)
                self._bytes -= len(dropped)

    def clear(self) -> None:
        with self._lock:
            self._chunks.clear()
            self._bytes = 0

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(
                self.max_bytes, self._bytes, len(self._chunks), self._hits, self._misses
            )
