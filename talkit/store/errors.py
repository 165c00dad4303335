"""The store's own error types, all StoreError (exit code 2) so the CLI reports them alike.

Separate classes let callers catch one situation (say, a video that already exists)
without parsing messages.
"""

from __future__ import annotations

from talkit.errors import StoreError


class StoreFormatError(StoreError):
    """The path is not a talkit store, or one of a format version we cannot read."""


class VersionNotFoundError(StoreError):
    """A branch, tag or snapshot id that the store does not have."""


class FeatureSetNotFoundError(StoreError):
    """A ``dataset/feature_set`` that the store does not have."""


class VideoNotFoundError(StoreError):
    """A video id that a feature set does not have (or has only half written)."""


class VideoExistsError(StoreError):
    """A video that is already stored and was written again without ``overwrite=True``."""


class CommitConflictError(StoreError):
    """A commit that a concurrent writer's commit conflicts with (both changed one node)."""


class FeatureValidationError(StoreError):
    """Arrays that do not fit the feature set: wrong shape, dims, dtype or non-finite values."""


__all__ = [
    "CommitConflictError",
    "FeatureSetNotFoundError",
    "FeatureValidationError",
    "StoreError",
    "StoreFormatError",
    "VersionNotFoundError",
    "VideoExistsError",
    "VideoNotFoundError",
]
