"""The ActivityNet JSON layout: ActivityNet 1.2/1.3, HACS Segments v1.1.1, THUMOS14 gt.json.

Layout::

    {"version": "...", "taxonomy": [...],               # both optional
     "database": {video_id: {"subset": "training", "duration": 211.53, "url": "...",
                             "annotations": [{"label": "...", "segment": [s, e]}]}}}

Segment times may be numbers or numeric strings (THUMOS14 gt.json writes "18.6").

Subsets are kept as written. Canonical roles: THUMOS14 (recognised by its
``video_validation_*`` / ``video_test_*`` ids): train/validation/val -> train, test -> test.
Everything else (ActivityNet, HACS): training -> train, validation -> val, testing -> test.

Evaluation convention (``Dataset.eval_preset``): as recorded in the ``talkit`` block
(``eval_preset``); otherwise thumos14 for THUMOS14 ids, activitynet for an ActivityNet
``version``, hacs for a HACS file, and unknown for anything else.

Class order: sorted by name. When the file has a ``taxonomy``, its leaf nodes are the
declared classes (labels outside them are ``unknown_label`` problems). Files written by
talkit carry a ``talkit`` block whose ``classes`` list is kept in its own order, so a
W-TALC class order survives a round trip.
"""

from __future__ import annotations

import json
import math
import os
import re
import reprlib
import tempfile
from pathlib import Path
from typing import Any

from talkit.datasets.formats.assemble import build_dataset, new_video, parse_segment, parse_time
from talkit.datasets.model import (
    ACTIVITYNET_SUBSET_CANONICAL,
    EVAL_PRESETS,
    THUMOS14_SUBSET_CANONICAL,
    CanonicalSplit,
    Dataset,
    Problem,
)
from talkit.errors import AnnotationError

FORMAT = "activitynet_json"
_THUMOS_ID = re.compile(r"video_(validation|test)_\d+")
# How values from the file are quoted in messages: short, whatever the file holds.
_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxlist, _SHOWN.maxdict = 3, 4, 4
_SHOWN.maxstring = _SHOWN.maxother = 60
_LAYOUT_HINT = (
    'expected the ActivityNet layout {"database": {video_id: {"subset": ..., '
    '"annotations": [{"label": ..., "segment": [start, end]}]}}}'
)


class _FirstWinsDict(dict):
    """A JSON object that had repeated keys: the first value is kept, repeats listed."""

    duplicates: list[str]


def _pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) == len(pairs):
        return out
    first = _FirstWinsDict()
    first.duplicates = []
    for key, value in pairs:
        if key in first:
            first.duplicates.append(key)
        else:
            first[key] = value
    return first


def _parse_json(path: Path) -> Any:
    raw = path.read_bytes()
    if not raw.strip():
        raise AnnotationError(
            f"{path} is empty", hint="re-download or regenerate the annotation file"
        )
    try:
        return json.loads(raw, object_pairs_hook=_pairs_hook)
    except UnicodeDecodeError as exc:
        raise AnnotationError(
            f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})",
            hint="pass an ActivityNet-layout JSON annotation file",
        ) from None
    except RecursionError:
        raise AnnotationError(
            f"{path}: the JSON is nested too deeply to read (arrays or objects inside each "
            "other hundreds of levels deep)",
            hint="an annotation file nests a few levels at most; check that this is an "
            "ActivityNet-layout annotation file and regenerate it",
        ) from None
    except json.JSONDecodeError as exc:
        # an unterminated string runs to the end of the file by definition
        truncated = exc.pos >= len(raw.rstrip()) or exc.msg.startswith("Unterminated string")
        why = (
            "the JSON ends before it is complete (truncated file?)"
            if truncated
            else "it is not valid JSON"
        )
        raise AnnotationError(
            f"{path}: {why} (line {exc.lineno}, column {exc.colno}: {exc.msg})",
            hint="re-download the annotation file",
        ) from None


