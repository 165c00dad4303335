"""Write a synthetic Dataset in every annotation format talkit reads, plus a class list.

The synthetic generators own their truth as a :class:`Dataset`; this module only lays it
out on disk:

    <dir>/gt.json                         ActivityNet JSON (THUMOS14 gt.json layout)
    <dir>/thumos/<Class>_val.txt          THUMOS14 per-class text, lines `video start end`
    <dir>/thumos/<Class>_test.txt
    <dir>/wtalc/*.npy                     W-TALC / D2-Net layout
    <dir>/classlist.txt                   one class per line, in Dataset.classes order

Writers for ActivityNet JSON and W-TALC come from :mod:`talkit.datasets` (the format
component); the per-class text files are written here when that component has no writer.
"""

from __future__ import annotations

import importlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from talkit.datasets.model import Dataset
from talkit.errors import WorkFailedError

THUMOS_SUFFIX = {"validation": "val", "val": "val", "train": "val", "test": "test"}


def _atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file + rename so a crash never leaves half a ground-truth file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _writer(name: str) -> Callable[..., object] | None:
    module = importlib.import_module("talkit.datasets")
    fn = getattr(module, name, None)
    return fn if callable(fn) else None


def write_thumos_class_files(dataset: Dataset, out_dir: Path) -> list[Path]:
    """THUMOS14 per-class files: ``<Class>_val.txt`` / ``<Class>_test.txt``.

    One file per class and per subset present (empty files included, as the official
    release has them), each line ``video_id start end`` with one decimal.
    """
    fn = _writer("write_thumos_txt") or _writer("write_thumos_class_files")
    if fn is not None:
        fn(dataset, out_dir)
        return sorted(out_dir.glob("*.txt"))
    suffixes = sorted({THUMOS_SUFFIX.get(v.subset, v.subset) for v in dataset.videos.values()})
    lines: dict[tuple[str, str], list[str]] = {
        (c, s): [] for c in dataset.classes for s in suffixes
    }
    for vid, video in dataset.videos.items():
        suffix = THUMOS_SUFFIX.get(video.subset, video.subset)
        for seg in video.annotations:
            lines[(seg.label, suffix)].append(f"{vid} {seg.start_s:.1f} {seg.end_s:.1f}")
    paths = []
    for (cls, suffix), rows in lines.items():
        path = out_dir / f"{cls}_{suffix}.txt"
        _atomic_write_text(path, "".join(r + "\n" for r in rows))
        paths.append(path)
    return sorted(paths)


def write_ground_truth(dataset: Dataset, out_dir: Path) -> dict[str, Path]:
    """Write all annotation formats; returns {format: path}. Formats whose writer the
    format component does not (yet) provide are reported by raising, never skipped."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    anet = _writer("write_activitynet_json")
    wtalc = _writer("write_wtalc")
    missing = [n for n, f in (("write_activitynet_json", anet), ("write_wtalc", wtalc)) if not f]
    if missing:
        raise WorkFailedError(
            f"cannot write synthetic ground truth: talkit.datasets has no {', '.join(missing)}",
            hint="the annotation-format component must be installed with this talkit version",
        )
    assert anet is not None and wtalc is not None
    anet(dataset, out_dir / "gt.json")
    written["activitynet_json"] = out_dir / "gt.json"
    wtalc(dataset, out_dir / "wtalc")
    written["wtalc"] = out_dir / "wtalc"
    write_thumos_class_files(dataset, out_dir / "thumos")
    written["thumos_txt"] = out_dir / "thumos"
    _atomic_write_text(out_dir / "classlist.txt", "".join(c + "\n" for c in dataset.classes))
    written["classlist"] = out_dir / "classlist.txt"
    return written
