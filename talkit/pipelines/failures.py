"""Per-video failures: recorded, reported, never allowed to stop the other videos.

A failure keeps what a user needs to act on it: the video id and file, the error type
(``VideoDecodeError``, ``CheckpointError``, ``WorkerDiedError``, ...), the message, and
for decode errors the damage kind (truncated, corrupt, unreadable). Failures go into the
store's run record (commit metadata) and the run's JSON report; any failure makes the
command exit 1, and ``--max-failures N`` stops a run whose setup is broken for every video
(a wrong checkpoint, a missing codec) instead of grinding through 50k of them.
"""

from __future__ import annotations

import traceback
from dataclasses import asdict, dataclass
from typing import Any

from talkit.errors import TalkitError, WorkFailedError

MAX_MESSAGE = 2000  # characters of a message kept in records


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Failure:
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__ if k in data})


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
    )


class WorkerDiedError(WorkFailedError):
    """The worker process died while extracting a video, more times than we retry."""


class TooManyFailuresError(WorkFailedError):
    """``--max-failures`` was reached: the run stopped early."""


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
