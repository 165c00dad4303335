"""talkit.store: versioned, chunked zarr v3 stores of snippet features.

The contract between extraction and training (design.md, "The store contract"). Build on
``FeatureStore``; everything else here is the types it hands out.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from talkit.store.backend import CommitInfo
    from talkit.store.chunk_cache import CacheStats
    from talkit.store.errors import (
        CorruptDataError,
        FeatureSetNotFoundError,
        FeatureValidationError,
        StoreError,
        StoreFormatError,
        StoreReadError,
        VersionNotFoundError,
        VideoExistsError,
        VideoNotFoundError,
    )
    from talkit.store.reader import FeatureSet, StreamView, VideoFeatures
    from talkit.store.spec import FORMAT_VERSION, FeatureSetSpec, SourceInfo, StorageOptions
    from talkit.store.store import FeatureStore
    from talkit.store.versions import FeatureSetDiff, StoreDiff
    from talkit.store.writer import ForkWriter, Writer

# Lazy: zarr and icechunk load on first use of a store name, so that `talkit --help`,
# `talkit datasets ...` and the error classes (talkit.store.errors) stay light.
_EXPORTS = {
    "CommitInfo": "talkit.store.backend",
    "CacheStats": "talkit.store.chunk_cache",
    "CorruptDataError": "talkit.store.errors",
    "FeatureSetNotFoundError": "talkit.store.errors",
    "FeatureValidationError": "talkit.store.errors",
    "StoreError": "talkit.store.errors",
    "StoreFormatError": "talkit.store.errors",
    "StoreReadError": "talkit.store.errors",
    "VersionNotFoundError": "talkit.store.errors",
    "VideoExistsError": "talkit.store.errors",
    "VideoNotFoundError": "talkit.store.errors",
    "FeatureSet": "talkit.store.reader",
    "StreamView": "talkit.store.reader",
    "VideoFeatures": "talkit.store.reader",
    "FORMAT_VERSION": "talkit.store.spec",
    "FeatureSetSpec": "talkit.store.spec",
    "SourceInfo": "talkit.store.spec",
    "StorageOptions": "talkit.store.spec",
    "FeatureStore": "talkit.store.store",
    "FeatureSetDiff": "talkit.store.versions",
    "StoreDiff": "talkit.store.versions",
    "ForkWriter": "talkit.store.writer",
    "Writer": "talkit.store.writer",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'talkit.store' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = [
    "FORMAT_VERSION",
    "CacheStats",
    "CommitInfo",
    "CorruptDataError",
    "FeatureSet",
    "FeatureSetDiff",
    "FeatureSetNotFoundError",
    "FeatureSetSpec",
    "FeatureStore",
    "FeatureValidationError",
    "ForkWriter",
    "SourceInfo",
    "StorageOptions",
    "StoreDiff",
    "StoreError",
    "StoreFormatError",
    "StoreReadError",
    "StreamView",
    "VersionNotFoundError",
    "VideoExistsError",
    "VideoFeatures",
    "VideoNotFoundError",
    "Writer",
]
