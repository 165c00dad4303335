"""One exception hierarchy for talkit.

Every error says what went wrong, where, and what to do. ``exit_code`` is what the CLI
exits with: 2 for bad usage, configuration or input, 1 for work that failed.
"""

from __future__ import annotations


class TalkitError(Exception):
    """Base of every error talkit raises on purpose."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message} ({hint})")


class InputError(TalkitError):
    """The user gave us something we cannot use: a bad file, option or config."""

    exit_code = 2


class WorkFailedError(TalkitError):
    """The input was valid but the work did not succeed."""

    exit_code = 1


class AnnotationError(InputError):
    """An annotation file is missing, malformed or of an unknown format."""


class StoreError(InputError):
    """A feature store cannot be opened, read or written as asked."""


class VideoDecodeError(WorkFailedError):
    """A video could not be decoded completely.

    ``kind`` is one of ``truncated``, ``corrupt`` or ``unreadable``.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        path: str | None = None,
        frames_decoded: int | None = None,
        frames_expected: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.kind = kind
        self.path = path
        self.frames_decoded = frames_decoded
        self.frames_expected = frames_expected
        super().__init__(message, hint=hint)


class CheckpointError(InputError):
    """A checkpoint file does not fit the model it was given to."""


class ConfigError(InputError):
    """A configuration file or preset is invalid."""


class Interrupted(TalkitError):
    """The user pressed Ctrl-C; the message says what was kept and how to go on."""

    exit_code = 130
