"""Damage detection: compare what was decoded with what the container claims.

Why: decoders are quiet about damage. PyAV decodes the first half of a truncated MP4 and
simply stops; H.264 conceals broken slices and carries on. An extractor that trusts
them writes features for half a video and calls it done. Every decode in talkit counts
frames and timestamps and compares them with the container's claims, then either raises
a typed :class:`~talkit.errors.VideoDecodeError` or, when asked to tolerate damage,
keeps the decodable prefix and records a :class:`Damage` report.

Status, as ``talkit probe --full`` prints it:

- ``ok``: every claimed frame decoded, no decoder errors.
- ``truncated``: decoding stops well before the claimed end (data cut off).
- ``corrupt``: decoder errors or missing frames, but decoding reaches the end.
- ``unreadable``: the file cannot be opened, has no video stream, or no frame decodes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from talkit.errors import VideoDecodeError

Status = Literal["ok", "truncated", "corrupt", "unreadable"]


def damage_hint(path: str) -> str:
    """What a user can do about a damaged file, from any command that met it.

    (From Python, ``extract_video(..., tolerate_damage=True)`` and
    ``iter_frames(tolerate_damage=True)`` keep the decodable prefix instead; the
    command-line tools do not, so the hint does not offer it.)
    """
    return (
        f"`talkit probe --full {path}` shows where it breaks; re-download the file, or "
        "re-encode it (e.g. `ffmpeg -i IN -c:v libx264 OUT.mp4`) and point talkit at the copy"
    )


@dataclass(frozen=True)
class Damage:
    """What went wrong while decoding one video (times in s from the first frame)."""

    kind: Literal["truncated", "corrupt", "unreadable"]
    path: str
    frames_decoded: int
    frames_expected: int
    frames_kept: int
    first_bad_s: float | None
    message: str

    def to_error(self) -> VideoDecodeError:
        return VideoDecodeError(
            self.message,
            kind=self.kind,
            path=self.path,
            frames_decoded=self.frames_decoded,
            frames_expected=self.frames_expected,
            hint=damage_hint(self.path),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DecodeLog:
    """What a backend observed while decoding; filled in as frames come out."""

    decoded: int = 0  # frames the decoder produced, including those after damage
    kept: int = 0  # frames handed on (the undamaged prefix)
    first_bad_s: float | None = None  # earliest timestamp known to be damaged
    errors: int = 0  # packets that failed to decode, frames flagged corrupt
    first_error: str = ""
    last_time_s: float | None = None  # timestamp of the last decoded frame
    last_end_s: float | None = None  # end (timestamp + duration) of the last decoded frame
    stopped_early: bool = False  # the backend could not go on (decord after an error)
    discarded: int = 0  # frames the container itself marks as not shown (MP4 edit lists)

    def note_error(self, at_s: float | None, what: str) -> None:
        self.errors += 1
        if not self.first_error:
            self.first_error = what
        if at_s is not None and (self.first_bad_s is None or at_s < self.first_bad_s):
            self.first_bad_s = at_s


def classify(
    log: DecodeLog,
    *,
    path: str,
    expected: int,
    expected_is_estimate: bool,
    claimed_end_s: float,
    period_s: float,
) -> Damage | None:
    """Compare a finished decode with the container's claims; None means undamaged.

    Frames an MP4 edit list marks as discarded (e.g. after a stream-copy cut) are not
    expected. When the container gives no frame count (WebM, MKV), the count is an
    estimate from its duration, which may include a longer audio track, so only a gap of
    more than a second counts as truncation.
    """
    expected = max(0, expected - log.discarded)
    if log.decoded == 0:
        return Damage(
            "unreadable",
            path,
            0,
            expected,
            0,
            0.0,
            f"{path}: no frame could be decoded (container claims {expected} frames)"
            + (f"; decoder said: {log.first_error}" if log.first_error else ""),
        )
    last_end = log.last_end_s if log.last_end_s is not None else 0.0
    # Decoding "reached the end" if it got within two frame periods of the claimed end.
    slack = 2 * period_s if period_s > 0 else 0.1
    if expected_is_estimate:
        slack = max(slack, 1.0)
    reached_end = last_end >= claimed_end_s - slack
    short = log.decoded < expected and not (expected_is_estimate and reached_end)
    if log.errors == 0 and not short and not log.stopped_early:
        return None
    if log.errors and reached_end and not log.stopped_early:
        kind: Literal["truncated", "corrupt"] = "corrupt"
        what = f"decoder errors in the middle ({log.errors}: {log.first_error})"
    elif log.stopped_early:
        kind, what = "corrupt", f"the decoder failed mid-stream ({log.first_error})"
    elif reached_end:
        kind, what = "corrupt", "frames are missing inside the video"
    else:
        kind = "truncated"
        what = f"decoding stops at {last_end:.2f} s of the claimed {claimed_end_s:.2f} s"
        if log.errors:
            what += f" ({log.first_error})"
    first_bad = log.first_bad_s if log.first_bad_s is not None else last_end
    return Damage(
        kind,
        path,
        log.decoded,
        expected,
        log.kept,
        first_bad,
        f"{path} is {kind}: {what}; decoded {log.decoded} of {expected} frames "
        f"{'(estimated) ' if expected_is_estimate else ''}the container claims, "
        f"first bad timestamp {first_bad:.3f} s",
    )
