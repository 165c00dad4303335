"""Which videos a run extracts: from a directory, a text list or an annotation file.

``--videos`` takes one of three things, told apart by what is on disk:

- a **directory** of video files (searched recursively, hidden folders skipped; the id
  is the file stem; hidden files are recorded as rejected, not extracted);
- an **annotation file** (ActivityNet-layout JSON, THUMOS14 per-class text files, a W-TALC
  .npy set): only the videos it names are extracted, found by file stem in a video
  directory (``video_dir``, or by default ``<annotations>/videos``,
  ``<annotations>/../videos`` or the annotation's own directory). ActivityNet/HACS files
  named ``v_<id>.mp4`` match id ``<id>``. Annotation videos with no file are reported,
  not extracted;
- a **text list**: one video path per line (relative paths are relative to the list's
  directory; ``#`` starts a comment). ``PATH<TAB>ID`` gives the id explicitly.

Ids must be unique: two files with the same stem in different folders would overwrite each
other's features (a classic complaint about feature extractors), so that is an error that
names both files. An id the store cannot hold (e.g. an ActivityNet id starting with ``-``)
does not stop the run: the video is recorded as failed with the reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from talkit.errors import AnnotationError, InputError, TalkitError

VIDEO_EXTENSIONS = frozenset(
    {
        ".mp4", ".m4v", ".mkv", ".webm", ".avi", ".mov", ".mpg", ".mpeg", ".flv", ".wmv",
        ".3gp", ".ts", ".mts", ".ogv",
    }
)  # fmt: skip
SourceKind = Literal["directory", "annotations", "list"]


@dataclass(frozen=True)
class VideoItem:
    """One unit of work: a video id and the file (or frame folder) it comes from."""

    video_id: str
    path: Path


@dataclass(frozen=True)
class Rejected:
    """A video that cannot be extracted as named (recorded as a failure of the run)."""

    video_id: str
    path: Path | None
    error_type: str
    message: str


@dataclass
class Plan:
    """The videos of one run, plus what the input named but cannot be extracted."""

    source: Path
    kind: SourceKind
    items: list[VideoItem]
    missing: list[str] = field(default_factory=list)  # annotation ids with no video file
    rejected: list[Rejected] = field(default_factory=list)
    video_dir: Path | None = None

    def __len__(self) -> int:
        return len(self.items)


class DuplicateVideoIdError(InputError):
    """Two inputs map to the same video id, so their features would overwrite each other."""


def is_video_file(path: Path) -> bool:
    """By extension: what a directory scan picks up (content is checked at decode time)."""
    return path.suffix.lower() in VIDEO_EXTENSIONS and not path.name.startswith(".")


def scan_directory(directory: Path, *, hidden: bool = False) -> list[Path]:
    """Video files under ``directory``, recursively, in a stable (sorted) order.

    Hidden folders are not searched; ``hidden=True`` returns the hidden video files
    (``.x.mp4``, macOS's ``._x.mp4``) of the searched folders instead.
    """
    found: list[Path] = []
    for root, dirs, files in os.walk(directory, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(
            Path(root) / f
            for f in sorted(files)
            if Path(f).suffix.lower() in VIDEO_EXTENSIONS and f.startswith(".") == hidden
        )
    return sorted(found)


def _unique_by_id(pairs: Iterable[tuple[str, Path]], where: str) -> dict[str, Path]:
    by_id: dict[str, list[Path]] = {}
    for vid, path in pairs:
        by_id.setdefault(vid, []).append(path)
    clashes = {vid: paths for vid, paths in by_id.items() if len(paths) > 1}
    if clashes:
        shown = "; ".join(
            f"{vid}: {', '.join(str(p) for p in paths)}"
            for vid, paths in sorted(clashes.items())[:5]
        )
        more = f" (and {len(clashes) - 5} more)" if len(clashes) > 5 else ""
        raise DuplicateVideoIdError(
            f"{len(clashes)} video id(s) in {where} come from more than one file, so their "
            f"features would overwrite each other: {shown}{more}",
            hint="rename the files, or list them in a text file with explicit ids "
            "(one 'PATH<TAB>ID' per line)",
        )
    return {vid: paths[0] for vid, paths in by_id.items()}


def _check_ids(items: list[VideoItem]) -> tuple[list[VideoItem], list[Rejected]]:
    from talkit.store.spec import check_video_id

    good: list[VideoItem] = []
    bad: list[Rejected] = []
    for item in items:
        try:
            check_video_id(item.video_id)
        except TalkitError as exc:
            bad.append(Rejected(item.video_id, item.path, type(exc).__name__, str(exc)))
        else:
            good.append(item)
    return good, bad


def _is_annotation_source(path: Path) -> bool:
    from talkit.datasets.formats import detect_format

    if path.is_dir():
        try:
            detect_format(path)
        except AnnotationError:
            return False
        return True
    if path.suffix.lower() in (".json", ".npy"):
        return True
    try:
        detect_format(path)
    except AnnotationError:
        return False
    # A text file that detect_format took for ActivityNet JSON only by its first byte is
    # still JSON; a THUMOS per-class or Ambiguous file is detected by name.
    return True


def from_directory(directory: Path) -> Plan:
    """Every video file under ``directory``; the id is the file stem.

    Hidden files (``.x.mp4``) are not extracted; they are recorded as rejected, with why.
    """
    files = scan_directory(directory)
    hidden = scan_directory(directory, hidden=True)
    if not files:
        raise InputError(
            f"no video files found under {directory}"
            + (f" ({len(hidden)} hidden one(s), named '.*', are not extracted)" if hidden else ""),
            hint=f"looked for {', '.join(sorted(VIDEO_EXTENSIONS))}; frame folders go in a "
            "text list",
        )
    by_id = _unique_by_id(((p.stem, p) for p in files), str(directory))
    items, rejected = _check_ids([VideoItem(v, p) for v, p in sorted(by_id.items())])
    rejected += [
        Rejected(p.stem, p, "InputError", f"{p} is a hidden file (its name starts with '.'), "
                 "so it is not extracted (rename it to extract it, or move it out of the folder)")
        for p in hidden
    ]  # fmt: skip
    return Plan(directory, "directory", items, rejected=rejected, video_dir=directory)


def from_list(list_file: Path) -> Plan:
    """One path per line (``PATH`` or ``PATH<TAB>ID``); relative to the list's folder."""
    base = list_file.parent
    pairs: list[tuple[str, Path]] = []
    try:
        lines = list_file.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read video list {list_file}: {exc}") from exc
    missing: list[str] = []
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        text, _, vid = line.partition("\t")
        path = Path(text.strip()).expanduser()
        path = path if path.is_absolute() else base / path
        vid = vid.strip() or (path.name if path.is_dir() else path.stem)
        if not path.exists():
            missing.append(f"{list_file}:{lineno}: {path}")
            continue
        pairs.append((vid, path))
    if missing:
        shown = "; ".join(missing[:5]) + (
            f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""
        )
        raise InputError(
            f"{len(missing)} path(s) in video list {list_file} do not exist: {shown}",
            hint="fix the list; relative paths are relative to the list file's folder",
        )
    if not pairs:
        raise InputError(f"video list {list_file} names no videos", hint="one path per line")
    by_id = _unique_by_id(pairs, str(list_file))
    order = list(dict.fromkeys(v for v, _ in pairs))
    items, rejected = _check_ids([VideoItem(v, by_id[v]) for v in order])
    return Plan(list_file, "list", items, rejected=rejected)


def default_video_dirs(annotations: Path) -> list[Path]:
    """Where an annotation file's videos are looked for when no video dir is given."""
    base = annotations if annotations.is_dir() else annotations.parent
    return [base / "videos", base.parent / "videos", base]


def from_annotations(
    annotations: Path, video_dir: Path | None = None, *, subsets: Sequence[str] = ()
) -> Plan:
    """The videos an annotation file names (optionally only some subsets), matched by stem."""
    from talkit.datasets.formats import load_annotations

    dataset = load_annotations(annotations)
    if subsets:
        dataset = dataset.subset(*subsets)
    wanted = list(dataset.videos)
    if not wanted:
        raise InputError(
            f"annotation file {annotations} names no videos"
            + (f" in subset(s) {', '.join(subsets)}" if subsets else ""),
        )
    candidates = [video_dir] if video_dir is not None else default_video_dirs(annotations)
    chosen: Path | None = None
    files: dict[str, list[Path]] = {}
    for cand in candidates:
        if not cand.is_dir():
            continue
        files = {}
        for p in scan_directory(cand):
            files.setdefault(p.stem, []).append(p)
        if any(_match(vid, files) for vid in wanted):
            chosen = cand
            break
    if chosen is None:
        looked = ", ".join(str(c) for c in candidates)
        raise InputError(
            f"none of the {len(wanted)} videos named in {annotations} has a video file in {looked}",
            hint="pass --video-dir DIR (files are matched by stem: <id>.mp4 or v_<id>.mp4)",
        )
    pairs: list[tuple[str, Path]] = []
    missing: list[str] = []
    for vid in wanted:
        paths = _match(vid, files)
        if not paths:
            missing.append(vid)
        else:
            pairs.extend((vid, p) for p in paths)
    by_id = _unique_by_id(pairs, str(chosen))
    items, rejected = _check_ids([VideoItem(v, by_id[v]) for v in wanted if v in by_id])
    return Plan(annotations, "annotations", items, missing, rejected, video_dir=chosen)


def _match(video_id: str, files: dict[str, list[Path]]) -> list[Path]:
    return files.get(video_id) or files.get(f"v_{video_id}") or []


def plan_videos(
    source: str | Path, *, video_dir: str | Path | None = None, subsets: Sequence[str] = ()
) -> Plan:
    """The plan for ``--videos SOURCE``: a directory, a text list, or an annotation file.

    Every planned path is absolute: workers on other nodes have other working directories.
    """
    from talkit.datasets.bundled import resolve as resolve_bundled

    path = resolve_bundled(source).expanduser().absolute()
    video_dir = Path(video_dir).expanduser().absolute() if video_dir else None
    if not path.exists():
        raise InputError(
            f"--videos {source}: no such file or directory",
            hint="pass a folder of videos, a text list of paths, or an annotation file",
        )
    if _is_annotation_source(path):
        return from_annotations(path, video_dir, subsets=subsets)
    if video_dir is not None or subsets:
        raise InputError(
            f"--video-dir and --subset apply to annotation files; {source} is a "
            f"{'directory of videos' if path.is_dir() else 'text list'}",
        )
    return from_directory(path) if path.is_dir() else from_list(path)