def _taxonomy_leaves(taxonomy: Any) -> list[str] | None:
    if not isinstance(taxonomy, list) or not taxonomy:
        return None
    nodes = [t for t in taxonomy if isinstance(t, dict) and isinstance(t.get("nodeName"), str)]
    parents = {t.get("parentName") for t in nodes}
    leaves = [t["nodeName"] for t in nodes if t["nodeName"] not in parents]
    return leaves or None


def _dataset_name(path: Path, doc: dict[str, Any], video_ids: list[str], thumos: bool) -> str:
    meta = doc.get("talkit")
    if isinstance(meta, dict) and isinstance(meta.get("name"), str):
        return meta["name"]
    if thumos:
        return "thumos14"
    version = doc.get("version")
    if isinstance(version, str):
        match = re.search(r"(\d+\.\d+)", version)
        if match and "hacs" not in path.name.lower():
            return f"activitynet{match.group(1)}"
    if "hacs" in path.name.lower():
        return "hacs"
    return path.stem


def _eval_preset(meta: dict[str, Any], name: str, thumos: bool) -> str | None:
    """The scoring convention: recorded by talkit, else what the ids or the name say."""
    recorded = meta.get("eval_preset")
    if recorded in EVAL_PRESETS:
        return recorded
    if thumos or name.startswith("thumos"):
        return "thumos14"
    if name.startswith("activitynet"):
        return "activitynet"
    if name == "hacs":
        return "hacs"
    return None


def read_activitynet_json(path: Path, *, strict: bool = False) -> Dataset:
    """Parse an ActivityNet-layout JSON file into a :class:`Dataset`."""
    doc = _parse_json(path)
    if not isinstance(doc, dict):
        raise AnnotationError(
            f"{path}: the top level is a JSON {type(doc).__name__}, not an object",
            hint=_LAYOUT_HINT,
        )
    if "database" not in doc:
        keys = ", ".join(sorted(doc)[:8]) or "none"
        raise AnnotationError(
            f"{path}: no 'database' key (top-level keys: {keys})", hint=_LAYOUT_HINT
        )
    database = doc["database"]
    if not isinstance(database, dict):
        raise AnnotationError(
            f"{path}: 'database' is a {type(database).__name__}, not an object of videos",
            hint=_LAYOUT_HINT,
        )

    problems: list[Problem] = [
        Problem(
            kind="duplicate_video",
            video_id=vid,
            message=f"video {vid} appears more than once in 'database'; the first entry is kept",
        )
        for vid in getattr(database, "duplicates", [])
    ]
    videos: dict[str, dict[str, Any]] = {}
    for vid, entry in database.items():
        videos[vid] = _read_video(path, vid, entry)

    thumos = bool(videos) and all(_THUMOS_ID.fullmatch(v) for v in videos)
    meta = doc.get("talkit") if isinstance(doc.get("talkit"), dict) else {}
    canonical: dict[str, CanonicalSplit] = dict(
        THUMOS14_SUBSET_CANONICAL if thumos else ACTIVITYNET_SUBSET_CANONICAL
    )
    if isinstance(meta.get("subset_canonical"), dict):
        roles = ("train", "val", "test", "unknown")
        canonical.update(
            {k: v for k, v in meta["subset_canonical"].items() if isinstance(k, str) and v in roles}
        )
    declared = meta.get("classes") if isinstance(meta.get("classes"), list) else None
    keep_order = declared is not None
    if declared is None:
        declared = _taxonomy_leaves(doc.get("taxonomy"))
    name = _dataset_name(path, doc, list(videos), thumos)
    return build_dataset(
        path,
        name=name,
        eval_preset=_eval_preset(meta, name, thumos),
        source_format=FORMAT,
        videos=videos,
        problems=problems,
        subset_canonical=canonical,
        declared_classes=declared,
        keep_class_order=keep_order,
        strict=strict,
    )


