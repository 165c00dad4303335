"""Detections in the ActivityNet result format: read, validate, write.

The format is what every temporal-localization toolkit emits, so talkit can score anyone's
output and anyone can score talkit's::

    {"version": "VERSION 1.3",
     "results": {"video_id": [{"label": "HighJump", "score": 0.93, "segment": [18.6, 24.8]}]},
     "external_data": {...}}

In memory a :class:`DetectionSet` holds the predictions as columns (fast to score).
"Input order" (the tie rule of the evaluator) is the order of the videos in ``results``
and, within a video, the order of its list.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from talkit.errors import InputError

MAX_REPORTED_PROBLEMS = 5


class DetectionFormatError(InputError):
    """A detections file is not valid ActivityNet result JSON."""


@dataclass(frozen=True)
class DetectionSet:
    """Predictions as columns: video id, label, [start, end] in seconds, score.

    Video ids and labels are stored as codes into ``videos`` / ``labels`` (categorical
    columns): hashing 100k strings once while parsing is what keeps scoring fast.
    """

    videos: tuple[str, ...]
    video_code: np.ndarray  # (N,) int64 index into videos
    labels: tuple[str, ...]
    label_code: np.ndarray  # (N,) int64 index into labels
    segments: np.ndarray  # (N, 2) float64
    score: np.ndarray  # (N,) float64
    source: str | None = None

    def __len__(self) -> int:
        return len(self.score)

    @property
    def video(self) -> np.ndarray:
        """(N,) video id of each prediction."""
        return np.asarray(self.videos, dtype=object)[self.video_code]

    @property
    def label(self) -> np.ndarray:
        """(N,) label of each prediction."""
        return np.asarray(self.labels, dtype=object)[self.label_code]

    @classmethod
    def _from_columns(
        cls,
        videos: list[str],
        labels: list[str],
        segs: list[tuple[float, float]] | list[list[float]],
        scores: list[float],
        source: str | None,
    ) -> DetectionSet:
        v_index: dict[str, int] = {}
        l_index: dict[str, int] = {}
        video_code = np.array([v_index.setdefault(v, len(v_index)) for v in videos], dtype=np.int64)
        label_code = np.array([l_index.setdefault(x, len(l_index)) for x in labels], dtype=np.int64)
        return cls(
            videos=tuple(v_index),
            video_code=video_code,
            labels=tuple(l_index),
            label_code=label_code,
            segments=np.array(segs, dtype=np.float64).reshape(-1, 2),
            score=np.array(scores, dtype=np.float64),
            source=source,
        )

    @classmethod
    def from_records(
        cls, records: Iterable[Mapping[str, Any]], *, source: str | None = None
    ) -> DetectionSet:
        """From dicts with ``video``, ``label``, ``score`` and ``segment`` (already valid)."""
        rows = list(records)
        return cls._from_columns(
            [str(r["video"]) for r in rows],
            [str(r["label"]) for r in rows],
            [r["segment"] for r in rows],
            [r["score"] for r in rows],
            source,
        )

    @classmethod
    def from_results(cls, results: Mapping[str, Any], *, source: str | None = None) -> DetectionSet:
        """From the ``results`` mapping of the ActivityNet format, validating every entry."""
        where = source or "detections"
        if not isinstance(results, Mapping):
            raise DetectionFormatError(
                f'{where}: "results" must map video ids to lists of detections, '
                f"got {type(results).__name__}",
                hint='expected {"results": {"video_id": [{"label", "score", "segment"}]}}',
            )
        videos: list[str] = []
        labels: list[str] = []
        segs: list[tuple[float, float]] = []
        scores: list[float] = []
        problems: list[str] = []
        n_bad = 0
        for vid, entries in results.items():
            if not isinstance(entries, list):
                n_bad += 1
                if len(problems) < MAX_REPORTED_PROBLEMS:
                    problems.append(f'results["{vid}"] is {type(entries).__name__}, not a list')
                continue
            for i, entry in enumerate(entries):
                parsed = _parse_entry(entry)
                if isinstance(parsed, str):
                    n_bad += 1
                    if len(problems) < MAX_REPORTED_PROBLEMS:
                        problems.append(f'results["{vid}"][{i}]: {parsed}')
                    continue
                videos.append(str(vid))
                labels.append(parsed[0])
                scores.append(parsed[1])
                segs.append((parsed[2], parsed[3]))
        if n_bad:
            raise DetectionFormatError(
                f"{where}: {n_bad} malformed detection entries; first: " + "; ".join(problems),
                hint='each entry needs "label" (string), "score" (finite number) and '
                '"segment" ([start, end] seconds, start <= end)',
            )
        return cls._from_columns(videos, labels, segs, scores, source)

    def to_results(self) -> dict[str, list[dict[str, Any]]]:
        """Back to the ``results`` mapping, keeping input order."""
        out: dict[str, list[dict[str, Any]]] = {}
        for v, lab, (s, e), sc in zip(
            self.video_code, self.label_code, self.segments, self.score, strict=True
        ):
            out.setdefault(self.videos[v], []).append(
                {"label": self.labels[lab], "score": float(sc), "segment": [float(s), float(e)]}
            )
        return out

    def for_video(self, video_id: str) -> list[dict[str, Any]]:
        """The detections of one video, highest score first."""
        if video_id not in self.videos:
            return []
        idx = np.flatnonzero(self.video_code == self.videos.index(video_id))
        idx = idx[np.argsort(-self.score[idx], kind="stable")]
        return [
            {
                "label": self.labels[self.label_code[i]],
                "score": float(self.score[i]),
                "segment": self.segments[i].tolist(),
            }
            for i in idx
        ]


def _number(value: Any) -> float | None:
    """A finite float from a number or numeric string (the reference calls float())."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        out = float(value)
    elif isinstance(value, str):
        try:
            out = float(value)
        except ValueError:
            return None
    else:
        return None
    return out if math.isfinite(out) else None


