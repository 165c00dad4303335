"""Detection mAP with the ActivityNet semantics, vectorised with numpy.

The community compares temporal-localization numbers with the ActivityNet challenge's
detection AP (``Evaluation/eval_detection.py``). That script is Python 2 and no longer
runs, so this module re-implements its semantics (see ``shared/reference/evaluation.md``):

- per class, predictions are visited by descending score; each one looks at the GT
  instances of its class *in its video* by descending tIoU, skips those already matched
  at this threshold, takes the first unmatched one with ``tIoU >= threshold`` (true
  positive) or is a false positive;
- AP is all-point interpolated (VOC 2011); mAP is the mean over the GT classes, a class
  without predictions scoring 0.

Documented choices where the reference is ambiguous:

- **Tie rule.** Predictions with equal scores are visited in input order (a stable sort
  by descending score). GT instances with equal tIoU to one prediction are visited
  last-listed first, which is what the reference's ``argsort()[::-1]`` does when its
  sort is stable.
- **Thresholds** are the decimal literals (0.3, not ``np.linspace``'s
  0.30000000000000004), so a tIoU that equals 0.3 to the last bit matches at 0.3.
- A tIoU of 0/0 (two zero-length segments) counts as 0.

The matching itself (vectorised: all (class, video) groups advance together, all
thresholds at once) lives in :mod:`talkit.wtal_heads.evaluation.matching`.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from talkit.datasets.model import Dataset
from talkit.errors import InputError
from talkit.wtal_heads.evaluation.detections import DetectionSet
from talkit.wtal_heads.evaluation.matching import (
    average_precision,
    class_aps,
    interpolated_ap,
    match_predictions,
    stable_int_argsort,
)
from talkit.wtal_heads.evaluation.tiou import segment_tiou

__all__ = [
    "THRESHOLD_PRESETS",
    "THUMOS14_BAD_VIDEOS",
    "TIE_RULE",
    "EvalResult",
    "GroundTruthTable",
    "ThresholdPreset",
    "average_precision",
    "evaluate",
    "interpolated_ap",
    "match_predictions",
    "segment_tiou",
    "threshold_preset",
]

TIE_RULE = (
    "predictions with equal scores are visited in input order (stable sort by descending "
    "score); GT instances with equal tIoU to a prediction are visited last-listed first"
)
THUMOS14_BAD_VIDEOS: tuple[str, ...] = (
    "video_test_0000270",
    "video_test_0001292",
    "video_test_0001496",
)
UnknownVideos = Literal["fp", "drop", "error"]


@dataclass(frozen=True)
class ThresholdPreset:
    """The tIoU thresholds a benchmark reports, and the averages papers quote."""

    name: str
    thresholds: tuple[float, ...]
    averages: dict[str, tuple[float, float]]  # label -> inclusive (low, high) threshold range


def _steps(lo: int, hi: int, step: int, scale: int) -> tuple[float, ...]:
    return tuple(round(k / scale, 4) for k in range(lo, hi + 1, step))


THRESHOLD_PRESETS: dict[str, ThresholdPreset] = {
    "thumos14": ThresholdPreset(
        "thumos14",
        _steps(1, 9, 1, 10),
        {"0.1:0.7": (0.1, 0.7), "0.1:0.5": (0.1, 0.5), "0.1:0.9": (0.1, 0.9)},
    ),
    "activitynet": ThresholdPreset(
        "activitynet", _steps(50, 95, 5, 100), {"0.5:0.95": (0.5, 0.95)}
    ),
}
THRESHOLD_PRESETS["hacs"] = ThresholdPreset(
    "hacs", THRESHOLD_PRESETS["activitynet"].thresholds, {"0.5:0.95": (0.5, 0.95)}
)


def threshold_preset(name: str) -> ThresholdPreset:
    """Look up a preset by name (``thumos14``, ``activitynet``, ``hacs``)."""
    try:
        return THRESHOLD_PRESETS[name.lower()]
    except KeyError:
        raise InputError(
            f"unknown threshold preset {name!r}",
            hint=f"use one of {', '.join(THRESHOLD_PRESETS)} or give thresholds explicitly",
        ) from None


# ---------------------------------------------------------------------------------------
# Ground truth and the full evaluation
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroundTruthTable:
    """The evaluated GT as columns: which videos count, which classes are scored."""

    video_ids: tuple[str, ...]
    classes: tuple[str, ...]  # scored classes: those with at least one instance
    known_labels: frozenset[str]  # every label the GT defines (a superset of classes)
    video: np.ndarray  # (G,) index into video_ids
    label: np.ndarray  # (G,) index into classes
    segments: np.ndarray  # (G, 2) seconds

    @classmethod
    def from_dataset(
        cls, dataset: Dataset, *, exclude_videos: Iterable[str] = ()
    ) -> GroundTruthTable:
        """All videos of ``dataset`` except ``exclude_videos``; classes in its documented order."""
        excluded = set(exclude_videos)
        video_ids = tuple(v for v in dataset.videos if v not in excluded)
        rows = [
            (i, seg.label, seg.start_s, seg.end_s)
            for i, vid in enumerate(video_ids)
            for seg in dataset.videos[vid].annotations
        ]
        present = {r[1] for r in rows}
        classes = [c for c in dataset.classes if c in present]
        classes += sorted(present - set(classes))
        index = {c: i for i, c in enumerate(classes)}
        return cls(
            video_ids=video_ids,
            classes=tuple(classes),
            known_labels=frozenset(dataset.classes) | present,
            video=np.array([r[0] for r in rows], dtype=np.int64),
            label=np.array([index[r[1]] for r in rows], dtype=np.int64),
            segments=np.array([[r[2], r[3]] for r in rows], dtype=np.float64).reshape(-1, 2),
        )

    @property
    def npos(self) -> np.ndarray:
        return np.bincount(self.label, minlength=len(self.classes))

    def without(self, videos: Iterable[str]) -> GroundTruthTable:
        """The same GT minus ``videos`` (their instances leave the counts too)."""
        drop = set(videos) & set(self.video_ids)
        if not drop:
            return self
        kept = [i for i, v in enumerate(self.video_ids) if v not in drop]
        new_index = np.full(len(self.video_ids), -1, dtype=np.int64)
        new_index[kept] = np.arange(len(kept))
        rows = new_index[self.video] >= 0
        present = np.unique(self.label[rows])
        class_index = np.full(len(self.classes), -1, dtype=np.int64)
        class_index[present] = np.arange(len(present))
        return GroundTruthTable(
            video_ids=tuple(self.video_ids[i] for i in kept),
            classes=tuple(self.classes[i] for i in present),
            known_labels=self.known_labels,
            video=new_index[self.video[rows]],
            label=class_index[self.label[rows]],
            segments=self.segments[rows],
        )


@dataclass
class EvalResult:
    """Per-class AP x threshold, mAP per threshold, averages, and what was counted."""

    classes: list[str]
    thresholds: list[float]
    ap: np.ndarray  # (T, C), as the reference lays it out
    npos: list[int]
    num_predictions: list[int]
    averages: dict[str, float]
    accounting: dict[str, Any]
    options: dict[str, Any]
    gt_summary: dict[str, Any] = field(default_factory=dict)
    _tp: list[np.ndarray] = field(default_factory=list, repr=False)

    @property
    def map(self) -> np.ndarray:
        """mAP at each threshold: the mean AP over the scored classes."""
        return self.ap.mean(axis=1) if self.ap.shape[1] else np.zeros(len(self.thresholds))

    @property
    def average_map(self) -> float:
        return float(self.map.mean()) if len(self.thresholds) else 0.0

    def class_ap(self, label: str) -> np.ndarray:
        return self.ap[:, self.classes.index(label)]

    def pr_curve(self, label: str, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        """(recall, precision) of ``label`` at ``threshold``, in score order."""
        c = self.classes.index(label)
        t = int(np.argmin(np.abs(np.asarray(self.thresholds) - threshold)))
        tp = self._tp[c][:, t] if self._tp else np.zeros(0, bool)
        tp_cum = np.cumsum(tp, dtype=np.float64)
        n = np.arange(1, len(tp) + 1, dtype=np.float64)
        recall = tp_cum / max(self.npos[c], 1)
        return recall, tp_cum / np.maximum(n, 1)

    def to_dict(self) -> dict[str, Any]:
        """The JSON report: numbers plus the GT, options and counts that produced them."""
        thr_keys = [f"{t:g}" for t in self.thresholds]
        return {
            "gt": self.gt_summary,
            "options": self.options,
            "accounting": self.accounting,
            "thresholds": self.thresholds,
            "mAP": dict(zip(thr_keys, (float(x) for x in self.map), strict=True)),
            "average_mAP": self.averages,
            "per_class": {
                c: {
                    "npos": self.npos[i],
                    "predictions": self.num_predictions[i],
                    "AP": dict(zip(thr_keys, (float(x) for x in self.ap[:, i]), strict=True)),
                }
                for i, c in enumerate(self.classes)
            },
        }


def _resolve_thresholds(
    thresholds: str | Sequence[float], averages: Mapping[str, tuple[float, float]] | None
) -> tuple[str | None, list[float], dict[str, tuple[float, float]]]:
    if isinstance(thresholds, str):
        preset = threshold_preset(thresholds)
        return preset.name, list(preset.thresholds), dict(averages or preset.averages)
    thr = [float(t) for t in thresholds]
    if not thr or any(not 0.0 < t <= 1.0 for t in thr):
        raise InputError(f"tIoU thresholds must be in (0, 1], got {thr}", hint="e.g. 0.3,0.5,0.7")
    return None, thr, dict(averages or {f"{min(thr):g}:{max(thr):g}": (min(thr), max(thr))})


def _averages(
    m: np.ndarray, thr: list[float], spec: Mapping[str, tuple[float, float]]
) -> dict[str, float]:
    out: dict[str, float] = {}
    t = np.asarray(thr)
    for name, (low, high) in spec.items():
        sel = (t >= low - 1e-9) & (t <= high + 1e-9)
        if sel.any():
            out[name] = float(m[sel].mean())
    return out


def _unknown_label_error(unknown: Counter[str], known: Iterable[str]) -> InputError:
    known = sorted(known)
    parts = []
    for label, n in unknown.most_common(5):
        close = difflib.get_close_matches(label, known, n=1)
        parts.append(f"{label!r} ({n}x{f'; did you mean {close[0]!r}?' if close else ''})")
    more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
    return InputError(
        f"{sum(unknown.values())} detections carry {len(unknown)} labels the ground truth "
        f"does not define: {', '.join(parts)}{more}",
        hint="rename them to the GT class names, or evaluate against the GT they were made for",
    )


def _ambiguous_mask(
    video: np.ndarray,
    segments: np.ndarray,
    ambiguous: Sequence[tuple[str, float, float]],
    vid_index: Mapping[str, int],
) -> np.ndarray:
    """True for predictions that overlap (positive intersection) an ambiguous interval."""
    rows = [(vid_index[v], s, e) for v, s, e in ambiguous if v in vid_index]
    hit = np.zeros(len(video), dtype=bool)
    if not rows or len(video) == 0:
        return hit
    amb = np.array(rows, dtype=np.float64)
    amb_video = amb[:, 0].astype(np.int64)
    a_order = np.argsort(amb_video, kind="stable")
    amb_sorted = amb_video[a_order]
    lo = np.searchsorted(amb_sorted, video, side="left")
    count = np.searchsorted(amb_sorted, video, side="right") - lo
    pp = np.repeat(np.arange(len(video)), count)
    first = np.cumsum(count) - count
    aa = a_order[np.repeat(lo, count) + np.arange(len(pp)) - np.repeat(first, count)]
    inter = np.minimum(segments[pp, 1], amb[aa, 2]) - np.maximum(segments[pp, 0], amb[aa, 1])
    hit[pp[inter > 0]] = True
    return hit


def _select_predictions(
    gt: GroundTruthTable,
    detections: DetectionSet,
    excluded: Sequence[str],
    ambiguous: Sequence[tuple[str, float, float]] | None,
    unknown_videos: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """Which predictions are scored, their GT video and class indices, and the accounting.

    Video index -1: not in the GT; class index -1: no GT instance of that label.
    """
    vid_index = {v: i for i, v in enumerate(gt.video_ids)}
    n_total = len(detections)
    accounting: dict[str, Any] = {"predictions_read": n_total}

    keep = np.ones(n_total, dtype=bool)
    if excluded:
        excluded_set = set(excluded)
        bad_codes = [i for i, v in enumerate(detections.videos) if v in excluded_set]
        in_excluded = np.isin(detections.video_code, bad_codes)
        accounting["excluded_videos"] = {"videos": excluded, "predictions": int(in_excluded.sum())}
        keep &= ~in_excluded

    label_counts = np.bincount(detections.label_code[keep], minlength=len(detections.labels))
    unknown = Counter(
        {
            lab: int(n)
            for lab, n in zip(detections.labels, label_counts, strict=True)
            if n and lab not in gt.known_labels
        }
    )
    if unknown:
        raise _unknown_label_error(unknown, gt.known_labels)

    code_to_video = np.array([vid_index.get(v, -1) for v in detections.videos] + [-1], np.int64)
    video = code_to_video[detections.video_code]
    outside = keep & (video < 0)
    if outside.any():
        codes = np.unique(detections.video_code[outside])
        vids = sorted(detections.videos[c] for c in codes)
        accounting["videos_not_in_gt"] = {
            "videos": len(vids),
            "predictions": int(outside.sum()),
            "examples": vids[:10],
            "handling": unknown_videos,
        }
        if unknown_videos == "error":
            raise InputError(
                f"{int(outside.sum())} detections are in {len(vids)} videos that the evaluated "
                f"ground truth does not contain (e.g. {', '.join(vids[:3])})",
                hint="check --subset, or choose --unknown-videos fp|drop",
            )
        if unknown_videos == "drop":
            keep &= ~outside

    if ambiguous is not None:
        hit = keep & _ambiguous_mask(video, detections.segments, ambiguous, vid_index)
        accounting["ambiguous"] = {
            "intervals": sum(1 for v, _, _ in ambiguous if v in vid_index),
            "predictions_dropped": int(hit.sum()),
        }
        keep &= ~hit

    class_index = {c: i for i, c in enumerate(gt.classes)}
    code_to_class = np.array([class_index.get(x, -1) for x in detections.labels] + [-1], np.int64)
    label = code_to_class[detections.label_code]
    no_gt = keep & (label < 0)
    if no_gt.any():
        counts = np.bincount(detections.label_code[no_gt], minlength=len(detections.labels))
        accounting["labels_without_gt"] = {
            detections.labels[i]: int(counts[i])
            for i in np.argsort(-counts, kind="stable")
            if counts[i]
        }
        keep &= ~no_gt
    accounting["predictions_scored"] = int(keep.sum())

    return keep, video, label, accounting


def evaluate(
    ground_truth: Dataset | GroundTruthTable,
    detections: DetectionSet,
    *,
    thresholds: str | Sequence[float] = "thumos14",
    averages: Mapping[str, tuple[float, float]] | None = None,
    exclude_videos: Iterable[str] = (),
    ambiguous: Sequence[tuple[str, float, float]] | None = None,
    unknown_videos: UnknownVideos = "fp",
) -> EvalResult:
    """Score ``detections`` against ``ground_truth`` (every video in it counts).

    - ``thresholds``: a preset name (``thumos14``, ``activitynet``, ``hacs``) or values.
    - ``exclude_videos``: removed from GT and predictions alike (THUMOS14_BAD_VIDEOS).
    - ``ambiguous``: (video, start, end) intervals; predictions overlapping one are dropped.
    - ``unknown_videos``: predictions in videos absent from the GT are false positives as in
      the reference (``fp``), ignored (``drop``) or refused (``error``); always counted.

    Labels the GT does not define raise :class:`InputError`.
    """
    preset_name, thr, avg_spec = _resolve_thresholds(thresholds, averages)
    excluded = sorted(set(exclude_videos))
    gt = (
        GroundTruthTable.from_dataset(ground_truth, exclude_videos=excluded)
        if isinstance(ground_truth, Dataset)
        else ground_truth.without(excluded)
    )
    if unknown_videos not in ("fp", "drop", "error"):
        raise InputError(
            f"unknown_videos must be fp, drop or error, got {unknown_videos!r}",
            hint="fp: score them as false positives (the reference), drop: ignore them",
        )
    keep, video, label, accounting = _select_predictions(
        gt, detections, excluded, ambiguous, unknown_videos
    )

    idx = np.flatnonzero(keep)
    n_vid = max(len(gt.video_ids), 1) + 1  # +1: one shared slot for "not in GT" videos
    p_video = np.where(video[idx] < 0, n_vid - 1, video[idx])
    p_label = label[idx]
    # Class-major, then descending score, ties in input order (two stable sorts).
    by_score = np.argsort(-detections.score[idx], kind="stable")
    order = by_score[stable_int_argsort(p_label[by_score])]
    _, tp = match_predictions(
        p_label * n_vid + p_video,
        detections.segments[idx],
        detections.score[idx],
        gt.label * n_vid + gt.video,
        gt.segments,
        thr,
        order=order,
    )
    bounds = np.searchsorted(p_label[order], np.arange(len(gt.classes) + 1))
    tp_sorted = tp[order]
    npos = gt.npos
    ap = class_aps(tp_sorted, bounds, npos)
    tps = [tp_sorted[bounds[c] : bounds[c + 1]] for c in range(len(gt.classes))]

    result = EvalResult(
        classes=list(gt.classes),
        thresholds=thr,
        ap=ap,
        npos=[int(n) for n in npos],
        num_predictions=np.diff(bounds).tolist(),
        averages={},
        accounting=accounting,
        options={
            "threshold_preset": preset_name,
            "thresholds": thr,
            "exclude_videos": excluded,
            "ambiguous": ambiguous is not None,
            "unknown_videos": unknown_videos,
            "tie_rule": TIE_RULE,
        },
        gt_summary={
            "videos": len(gt.video_ids),
            "instances": len(gt.label),
            "classes": len(gt.classes),
        },
        _tp=tps,
    )
    result.averages = _averages(result.map, thr, avg_spec)
    return result
