"""The W-TALC ``.npy`` annotation set (W-TALC, D2-Net and their successors).

A directory of parallel arrays, one entry per video, in the same order:

=================  ==============================================================
``videoname.npy``  bytes ids, e.g. ``b"video_validation_0000051"``
``subset.npy``     bytes subset, e.g. ``b"validation"`` / ``b"test"``
``segments.npy``   object: per video a list of ``[start_s, end_s]``
``labels.npy``     object: per video a list of labels, one per segment
``classlist.npy``  bytes class names: the class order used by the features' labels
``duration.npy``   (N, 1) float seconds (optional)
``original_fps``   (N,) float, the video's native fps (optional) -> ``Video.fps``
``labels_all``     object: per video its distinct labels (optional; written for legacy)
=================  ==============================================================

``Ambiguous_test.txt`` next to them becomes the videos' ``ambiguous`` intervals.
Subsets are kept as written (bytes decoded). Canonical roles: THUMOS14-style
(validation -> train, test -> test) unless a ``training`` subset exists, in which case the
ActivityNet roles apply (training -> train, validation -> val). Class order: classlist.npy.
Every ``.npy`` is read with :func:`load_wtalc_npy`, never ``np.load(allow_pickle=True)``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from talkit.datasets.formats.assemble import build_dataset, new_video, parse_segment, parse_time
from talkit.datasets.formats.safe_npy import load_wtalc_npy
from talkit.datasets.formats.thumos_text import attach_ambiguous, is_ambiguous_file
from talkit.datasets.model import (
    ACTIVITYNET_SUBSET_CANONICAL,
    THUMOS14_SUBSET_CANONICAL,
    Dataset,
    Problem,
)
from talkit.errors import AnnotationError

FORMAT = "wtalc_npy"
REQUIRED = ("videoname", "subset", "segments", "labels", "classlist")
MARKERS = ("videoname.npy", "segments.npy")


def is_wtalc_dir(directory: Path) -> bool:
    return all((directory / name).is_file() for name in MARKERS)


def _text(value: Any) -> str:
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8")
    return str(value)


def _per_video(array: np.ndarray, n: int, name: str, directory: Path) -> np.ndarray:
    flat = array.reshape(len(array), -1)[:, 0] if array.ndim == 2 else array
    if flat.ndim != 1 or len(flat) != n:
        raise AnnotationError(
            f"{directory / (name + '.npy')} has shape {array.shape}, but videoname.npy lists "
            f"{n} videos",
            hint="the W-TALC arrays must be parallel, one entry per video",
        )
    return flat


def read_wtalc_dir(directory: Path, *, strict: bool = False) -> Dataset:
    """Parse a W-TALC annotation directory into a :class:`Dataset`."""
    missing = [f"{n}.npy" for n in REQUIRED if not (directory / f"{n}.npy").is_file()]
    if missing:
        raise AnnotationError(
            f"{directory} looks like a W-TALC set but lacks {', '.join(missing)}",
            hint="copy the complete set of W-TALC .npy files into the directory",
        )
    names = load_wtalc_npy(directory / "videoname.npy")
    n = len(names)
    arrays = {"videoname": names}
    for name in ("subset", "segments", "labels", "duration", "original_fps"):
        if (directory / f"{name}.npy").is_file():
            arrays[name] = _per_video(load_wtalc_npy(directory / f"{name}.npy"), n, name, directory)
    classlist = [_text(c) for c in load_wtalc_npy(directory / "classlist.npy").reshape(-1)]

    problems: list[Problem] = []
    videos: dict[str, dict[str, Any]] = {}
    durations = arrays.get("duration")
    fpss = arrays.get("original_fps")
    for i in range(n):
        vid = _text(names[i])
        duration = parse_time(durations[i]) if durations is not None else None
        fps = parse_time(fpss[i]) if fpss is not None else None
        video = new_video(vid, _text(arrays["subset"][i]), duration_s=duration, fps=fps)
        _fill_segments(video, arrays["segments"][i], arrays["labels"][i], directory)
        if vid in videos:
            problems.append(
                Problem(
                    kind="duplicate_video",
                    video_id=vid,
                    message=f"video {vid} appears more than once in videoname.npy (entry {i}); "
                    "the first entry is kept",
                )
            )
            continue
        videos[vid] = video

    ambiguous = sorted(p for p in directory.glob("*.txt") if is_ambiguous_file(p))
    attach_ambiguous(videos, ambiguous, problems)
    subsets = {v["subset"] for v in videos.values()}
    canonical = ACTIVITYNET_SUBSET_CANONICAL if "training" in subsets else THUMOS14_SUBSET_CANONICAL
    thumos = bool(videos) and all(v.startswith("video_") for v in videos)
    return build_dataset(
        directory,
        name="thumos14" if thumos else directory.name,
        eval_preset="thumos14" if thumos else None,
        source_format=FORMAT,
        videos=videos,
        problems=problems,
        subset_canonical=canonical,
        declared_classes=classlist,
        keep_class_order=True,
        strict=strict,
    )


def _fill_segments(video: dict[str, Any], segments: Any, labels: Any, directory: Path) -> None:
    vid = video["id"]
    segments = [] if segments is None else list(segments)
    labels = [] if labels is None else list(labels)
    if len(segments) != len(labels):
        raise AnnotationError(
            f"{directory}: video {vid} has {len(segments)} segments but {len(labels)} labels",
            hint="segments.npy and labels.npy must hold one label per segment",
        )
    out = video["annotations"]
    for j, (seg, label) in enumerate(zip(segments, labels, strict=True)):
        parsed = parse_segment(seg)
        if parsed is None:
            raise AnnotationError(
                f"{directory / 'segments.npy'}: video {vid} segment {j} is {seg!r}, "
                "which is not two numbers",
                hint="each segment must be [start_seconds, end_seconds]",
            )
        out.append({"label": _text(label), "start_s": parsed[0], "end_s": parsed[1]})


def _object_array(items: list[Any]) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = item
    return out


def _bytes_array(items: list[str]) -> np.ndarray:
    encoded = [s.encode("utf-8") for s in items]
    return np.array(encoded, dtype=f"S{max((len(b) for b in encoded), default=1) or 1}")


def write_wtalc(
    dataset: Dataset, out_dir: str | Path, *, subset_names: dict[str, str] | None = None
) -> None:
    """Write ``dataset`` in the W-TALC layout for legacy code that expects those files.

    ``subset_names`` renames subsets on the way out (legacy THUMOS14 code wants
    ``{"train": "validation"}`` for a gt.json whose validation videos say "train").
    Unknown durations/fps are written as NaN. Object arrays are written by NumPy's own
    ``np.save`` (pickle protocol 3), which talkit reads back with its safe loader.
    """
    out_dir = Path(out_dir)
    rename = subset_names or {}
    videos = list(dataset.videos.values())
    nan = float("nan")
    arrays: dict[str, np.ndarray] = {
        "videoname": _bytes_array([v.id for v in videos]),
        "subset": _bytes_array([rename.get(v.subset, v.subset) for v in videos]),
        "classlist": _bytes_array(list(dataset.classes)),
        "segments": _object_array([[[s.start_s, s.end_s] for s in v.annotations] for v in videos]),
        "labels": _object_array([[s.label for s in v.annotations] for v in videos]),
        "labels_all": _object_array([v.labels for v in videos]),
        "duration": np.array(
            [[nan if v.duration_s is None else v.duration_s] for v in videos], dtype=np.float64
        ).reshape(len(videos), 1),
        "original_fps": np.array(
            [nan if v.fps is None else v.fps for v in videos], dtype=np.float64
        ),
    }
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, array in arrays.items():
            _save_atomic(out_dir / f"{name}.npy", array)
        by_subset: dict[str, list[str]] = {}
        for v in videos:
            for start, end in v.ambiguous:
                subset = rename.get(v.subset, v.subset)
                by_subset.setdefault(subset, []).append(f"{v.id} {start!r} {end!r}\n")
        for subset, lines in by_subset.items():
            suffix = "val" if subset in {"validation", "val", "train"} else subset
            (out_dir / f"Ambiguous_{suffix}.txt").write_text("".join(lines), encoding="utf-8")
    except OSError as exc:
        raise AnnotationError(
            f"cannot write the W-TALC set to {out_dir}: {exc.strerror or exc}",
            hint="choose a writable output directory",
        ) from None


def _save_atomic(path: Path, array: np.ndarray) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, array, allow_pickle=bool(array.dtype.hasobject))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
