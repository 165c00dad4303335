"""The store's own error types, all StoreError so the CLI reports them alike.

Separate classes let callers catch one situation (say, a video that already exists)
without parsing messages. Most are exit code 2 (the request cannot be served as asked);
:class:`CorruptDataError` is exit code 1: the request was fine, the stored data is not.
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


class StoreReadError(StoreError):
    """Stored data that could not be fetched for another reason than damage (a timeout)."""

    exit_code = 1


class CorruptDataError(StoreError):
    """Stored data that fails its checks: a checksum, a hash, a missing or unreadable object.

    Raised instead of returning values that may be wrong. ``feature_set``, ``video``,
    ``array`` and ``chunk`` say where, as far as the read knows; ``detail`` says what.
    """

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        store: str | None = None,
        feature_set: str | None = None,
        video: str | None = None,
        array: str | None = None,
        chunk: int | None = None,
        detail: str | None = None,
    ) -> None:
        self.store = store
        self.detail = detail if detail is not None else message
        self.feature_set = feature_set
        self.video = video
        self.array = array
        self.chunk = chunk
        super().__init__(message, hint=hint)


__all__ = [
    "CommitConflictError",
    "CorruptDataError",
    "FeatureSetNotFoundError",
    "FeatureValidationError",
    "StoreError",
    "StoreFormatError",
    "StoreReadError",
    "VersionNotFoundError",
    "VideoExistsError",
    "VideoNotFoundError",
]
