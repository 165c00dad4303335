"""``probe``: what a video claims to be, and (with ``full``) whether it really is.

Why: before a long extraction run you want to know which files will fail, and why,
without running the extractor. A quick probe reads the container's claims and which
backend ``open_video`` would use; a full probe decodes every frame (with PyAV, which
keeps going past errors and so can count what is lost) and compares.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from talkit.errors import VideoDecodeError

if TYPE_CHECKING:  # the readers (NumPy) load when probe() runs, not with the package
    from talkit.extractors.video import VideoMeta, VideoReader

ProbeStatus = Literal["ok", "truncated", "corrupt", "unreadable", "unchecked"]


@dataclass(frozen=True)
class ProbeResult:
    """Container claims plus, for a full probe, what decoding found.

    ``status`` is ``unchecked`` for a quick probe of a file that opens.
    ``last_timestamp_s`` is the time of the last decoded frame (from the first frame).
    """

    path: str
    status: ProbeStatus
    meta: VideoMeta | None
    decoded_frames: int | None = None
    last_timestamp_s: float | None = None
    first_bad_s: float | None = None
    checked_with: str | None = None
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["meta"] = self.meta.to_dict() if self.meta else None
        return d

    def to_error(self) -> VideoDecodeError | None:
        """The error this status stands for (None for ok/unchecked)."""
        if self.status in ("ok", "unchecked"):
            return None
        expected = self.meta.num_frames if self.meta else None
        return VideoDecodeError(
            self.message or f"{self.path} is {self.status}",
            kind=self.status,
            path=self.path,
            frames_decoded=self.decoded_frames,
            frames_expected=expected,
        )


def _checker(reader: VideoReader) -> VideoReader:
    """The reader used for a full check: PyAV for files, the reader itself otherwise."""
    if reader.meta.backend != "decord":
        return reader
    from talkit.extractors.video_pyav import PyAVReader

    return PyAVReader(Path(reader.meta.path), reader.info)  # type: ignore[attr-defined]


def probe(
    path: str | Path, *, full: bool = False, fps_for_frames: float | Fraction | None = None
) -> ProbeResult:
    """Probe a video file or frame folder; never raises for damaged or unreadable files.

    A missing path or bad options still raise ``InputError``.
    """
    from talkit.extractors.video import open_video

    try:
        reader = open_video(path, fps_for_frames=fps_for_frames)
    except VideoDecodeError as exc:
        return ProbeResult(str(path), "unreadable", None, 0, None, None, None, exc.message)
    meta = reader.meta
    if not full:
        return ProbeResult(str(path), "unchecked", meta)
    checker = _checker(reader)
    try:
        damage = checker.check()
    except VideoDecodeError as exc:  # reopening failed
        return ProbeResult(str(path), "unreadable", meta, 0, None, None, None, exc.message)
    finally:
        reader.close()
    log = checker.log
    if damage is None:
        return ProbeResult(
            str(path),
            "ok",
            meta,
            log.decoded,
            log.last_time_s,
            None,
            checker.meta.backend,
            f"all {log.decoded} frames decoded",
        )
    return ProbeResult(
        str(path),
        damage.kind,
        meta,
        log.decoded,
        log.last_time_s,
        damage.first_bad_s,
        checker.meta.backend,
        damage.message,
    )
