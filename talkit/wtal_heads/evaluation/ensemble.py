"""Combining several models' outputs on the same videos (LGBM-Net's ensembles).

Two ways, both over members that each saw one feature set:

- ``merge``: every member's detections of a video pooled, then per-class NMS
  (:func:`merge_detection_sets`). Members need not share a time grid.
- ``average``: the members' class scores, CAS and attention averaged per video before
  post-processing (:func:`average_outputs`); a member's CAS is resampled onto the first
  member's positions by linear interpolation over time, so feature sets with other
  strides still line up.

The LGBM-Net report does not say how its ensemble combined models; merging the
detections is the natural reading, and averaging is offered to compare against it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from talkit.errors import InputError
from talkit.wtal_heads.evaluation.detections import DetectionSet
from talkit.wtal_heads.evaluation.nms import nms
from talkit.wtal_heads.evaluation.postprocess import VideoCAS

ENSEMBLE_MODES: tuple[str, ...] = ("merge", "average")


def merge_detection_sets(
    sets: Sequence[DetectionSet], *, iou: float = 0.5, kind: str = "hard"
) -> DetectionSet:
    """Pool detection sets and run NMS per video and class (best first within each)."""
    if not sets:
        raise InputError("no detection sets to merge", hint="give at least one member")
    video = np.concatenate([s.video for s in sets])
    label = np.concatenate([s.label for s in sets])
    segments = np.concatenate([s.segments for s in sets])
    scores = np.concatenate([s.score for s in sets])
    groups: dict[tuple[str, str], list[int]] = {}
    for i, key in enumerate(zip(video.tolist(), label.tolist(), strict=True)):
        groups.setdefault(key, []).append(i)
    records = []
    for (vid, lab), idx in groups.items():
        rows = np.asarray(idx)
        keep, kept_scores = nms(segments[rows], scores[rows], iou=iou, kind=kind)
        records.extend(
            {"video": vid, "label": lab, "segment": segments[rows[k]].tolist(), "score": float(sc)}
            for k, sc in zip(keep, kept_scores, strict=True)
        )
    return DetectionSet.from_records(records, source="ensemble (merged detections, NMS)")


def _on_grid(values: np.ndarray, times: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """``values`` (N, ...) given at ``times`` (N, 2), read at the centres of ``grid`` (M, 2)."""
    src = times.mean(axis=1)
    dst = grid.mean(axis=1)
    if len(src) == len(dst) and np.allclose(src, dst, rtol=0, atol=1e-9):
        return values
    flat = values.reshape(len(values), -1)
    out = np.stack([np.interp(dst, src, flat[:, j]) for j in range(flat.shape[1])], axis=1)
    return out.reshape((len(dst), *values.shape[1:]))


def average_outputs(
    members: Sequence[Sequence[VideoCAS]], weights: Sequence[float] | None = None
) -> list[VideoCAS]:
    """Per video, the (weighted) mean of the members' class scores, CAS and attention.

    Every member must cover the same videos with the same number of classes; the result
    uses the first member's times.
    """
    if not members:
        raise InputError("no ensemble members to average", hint="give at least one member")
    w = np.ones(len(members)) if weights is None else np.asarray(weights, dtype=np.float64)
    if len(w) != len(members) or np.any(w < 0) or w.sum() <= 0:
        raise InputError(
            f"ensemble weights {list(w)} do not fit {len(members)} members",
            hint="one non-negative weight per member, not all zero",
        )
    w = w / w.sum()
    by_id = [{v.video_id: v for v in m} for m in members]
    first = members[0]
    out: list[VideoCAS] = []
    for ref in first:
        parts = []
        for k, table in enumerate(by_id):
            v = table.get(ref.video_id)
            if v is None:
                raise InputError(
                    f"ensemble member {k + 1} has no output for video {ref.video_id}",
                    hint="predict every member on the same split",
                )
            if v.cas.shape[1] != ref.cas.shape[1]:
                raise InputError(
                    f"ensemble member {k + 1} has {v.cas.shape[1]} classes, member 1 has "
                    f"{ref.cas.shape[1]}",
                    hint="ensemble models trained on the same class list",
                )
            parts.append(v)
        cas = sum(wk * _on_grid(p.cas, p.times, ref.times) for wk, p in zip(w, parts, strict=True))
        scores = sum(wk * p.class_scores for wk, p in zip(w, parts, strict=True))
        att = None
        if all(p.attention is not None for p in parts):
            att = sum(
                wk * _on_grid(p.attention, p.times, ref.times)  # type: ignore[arg-type]
                for wk, p in zip(w, parts, strict=True)
            )
        out.append(
            VideoCAS(
                video_id=ref.video_id,
                class_scores=np.asarray(scores),
                cas=np.asarray(cas),
                times=ref.times,
                attention=None if att is None else np.asarray(att),
                ambiguous=ref.ambiguous,
            )
        )
    return out
