"""Per-video failures, told apart from failures of the setup that would hit every video.

A failure keeps what a user needs to act on it: the video id and file, the error type
(``VideoDecodeError``, ``CheckpointError``, ``WorkerDiedError``, ...), the message, and
for decode errors the damage kind (truncated, corrupt, unreadable). Failures go into the
store's run record (commit metadata) and the run's JSON report; any failure makes the
command exit 1.

Most failures belong to one video (a truncated file, a video shorter than a snippet) and
never stop the others. Some errors are not about the video at all, and would fail the
next 50,000 videos one by one; each failure carries its *scope*:

- ``video``: the video's own fault. The run goes on.
- ``systematic``: the machine's (CUDA errors, out of device or host memory, a full disk,
  too many open files). The run stops at once and exits 1.
- ``setup``: the installation's or the input's (a module that cannot be imported in a
  worker, a checkpoint that became unreadable, a store error). The run stops at once and
  exits 2.

And since a broken setup can also show up as an ordinary error (every video "corrupt"
because a codec is missing), ``--max-consecutive-failures N`` (default 20, 0: never) stops
a run after N failures in a row of the same error type; ``--max-failures N`` stops it
after N failures in all. A stopped run commits what finished and says why it stopped.
"""

from __future__ import annotations

import errno
import traceback
from dataclasses import asdict, dataclass
from typing import Any, Literal

from talkit.errors import CheckpointError, InputError, StoreError, TalkitError, WorkFailedError

MAX_MESSAGE = 2000  # characters of a message kept in records
DEFAULT_MAX_CONSECUTIVE = 20

Scope = Literal["video", "systematic", "setup"]
VIDEO: Scope = "video"
SYSTEMATIC: Scope = "systematic"
SETUP: Scope = "setup"

# Exception class names (anywhere in the MRO) that mean the device, not the video, failed:
# torch.cuda.OutOfMemoryError, torch.AcceleratorError (CUDA errors since torch 2.8).
_DEVICE_TYPES = frozenset({"OutOfMemoryError", "AcceleratorError", "CudaError"})
# Words of a RuntimeError raised by a GPU library rather than by the video's data.
_DEVICE_WORDS = ("CUDA", "cuDNN", "CUBLAS", "cuBLAS", "CUFFT", "NCCL", "HIP error", "device-side")
# OSErrors of the machine: no space, no memory, no file descriptors left.
_MACHINE_ERRNOS = frozenset({errno.ENOSPC, errno.ENOMEM, errno.EMFILE, errno.ENFILE, errno.EDQUOT})
# Type names of a worker's start-up error (Ray gives it as text) that are the setup's.
SETUP_TYPE_NAMES = frozenset(
    {"CheckpointError", "ImportError", "ModuleNotFoundError", "FileNotFoundError",
     "PermissionError", "IsADirectoryError", "ConfigError", "InputError"}
)  # fmt: skip


@dataclass(frozen=True)
class Failure:
    """One video that could not be extracted."""

    video_id: str
    path: str | None
    error_type: str
    message: str
    kind: str | None = None  # VideoDecodeError.kind, when there is one
    attempts: int = 1
    node_id: str | None = None
    scope: Scope = VIDEO

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Failure:
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__ if k in data})


def failure_scope(exc: BaseException) -> Scope:
    """Whether ``exc`` is about one video, the machine, or the setup (module docstring)."""
    from talkit.store.errors import FeatureValidationError

    names = {c.__name__ for c in type(exc).__mro__}
    if isinstance(exc, ImportError | CheckpointError):
        return SETUP
    if isinstance(exc, StoreError) and not isinstance(exc, FeatureValidationError):
        return SETUP  # a video's own features that do not fit are its own fault
    if isinstance(exc, MemoryError) or names & _DEVICE_TYPES:
        return SYSTEMATIC
    if isinstance(exc, RuntimeError) and any(w in str(exc) for w in _DEVICE_WORDS):
        return SYSTEMATIC
    if isinstance(exc, OSError) and exc.errno in _MACHINE_ERRNOS:
        return SYSTEMATIC
    return VIDEO


