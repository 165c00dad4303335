"""Shared last step of every reader: check the parsed records, then build one Dataset.

Readers parse their layout into plain records (dicts) and hand them here, so the defects
of real files are detected the same way for every format:

- ``start_not_before_end``: a segment with start >= end (ActivityNet 1.2 has three);
- ``negative_time``: a segment that starts or ends before 0 s, or a negative video
  duration (times count from the start of the video);
- ``segment_beyond_duration``: a segment ending more than ``DURATION_TOLERANCE_S`` past
  the video's duration (ActivityNet rounds durations to 0.01 s while segment ends carry
  more digits, so overshoots of a few milliseconds are rounding, not defects);
- ``unknown_label``: a label outside the class list the file itself declares;
- ``duplicate_video``: the same video id twice (the first entry is kept).

Problems are collected; ``strict=True`` raises :class:`AnnotationError` instead. The
Dataset is validated by pydantic in one call over the whole record tree, which is much
faster than building one model object per segment from Python.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from talkit.datasets.model import CanonicalSplit, Dataset, Problem
from talkit.errors import AnnotationError

DURATION_TOLERANCE_S = 0.05
MAX_PROBLEMS_IN_MESSAGE = 3


def parse_time(value: Any) -> float | None:
    """A time in seconds from a JSON/text value (number or numeric string), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        out = float(value)
    elif isinstance(value, str):
        try:
            out = float(value)
        except ValueError:
            return None
    else:
        try:  # numpy scalars from W-TALC files
            out = float(value)
        except (TypeError, ValueError):
            return None
    return out if math.isfinite(out) else None


def parse_segment(value: Any) -> tuple[float, float] | None:
    """``[start, end]`` as two finite floats, or None when it is not two numbers."""
    if type(value) is list and len(value) == 2:  # fast path: JSON numbers
        start, end = value
        if type(start) in (float, int) and type(end) in (float, int):
            s, e = float(start), float(end)
            return (s, e) if math.isfinite(s) and math.isfinite(e) else None
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        return None
    try:
        if len(value) != 2:
            return None
        start, end = value[0], value[1]
    except (TypeError, KeyError, IndexError):
        return None
    s, e = parse_time(start), parse_time(end)
    if s is None or e is None:
        return None
    return s, e


def new_video(
    video_id: str,
    subset: str,
    *,
    duration_s: float | None = None,
    fps: float | None = None,
    url: str | None = None,
) -> dict[str, Any]:
    """A plain video record in the shape :class:`talkit.datasets.model.Video` validates."""
    return {
        "id": video_id,
        "subset": subset,
        "duration_s": duration_s,
        "fps": fps,
        "url": url,
        "annotations": [],
        "ambiguous": [],
    }


def check_records(
    videos: Mapping[str, dict[str, Any]],
    known_classes: Iterable[str] | None,
    problems: list[Problem],
) -> None:
    """Append the per-segment problems of ``videos`` to ``problems``."""
    known = set(known_classes) if known_classes is not None else None
    unknown_seen: set[str] = set()
    for vid, video in videos.items():
        duration = video.get("duration_s")
        if duration is not None and duration < 0:
            problems.append(
                Problem(
                    kind="negative_time",
                    video_id=vid,
                    message=f"video {vid}: duration {duration:g} s is negative",
                )
            )
        for seg in video["annotations"]:
            start, end, label = seg["start_s"], seg["end_s"], seg["label"]
            if start < 0 or end < 0:
                problems.append(
                    Problem(
                        kind="negative_time",
                        video_id=vid,
                        message=f"video {vid}: segment [{start:g}, {end:g}] of {label!r} "
                        "has a time before 0 s",
                    )
                )
            if start >= end:
                problems.append(
                    Problem(
                        kind="start_not_before_end",
                        video_id=vid,
                        message=f"video {vid}: segment [{start:g}, {end:g}] of {label!r} "
                        "has start >= end",
                    )
                )
            if duration is not None and duration >= 0 and end > duration + DURATION_TOLERANCE_S:
                problems.append(
                    Problem(
                        kind="segment_beyond_duration",
                        video_id=vid,
                        message=f"video {vid}: segment [{start:g}, {end:g}] of {label!r} "
                        f"ends after the video's duration {duration:g} s",
                    )
                )
            if known is not None and label not in known:
                problems.append(
                    Problem(
                        kind="unknown_label",
                        video_id=vid,
                        message=f"video {vid}: label {label!r} is not in the file's class list",
                    )
                )
                unknown_seen.add(label)


def class_list(
    videos: Mapping[str, dict[str, Any]], declared: Iterable[str] | None, *, keep_order: bool
) -> list[str]:
    """The documented class order.

    No declared list: the seen labels, sorted by name. Otherwise the declared list, in its
    own order when ``keep_order`` (W-TALC classlist.npy, talkit's own JSON), else sorted;
    labels seen but not declared (reported as ``unknown_label``) are appended after it,
    sorted, so every annotation has a class index and the declared indices never shift.
    """
    seen = {seg["label"] for v in videos.values() for seg in v["annotations"]}
    if declared is None:
        return sorted(seen)
    declared = list(dict.fromkeys(declared))
    if not keep_order:
        declared.sort()
    return declared + sorted(seen - set(declared))


def raise_if_strict(path: Path | str, problems: list[Problem], strict: bool) -> None:
    """In strict mode, turn collected problems into one AnnotationError."""
    if not strict or not problems:
        return
    shown = "; ".join(p.message for p in problems[:MAX_PROBLEMS_IN_MESSAGE])
    more = len(problems) - MAX_PROBLEMS_IN_MESSAGE
    tail = f"; and {more} more" if more > 0 else ""
    raise AnnotationError(
        f"{path}: {len(problems)} annotation problem(s) in strict mode: {shown}{tail}",
        hint=f"fix the file, or drop --strict and run `talkit datasets inspect {path}` "
        "to list every problem",
    )


def build_dataset(
    path: Path | str,
    *,
    name: str,
    source_format: str,
    videos: dict[str, dict[str, Any]],
    problems: list[Problem],
    subset_canonical: Mapping[str, CanonicalSplit],
    declared_classes: Iterable[str] | None,
    keep_class_order: bool,
    strict: bool,
    eval_preset: str | None = None,
) -> Dataset:
    """Check ``videos``, decide the class list, and validate the Dataset in one call."""
    declared = list(declared_classes) if declared_classes is not None else None
    check_records(videos, declared, problems)
    raise_if_strict(path, problems, strict)
    classes = class_list(videos, declared, keep_order=keep_class_order)
    return Dataset.model_validate(
        {
            "name": name,
            "source_format": source_format,
            "classes": classes,
            "videos": videos,
            "problems": problems,
            "subset_canonical": dict(subset_canonical),
            "eval_preset": eval_preset,
        }
    )
