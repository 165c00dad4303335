"""THUMOS14's official per-class text files and its Ambiguous list.

The official release ships one file per class and subset, ``<Class>_val.txt`` and
``<Class>_test.txt``, each line ``video_validation_0000051 67.5 75.9`` (id, start s,
end s), plus ``Ambiguous_val.txt`` / ``Ambiguous_test.txt`` in the same line format:
intervals that are neither action nor background.

Subsets are kept as the file names write them, ``val`` and ``test``; canonical roles
follow THUMOS14 (val -> train, test -> test). Classes are the class names from the file
names, sorted (a class whose file is empty still counts). Inside a directory the
Ambiguous files become each video's ``ambiguous`` intervals, never annotations; loaded on
its own, an Ambiguous file is a one-class set labelled ``Ambiguous`` so it can be
inspected like any other.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from talkit.datasets.formats.assemble import build_dataset, new_video, parse_time
from talkit.datasets.model import THUMOS14_SUBSET_CANONICAL, Dataset, Problem
from talkit.errors import AnnotationError

FORMAT = "thumos14_txt"
AMBIGUOUS_FORMAT = "thumos14_ambiguous"
AMBIGUOUS_LABEL = "Ambiguous"
CLASS_FILE = re.compile(r"(?P<label>.+)_(?P<subset>val|test)\.txt")
_LINE_HINT = "each line must be `video_id start_seconds end_seconds`"


def _read_lines(path: Path) -> list[tuple[str, float, float]]:
    """(video_id, start, end) per non-blank line; a malformed line is an AnnotationError."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise AnnotationError(
            f"{path} is not UTF-8 text (byte {exc.start})", hint=_LINE_HINT
        ) from None
    except OSError as exc:
        raise AnnotationError(f"cannot read {path}: {exc.strerror or exc}") from None
    rows: list[tuple[str, float, float]] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        start = parse_time(fields[1]) if len(fields) == 3 else None
        end = parse_time(fields[2]) if len(fields) == 3 else None
        if start is None or end is None:
            raise AnnotationError(
                f"{path}, line {lineno}: {line.strip()!r} is not `video_id start end` "
                "with two numbers",
                hint=_LINE_HINT,
            )
        rows.append((fields[0], start, end))
    return rows


def load_ambiguous(path: str | Path) -> list[tuple[str, float, float]]:
    """The (video_id, start_s, end_s) intervals of a THUMOS14 ``Ambiguous_*.txt`` file."""
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"{path} does not exist or is not a file")
    return _read_lines(path)


def _subset_of(path: Path) -> str:
    match = CLASS_FILE.fullmatch(path.name)
    return match.group("subset") if match else "unknown"


def is_ambiguous_file(path: Path) -> bool:
    return path.name.lower().startswith("ambiguous") and path.suffix == ".txt"


def class_files(directory: Path) -> list[Path]:
    """The ``<Class>_val.txt`` / ``<Class>_test.txt`` files of ``directory``, sorted."""
    return sorted(
        p
        for p in directory.iterdir()
        if p.is_file() and CLASS_FILE.fullmatch(p.name) and not is_ambiguous_file(p)
    )


def read_class_files(
    files: Iterable[Path], *, source: Path, strict: bool = False, ambiguous: Iterable[Path] = ()
) -> Dataset:
    """Parse per-class text files (and optional Ambiguous files) into one Dataset."""
    videos: dict[str, dict[str, Any]] = {}
    problems: list[Problem] = []
    classes: list[str] = []
    conflicts: set[str] = set()
    for path in sorted(files):
        match = CLASS_FILE.fullmatch(path.name)
        if match is None:
            raise AnnotationError(
                f"{path.name} is not named <Class>_val.txt or <Class>_test.txt",
                hint="rename it, or pass the directory that holds the per-class files",
            )
        label, subset = match.group("label"), match.group("subset")
        classes.append(label)
        for vid, start, end in _read_lines(path):
            video = videos.get(vid)
            if video is None:
                video = videos[vid] = new_video(vid, subset)
            elif video["subset"] != subset and vid not in conflicts:
                conflicts.add(vid)
                problems.append(
                    Problem(
                        kind="other",
                        video_id=vid,
                        message=f"video {vid} is listed in both {video['subset']!r} and "
                        f"{subset!r} files; kept in {video['subset']!r}",
                    )
                )
            video["annotations"].append({"label": label, "start_s": start, "end_s": end})
    attach_ambiguous(videos, ambiguous, problems)
    return build_dataset(
        source,
        name="thumos14",
        eval_preset="thumos14",
        source_format=FORMAT,
        videos=videos,
        problems=problems,
        subset_canonical=THUMOS14_SUBSET_CANONICAL,
        declared_classes=sorted(set(classes)),
        keep_class_order=False,
        strict=strict,
    )


def attach_ambiguous(
    videos: dict[str, dict[str, Any]], files: Iterable[Path], problems: list[Problem]
) -> None:
    """Add Ambiguous intervals to the videos they name; report ids not in the set."""
    for path in files:
        missing: dict[str, int] = {}
        for vid, start, end in _read_lines(path):
            if vid in videos:
                videos[vid]["ambiguous"].append((start, end))
            else:
                missing[vid] = missing.get(vid, 0) + 1
        problems.extend(
            Problem(
                kind="other",
                video_id=vid,
                message=f"{path.name}: {n} ambiguous interval(s) for video {vid}, "
                "which is not in this annotation set (ignored)",
            )
            for vid, n in missing.items()
        )


def read_ambiguous_file(path: Path, *, strict: bool = False) -> Dataset:
    """An Ambiguous file on its own: a one-class set labelled ``Ambiguous``."""
    subset = _subset_of(path)
    videos: dict[str, dict[str, Any]] = {}
    for vid, start, end in load_ambiguous(path):
        video = videos.setdefault(vid, new_video(vid, subset))
        video["annotations"].append({"label": AMBIGUOUS_LABEL, "start_s": start, "end_s": end})
    return build_dataset(
        path,
        name="thumos14",
        eval_preset="thumos14",
        source_format=AMBIGUOUS_FORMAT,
        videos=videos,
        problems=[],
        subset_canonical=THUMOS14_SUBSET_CANONICAL,
        declared_classes=[AMBIGUOUS_LABEL],
        keep_class_order=True,
        strict=strict,
    )