def failure_from_exception(
    video_id: str, path: str | None, exc: BaseException, *, node_id: str | None = None
) -> Failure:
    """Describe an exception raised while extracting one video.

    talkit errors carry their own message and hint. Anything else is a bug or an
    environment problem, so its last traceback frame is kept to make it reportable.
    """
    if isinstance(exc, TalkitError):
        message = str(exc)
    else:
        frames = traceback.extract_tb(exc.__traceback__)
        where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
        message = f"{exc}{where}"
    return Failure(
        video_id=video_id,
        path=path,
        error_type=type(exc).__name__,
        message=message[:MAX_MESSAGE],
        kind=getattr(exc, "kind", None) if isinstance(getattr(exc, "kind", None), str) else None,
        node_id=node_id,
        scope=failure_scope(exc),
    )


class WorkerDiedError(WorkFailedError):
    """The worker process died while extracting a video, more times than we retry."""


class RunStoppedError(TalkitError):
    """The run stopped before its end because of failures; what finished is committed."""


class TooManyFailuresError(RunStoppedError, WorkFailedError):
    """``--max-failures`` or ``--max-consecutive-failures`` was reached: stopped early."""


class SystematicFailureError(RunStoppedError, WorkFailedError):
    """An error of the machine (device, memory, disk), not of a video: stopped at once."""


class SetupFailureError(RunStoppedError, InputError):
    """An error of the installation or the input (imports, checkpoint, store): stopped."""


_RESUME = "videos finished before the stop are committed; re-run the same command to resume"


def check_max_failures(failures: int, max_failures: int | None, last: Failure | None) -> None:
    """Raise TooManyFailuresError once ``failures`` exceeds ``max_failures``."""
    if max_failures is None or failures <= max_failures:
        return
    detail = f"; the last: {last.video_id}: {last.error_type}: {last.message}" if last else ""
    raise TooManyFailuresError(
        f"{failures} videos failed, more than --max-failures {max_failures}; stopped early{detail}",
        hint="videos finished before the stop are committed; fix the cause (often a wrong "
        "checkpoint or missing codec) and re-run the same command to resume",
    )


def stop_error(failure: Failure) -> RunStoppedError | None:
    """The error that stops a run at once for this failure (None for a video's own)."""
    what = f"{failure.video_id}: {failure.error_type}: {_first_line(failure.message)}"
    if failure.scope == SYSTEMATIC:
        return SystematicFailureError(
            f"stopped at once: {what}; this is an error of the machine (device, memory or "
            "disk), not of the video, and would fail every video after it",
            hint="free memory or disk (try fewer --num-workers or a smaller --batch-size) or "
            f"fix the device; {_RESUME}",
        )
    if failure.scope == SETUP:
        return SetupFailureError(
            f"stopped at once: {what}; this is an error of the installation or the input "
            "(a module, a checkpoint or the store), not of the video",
            hint=f"fix it on every node (each needs the same talkit and dependencies); {_RESUME}",
        )
    return None


class FailureGuard:
    """Counts failures as they come and decides when a run must stop (module docstring)."""

    def __init__(
        self, *, max_failures: int | None = None, max_consecutive: int = DEFAULT_MAX_CONSECUTIVE
    ) -> None:
        self.max_failures = max_failures
        self.max_consecutive = max_consecutive
        self.streak_type: str | None = None
        self.streak = 0

    def success(self) -> None:
        """A video was extracted: the streak of failures ends."""
        self.streak_type, self.streak = None, 0

    def failure(self, failure: Failure, total: int) -> None:
        """Record one more failure (``total`` failures so far); raise if the run must stop."""
        error = stop_error(failure)
        if error is not None:
            raise error
        if failure.error_type == self.streak_type:
            self.streak += 1
        else:
            self.streak_type, self.streak = failure.error_type, 1
        if self.max_consecutive and self.streak >= self.max_consecutive:
            raise TooManyFailuresError(
                f"{self.streak} videos in a row failed with {failure.error_type} (the last: "
                f"{failure.video_id}: {_first_line(failure.message)}); stopped early: that "
                "looks like a problem of the setup (a missing codec, wrong weights), not of "
                "the videos",
                hint=f"fix the cause; {_RESUME} (--max-consecutive-failures 0 never stops "
                "for this)",
            )
        check_max_failures(total, self.max_failures, failure)


def start_failure_scope(cause: str) -> Scope:
    """The scope of a worker's start-up error, given as Ray's ``Type: message`` line."""
    name = cause.split(":", 1)[0].strip().rsplit(".", 1)[-1]
    if name in SETUP_TYPE_NAMES:
        return SETUP
    if name in _DEVICE_TYPES or name == "MemoryError" or any(w in cause for w in _DEVICE_WORDS):
        return SYSTEMATIC
    return VIDEO


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0][:300] if lines else ""
