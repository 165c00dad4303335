"""Find which annotation format a path holds, and load it.

Detection looks only at names and the first bytes, never at the whole file:

- a directory with ``videoname.npy`` and ``segments.npy``: the W-TALC set;
- a directory with ``<Class>_val.txt`` / ``<Class>_test.txt`` files: THUMOS14 per-class
  text files (its ``Ambiguous_*.txt`` become ambiguous intervals);
- a file named ``Ambiguous*.txt``: THUMOS14's Ambiguous list;
- a file named ``<Class>_val.txt`` / ``<Class>_test.txt``: one per-class file;
- any other file whose first non-blank byte is ``{``: the ActivityNet JSON layout.

``bundled:NAME`` names one of the ground truths shipped with talkit
(:mod:`talkit.datasets.bundled`) wherever a path is accepted.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from talkit.datasets.bundled import resolve as resolve_bundled
from talkit.datasets.formats import FORMATS, activitynet, thumos_text, wtalc
from talkit.datasets.model import Dataset
from talkit.errors import AnnotationError

_EXPECTED = (
    "expected an ActivityNet-layout JSON file, a THUMOS14 per-class text file or Ambiguous "
    "list, or a directory holding a W-TALC .npy set (videoname.npy, segments.npy, ...) or "
    "per-class files (<Class>_val.txt / <Class>_test.txt)"
)


def _first_byte(path: Path) -> bytes:
    with path.open("rb") as fh:
        head = fh.read(4096)
    return head.lstrip()[:1]


def detect_format(path: str | Path) -> str:
    """One of :data:`FORMATS` for ``path``; AnnotationError when nothing fits."""
    path = resolve_bundled(path)
    if not path.exists():
        raise AnnotationError(f"{path} does not exist", hint="check the annotation path")
    if path.is_dir():
        if wtalc.is_wtalc_dir(path):
            return "wtalc"
        if thumos_text.class_files(path):
            return "thumos_txt"
        raise AnnotationError(f"{path}: no recognisable annotation format", hint=_EXPECTED)
    if path.suffix == ".txt" and thumos_text.is_ambiguous_file(path):
        return "ambiguous"
    if thumos_text.CLASS_FILE.fullmatch(path.name):
        return "thumos_txt"
    try:
        first = _first_byte(path)
    except OSError as exc:
        raise AnnotationError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not first:
        raise AnnotationError(
            f"{path} is empty", hint="re-download or regenerate the annotation file"
        )
    if first == b"{" or path.suffix.lower() == ".json":
        return "activitynet"
    if path.suffix == ".npy":
        raise AnnotationError(
            f"{path} is a single .npy file",
            hint="pass the directory that holds the whole W-TALC set",
        )
    raise AnnotationError(f"{path}: no recognisable annotation format", hint=_EXPECTED)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while building a large tree of new objects.

    Parsing HACS (50k videos, 140k segments) creates only acyclic objects, yet each
    generation threshold crossing rescans the growing heap; pausing cuts load time ~4x.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def load_annotations(
    path: str | Path, *, strict: bool = False, format: str | None = None
) -> Dataset:
    """Parse any supported annotation file or directory into one :class:`Dataset`.

    ``format`` skips detection (one of :data:`FORMATS`). Real-file defects are collected in
    ``Dataset.problems``; ``strict=True`` raises :class:`AnnotationError` on the first
    batch of them instead. Malformed input (bad JSON, a segment that is not two numbers,
    an empty file, an unknown layout) always raises :class:`AnnotationError` (exit 2).
    """
    path = resolve_bundled(path)
    with _gc_paused():
        return _load(path, strict=strict, format=format)


def _load(path: Path, *, strict: bool, format: str | None) -> Dataset:
    kind = format or detect_format(path)
    if kind not in FORMATS:
        raise AnnotationError(
            f"unknown annotation format {kind!r}", hint=f"use one of {', '.join(FORMATS)}"
        )
    if not path.exists():
        raise AnnotationError(f"{path} does not exist", hint="check the annotation path")
    if kind == "activitynet":
        if path.is_dir():
            raise AnnotationError(f"{path} is a directory, not an ActivityNet JSON file")
        return activitynet.read_activitynet_json(path, strict=strict)
    if kind == "wtalc":
        if not path.is_dir():
            raise AnnotationError(
                f"{path} is not a directory", hint="pass the directory of the W-TALC .npy set"
            )
        return wtalc.read_wtalc_dir(path, strict=strict)
    if kind == "ambiguous":
        return thumos_text.read_ambiguous_file(path, strict=strict)
    if path.is_dir():
        files = thumos_text.class_files(path)
        if not files:
            raise AnnotationError(
                f"{path} holds no <Class>_val.txt / <Class>_test.txt files", hint=_EXPECTED
            )
        ambiguous = sorted(p for p in path.glob("*.txt") if thumos_text.is_ambiguous_file(p))
        return thumos_text.read_class_files(files, source=path, strict=strict, ambiguous=ambiguous)
    return thumos_text.read_class_files([path], source=path, strict=strict)
