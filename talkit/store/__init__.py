"""talkit.store: versioned, chunked zarr v3 stores of snippet features.

The contract between extraction and training (design.md, "The store contract"). Build on
``FeatureStore``; everything else here is the types it hands out.
"""

from talkit.store.backend import CommitInfo
from talkit.store.chunk_cache import CacheStats
from talkit.store.errors import (
    FeatureSetNotFoundError,
    FeatureValidationError,
    StoreError,
    StoreFormatError,
    VersionNotFoundError,
    VideoExistsError,
    VideoNotFoundError,
)
from talkit.store.reader import FeatureSet, StreamView, VideoFeatures
from talkit.store.spec import FORMAT_VERSION, FeatureSetSpec, SourceInfo, StorageOptions
from talkit.store.store import FeatureStore
from talkit.store.versions import FeatureSetDiff, StoreDiff
from talkit.store.writer import ForkWriter, Writer

__all__ = [
    "FORMAT_VERSION",
    "CacheStats",
    "CommitInfo",
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
    "StreamView",
    "VersionNotFoundError",
    "VideoExistsError",
    "VideoFeatures",
    "VideoNotFoundError",
    "Writer",
]