def _read_video(path: Path, vid: str, entry: Any) -> dict[str, Any]:
    where = f"{path}: video {vid}"
    if not isinstance(entry, dict):
        raise AnnotationError(
            f"{where} is a JSON {type(entry).__name__}, not an object", hint=_LAYOUT_HINT
        )
    subset = entry.get("subset", "unknown")
    duration = parse_time(entry["duration"]) if entry.get("duration") is not None else None
    fps = parse_time(entry["fps"]) if entry.get("fps") is not None else None
    url = entry.get("url") if isinstance(entry.get("url"), str) else None
    video = new_video(vid, str(subset), duration_s=duration, fps=fps, url=url)
    annotations = entry.get("annotations", [])
    if not isinstance(annotations, list):
        raise AnnotationError(f"{where}: 'annotations' is not a list", hint=_LAYOUT_HINT)
    out = video["annotations"]
    for i, ann in enumerate(annotations):
        if not isinstance(ann, dict):
            raise AnnotationError(f"{where}: annotation {i} is not an object", hint=_LAYOUT_HINT)
        label = ann.get("label")
        if not isinstance(label, str):
            raise AnnotationError(
                f"{where}: annotation {i} has no string 'label' (got {_SHOWN.repr(label)})",
                hint=_LAYOUT_HINT,
            )
        seg = parse_segment(ann.get("segment"))
        if seg is None:
            raise AnnotationError(
                f"{where}: annotation {i} ({_SHOWN.repr(label)}) has segment "
                f"{_SHOWN.repr(ann.get('segment'))}, "
                "which is not two numbers",
                hint="each segment must be [start_seconds, end_seconds]",
            )
        out.append({"label": label, "start_s": seg[0], "end_s": seg[1]})
    for i, amb in enumerate(entry.get("ambiguous", []) or []):
        seg = parse_segment(amb)
        if seg is None:
            raise AnnotationError(
                f"{where}: ambiguous interval {i} is {_SHOWN.repr(amb)}, not two numbers",
                hint="each interval must be [start_seconds, end_seconds]",
            )
        video["ambiguous"].append(seg)
    return video


def _json_number(x: float | None) -> float | None:
    return x if x is None or math.isfinite(x) else None


def activitynet_document(dataset: Dataset) -> dict[str, Any]:
    """The ActivityNet-layout document for ``dataset`` (what the evaluator reads).

    Besides the standard keys it writes each video's ``fps`` and ``ambiguous`` intervals
    when known, and a ``talkit`` block (name, class order, canonical subset roles) that
    evaluators ignore and talkit reads back.
    """
    database: dict[str, Any] = {}
    for vid, video in dataset.videos.items():
        entry: dict[str, Any] = {"subset": video.subset}
        if video.duration_s is not None:
            entry["duration"] = _json_number(video.duration_s)
        if video.fps is not None:
            entry["fps"] = _json_number(video.fps)
        if video.url is not None:
            entry["url"] = video.url
        entry["annotations"] = [
            {"label": s.label, "segment": [s.start_s, s.end_s]} for s in video.annotations
        ]
        if video.ambiguous:
            entry["ambiguous"] = [[a, b] for a, b in video.ambiguous]
        database[vid] = entry
    taxonomy = [{"nodeId": 0, "nodeName": "Root", "parentId": None, "parentName": None}]
    taxonomy += [
        {"nodeId": i + 1, "nodeName": c, "parentId": 0, "parentName": "Root"}
        for i, c in enumerate(dataset.classes)
    ]
    return {
        "version": f"talkit:{dataset.name}",
        "taxonomy": taxonomy,
        "database": database,
        "talkit": {
            "name": dataset.name,
            "source_format": dataset.source_format,
            "classes": list(dataset.classes),
            "subset_canonical": dict(dataset.subset_canonical),
            **({"eval_preset": dataset.eval_preset} if dataset.eval_preset else {}),
        },
    }


def write_activitynet_json(dataset: Dataset, path: str | Path) -> None:
    """Write ``dataset`` as ActivityNet-layout JSON, atomically (temp file + rename)."""
    path = Path(path)
    doc = activitynet_document(dataset)
    try:
        text = json.dumps(doc, allow_nan=False)
    except ValueError:
        raise AnnotationError(
            f"cannot write {path}: a segment time is NaN or infinite",
            hint="fix or drop the non-finite times before writing",
        ) from None
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise AnnotationError(
            f"cannot write {path}: {exc.strerror or exc}",
            hint="choose a writable output path",
        ) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