def _parse_entry(entry: Any) -> tuple[str, float, float, float] | str:
    """(label, score, start, end), or a message saying what is wrong."""
    if not isinstance(entry, Mapping):
        return f"expected an object, got {type(entry).__name__}"
    missing = [k for k in ("label", "score", "segment") if k not in entry]
    if missing:
        return f"missing {', '.join(repr(k) for k in missing)}"
    label = entry["label"]
    if not isinstance(label, str) or not label:
        return f'"label" must be a non-empty string, got {label!r}'
    score = _number(entry["score"])
    if score is None:
        return f'"score" must be a finite number, got {entry["score"]!r}'
    seg = entry["segment"]
    if not isinstance(seg, list | tuple) or len(seg) != 2:
        return f'"segment" must be [start, end], got {seg!r}'
    start, end = _number(seg[0]), _number(seg[1])
    if start is None or end is None:
        return f'"segment" values must be finite numbers, got {seg!r}'
    if end < start:
        return f'"segment" ends before it starts: {seg!r}'
    return label, score, start, end


def read_detections(path: str | Path) -> DetectionSet:
    """Read and validate an ActivityNet result JSON file (exit 2 on any malformed entry)."""
    path = Path(path)
    if not path.is_file():
        raise DetectionFormatError(f"{path} does not exist or is not a file", hint="check the path")
    try:
        with path.open("rb") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DetectionFormatError(
            f"{path} is not valid JSON: {exc}", hint="write it with json.dump"
        ) from exc
    except RecursionError:
        raise DetectionFormatError(
            f"{path} is nested too deeply to read (arrays or objects hundreds of levels deep)",
            hint='expected the ActivityNet result format {"version", "results": {video: [...]}}',
        ) from None
    if not isinstance(data, Mapping) or "results" not in data:
        raise DetectionFormatError(
            f'{path} has no top-level "results" object',
            hint='expected the ActivityNet result format {"version", "results": {video: [...]}}',
        )
    return DetectionSet.from_results(data["results"], source=str(path))


def write_detections(
    path: str | Path,
    results: Mapping[str, list[Mapping[str, Any]]] | DetectionSet,
    *,
    external_data: Mapping[str, Any] | None = None,
) -> Path:
    """Write detections (a ``results`` mapping or a :class:`DetectionSet`) as ActivityNet JSON."""
    path = Path(path)
    body = (
        results.to_results()
        if isinstance(results, DetectionSet)
        else {
            str(v): [
                {
                    "label": str(d["label"]),
                    "score": float(d["score"]),
                    "segment": [float(x) for x in d["segment"]],
                }
                for d in dets
            ]
            for v, dets in results.items()
        }
    )
    DetectionSet.from_results(body, source=str(path))  # refuse to write what we could not read
    payload = {
        "version": "VERSION 1.3",
        "results": body,
        "external_data": dict(external_data or {"used": False, "details": "talkit"}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        json.dump(payload, f)
    return path
