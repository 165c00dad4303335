"""Which videos a run extracts: from a directory, a text list or an annotation file.

``--videos`` takes one of four things, told apart by what is on disk:

- a **directory** of video files (searched recursively, hidden folders skipped; the id
  is the file stem; hidden files are recorded as rejected, not extracted);
- an **object-storage prefix** ``s3://bucket/prefix/``: every video object under it
  (the id is the file stem of the key; see :mod:`talkit.pipelines.objects`);
- an **annotation file** (ActivityNet-layout JSON, THUMOS14 per-class text files, a W-TALC
  .npy set): only the videos it names are extracted, found by file stem in a video
  directory (``video_dir``, or by default ``<annotations>/videos``,
  ``<annotations>/../videos`` or the annotation's own directory). ActivityNet/HACS files
  named ``v_<id>.mp4`` match id ``<id>``. Annotation videos with no file are reported,
  not extracted. ``video_dir`` may be an ``s3://`` prefix;
- a **text list**: one video path or ``s3://`` URL per line (relative paths are relative
  to the list's directory; ``#`` starts a comment). ``PATH<TAB>ID`` gives the id
  explicitly.

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
from talkit.s3 import is_s3_url

VIDEO_EXTENSIONS = frozenset(
    {
        ".mp4", ".m4v", ".mkv", ".webm", ".avi", ".mov", ".mpg", ".mpeg", ".flv", ".wmv",
        ".3gp", ".ts", ".mts", ".ogv",
    }
)  # fmt: skip
SourceKind = Literal["directory", "prefix", "annotations", "list"]


@dataclass(frozen=True)
class VideoItem:
    """One unit of work: a video id and the file (or frame folder) it comes from.

    ``path`` is a local path, or an object URL (``s3://...``, a str); objects carry the
    size and ETag they were listed with, which resume compares with the store's record.
    """

    video_id: str
    path: Path | str
    size: int | None = None
    etag: str | None = None

    @property
    def is_object(self) -> bool:
        return isinstance(self.path, str)


@dataclass(frozen=True)
class Rejected:
    """A video that cannot be extracted as named (recorded as a failure of the run)."""

    video_id: str
    path: Path | str | None
    error_type: str
    message: str


@dataclass
class Plan:
    """The videos of one run, plus what the input named but cannot be extracted."""

    source: Path | str
    kind: SourceKind
    items: list[VideoItem]
    missing: list[str] = field(default_factory=list)  # annotation ids with no video file
    rejected: list[Rejected] = field(default_factory=list)
    video_dir: Path | str | None = None

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


def _unique_by_id(pairs: Iterable[tuple[str, Path | str]], where: str) -> dict[str, Path | str]:
    by_id: dict[str, list[Path | str]] = {}
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


ObjectMeta = dict[str, tuple[int, str]]  # object URL -> (size, etag) as listed


def _item(video_id: str, path: Path | str, objects: ObjectMeta) -> VideoItem:
    if isinstance(path, str):
        size, etag = objects[path]
        return VideoItem(video_id, path, size, etag)
    return VideoItem(video_id, path)


def _no_videos_hint() -> str:
    return f"looked for {', '.join(sorted(VIDEO_EXTENSIONS))}; frame folders go in a text list"


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
            hint=_no_videos_hint(),
        )
    by_id = _unique_by_id(((p.stem, p) for p in files), str(directory))
    items, rejected = _check_ids([VideoItem(v, p) for v, p in sorted(by_id.items())])
    rejected += [
        Rejected(p.stem, p, "InputError", f"{p} is a hidden file (its name starts with '.'), "
                 "so it is not extracted (rename it to extract it, or move it out of the folder)")
        for p in hidden
    ]  # fmt: skip
    return Plan(directory, "directory", items, rejected=rejected, video_dir=directory)


def _scan_prefix(url: str) -> tuple[list[str], ObjectMeta]:
    from talkit.pipelines.objects import list_video_objects

    listed = list_video_objects(url, VIDEO_EXTENSIONS)
    return [u for u, _, _ in listed], {u: (size, etag) for u, size, etag in listed}


def from_prefix(url: str) -> Plan:
    """Every video object under the ``s3://`` prefix ``url``; the id is the key's stem."""
    from talkit.pipelines.objects import object_stem

    urls, objects = _scan_prefix(url)
    if not urls:
        raise InputError(f"no video objects found under {url}", hint=_no_videos_hint())
    by_id = _unique_by_id(((object_stem(u), u) for u in urls), url)
    items, rejected = _check_ids([_item(v, p, objects) for v, p in sorted(by_id.items())])
    return Plan(url, "prefix", items, rejected=rejected, video_dir=url)


def from_list(list_file: Path) -> Plan:
    """One path or URL per line (``PATH`` or ``PATH<TAB>ID``); relative to the list's folder."""
    from talkit.pipelines.objects import head_objects, object_stem

    base = list_file.parent
    pairs: list[tuple[str, Path | str]] = []
    try:
        lines = list_file.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read video list {list_file}: {exc}") from exc
    missing: list[str] = []
    urls: dict[str, str] = {}  # url -> "file:line", to report the missing ones
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        text, _, vid = line.partition("\t")
        text = text.strip()
        if is_s3_url(text):
            urls.setdefault(text, f"{list_file}:{lineno}")
            pairs.append((vid.strip() or object_stem(text), text))
            continue
        path = Path(text).expanduser()
        path = path if path.is_absolute() else base / path
        vid = vid.strip() or (path.name if path.is_dir() else path.stem)
        if not path.exists():
            missing.append(f"{list_file}:{lineno}: {path}")
            continue
        pairs.append((vid, path))
    objects: ObjectMeta = {}
    if urls:
        for url, found in head_objects(list(urls)).items():
            if found is None:
                missing.append(f"{urls[url]}: {url}")
            else:
                objects[url] = found
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
    items, rejected = _check_ids([_item(v, by_id[v], objects) for v in order])
    return Plan(list_file, "list", items, rejected=rejected)


def default_video_dirs(annotations: Path) -> list[Path]:
    """Where an annotation file's videos are looked for when no video dir is given."""
    base = annotations if annotations.is_dir() else annotations.parent
    return [base / "videos", base.parent / "videos", base]


def _video_files(folder: Path | str) -> tuple[dict[str, list[Path | str]], ObjectMeta] | None:
    """Video files (or objects) under a local folder or ``s3://`` prefix, by stem."""
    from talkit.pipelines.objects import object_stem

    files: dict[str, list[Path | str]] = {}
    if isinstance(folder, str):
        urls, objects = _scan_prefix(folder)
        for u in urls:
            files.setdefault(object_stem(u), []).append(u)
        return files, objects
    if not folder.is_dir():
        return None
    for p in scan_directory(folder):
        files.setdefault(p.stem, []).append(p)
    return files, {}


def from_annotations(
    annotations: Path, video_dir: Path | str | None = None, *, subsets: Sequence[str] = ()
) -> Plan:
    """The videos an annotation file names (optionally only some subsets), matched by stem.

    ``video_dir`` is a local folder or an ``s3://`` prefix.
    """
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
    candidates: list[Path | str] = (
        [video_dir] if video_dir is not None else list(default_video_dirs(annotations))
    )
    chosen: Path | str | None = None
    files: dict[str, list[Path | str]] = {}
    objects: ObjectMeta = {}
    for cand in candidates:
        scanned = _video_files(cand)
        if scanned is None:
            continue
        files, objects = scanned
        if any(_match(vid, files) for vid in wanted):
            chosen = cand
            break
    if chosen is None:
        looked = ", ".join(str(c) for c in candidates)
        raise InputError(
            f"none of the {len(wanted)} videos named in {annotations} has a video file in {looked}",
            hint="pass --video-dir DIR (files are matched by stem: <id>.mp4 or v_<id>.mp4)",
        )
    pairs: list[tuple[str, Path | str]] = []
    missing: list[str] = []
    for vid in wanted:
        paths = _match(vid, files)
        if not paths:
            missing.append(vid)
        else:
            pairs.extend((vid, p) for p in paths)
    by_id = _unique_by_id(pairs, str(chosen))
    items, rejected = _check_ids([_item(v, by_id[v], objects) for v in wanted if v in by_id])
    return Plan(annotations, "annotations", items, missing, rejected, video_dir=chosen)


def _match(video_id: str, files: dict[str, list[Path | str]]) -> list[Path | str]:
    return files.get(video_id) or files.get(f"v_{video_id}") or []


def plan_videos(
    source: str | Path, *, video_dir: str | Path | None = None, subsets: Sequence[str] = ()
) -> Plan:
    """The plan for ``--videos SOURCE``: a folder or ``s3://`` prefix, a list, or annotations.

    Every planned path is absolute: workers on other nodes have other working directories.
    """
    from talkit.datasets.bundled import resolve as resolve_bundled

    if is_s3_url(str(source)):
        if video_dir is not None or subsets:
            raise InputError(
                f"--video-dir and --subset apply to annotation files; {source} is a prefix "
                "of video objects",
            )
        return from_prefix(str(source))
    path = resolve_bundled(source).expanduser().absolute()
    if not path.exists():
        raise InputError(
            f"--videos {source}: no such file or directory",
            hint="pass a folder of videos, an s3:// prefix, a text list of paths, or an "
            "annotation file",
        )
    if _is_annotation_source(path):
        where: Path | str | None = None
        if video_dir is not None:
            where = (
                str(video_dir)
                if is_s3_url(str(video_dir))
                else Path(video_dir).expanduser().absolute()
            )
        return from_annotations(path, where, subsets=subsets)
    if video_dir is not None or subsets:
        raise InputError(
            f"--video-dir and --subset apply to annotation files; {source} is a "
            f"{'directory of videos' if path.is_dir() else 'text list'}",
        )
    return from_directory(path) if path.is_dir() else from_list(path)
