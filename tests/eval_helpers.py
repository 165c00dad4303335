"""Builders and a plain reference loop shared by tests/test_eval*.py and test_postprocess*.py."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

import numpy as np

from talkit.datasets.model import Dataset, Segment, Video
from talkit.wtal_heads.evaluation.detections import DetectionSet


def make_dataset(
    gt: dict[str, Sequence[tuple[str, float, float]]],
    *,
    classes: Sequence[str] | None = None,
    subset: str = "test",
) -> Dataset:
    """A Dataset from {video: [(label, start, end), ...]}."""
    labels = sorted({lab for segs in gt.values() for lab, _, _ in segs})
    return Dataset(
        name="toy",
        classes=list(classes) if classes is not None else labels,
        videos={
            vid: Video(
                id=vid,
                subset=subset,
                annotations=[Segment(label=lab, start_s=s, end_s=e) for lab, s, e in segs],
            )
            for vid, segs in gt.items()
        },
    )


def make_detections(rows: Iterable[tuple[str, str, float, float, float]]) -> DetectionSet:
    """A DetectionSet from (video, label, start, end, score) rows, in this input order."""
    return DetectionSet.from_records(
        {"video": v, "label": lab, "segment": [s, e], "score": sc} for v, lab, s, e, sc in rows
    )


def gt_as_detections(dataset: Dataset, *, score: float = 1.0) -> DetectionSet:
    return make_detections(
        (vid, seg.label, seg.start_s, seg.end_s, score)
        for vid, v in dataset.videos.items()
        for seg in v.annotations
    )


def reference_ap(
    dataset: Dataset, dets: DetectionSet, thresholds: Sequence[float]
) -> dict[str, np.ndarray]:
    """The description of evaluation.md, one prediction and one GT at a time.

    Written independently of talkit's vectorised code: predictions by descending score
    (stable), GT by descending tIoU (stable argsort reversed), first below threshold
    ends the search, locked GT skipped.
    """
    gt: dict[str, dict[str, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    for vid, video in dataset.videos.items():
        for seg in video.annotations:
            gt[seg.label][vid].append((seg.start_s, seg.end_s))
    labels, videos = dets.label.tolist(), dets.video.tolist()
    out: dict[str, np.ndarray] = {}
    for c, by_video in gt.items():
        npos = sum(len(s) for s in by_video.values())
        idx = sorted((i for i in range(len(dets)) if labels[i] == c), key=lambda i: -dets.score[i])
        locked = {
            (t, v, j): False
            for t in range(len(thresholds))
            for v, s in by_video.items()
            for j in range(len(s))
        }
        tp = np.zeros((len(thresholds), len(idx)))
        for n, i in enumerate(idx):
            segs = by_video.get(videos[i])
            if not segs:
                continue
            s, e = dets.segments[i]
            tiou = []
            for gs, ge in segs:
                inter = max(0.0, min(e, ge) - max(s, gs))
                union = (ge - gs) + (e - s) - inter
                tiou.append(inter / union if union > 0 else 0.0)
            visit = np.argsort(np.array(tiou), kind="stable")[::-1]
            for t, thr in enumerate(thresholds):
                for j in visit:
                    if tiou[j] < thr:
                        break
                    if locked[(t, videos[i], j)]:
                        continue
                    locked[(t, videos[i], j)] = True
                    tp[t, n] = 1
                    break
        ap = np.zeros(len(thresholds))
        if idx:
            for t in range(len(thresholds)):
                tpc = np.cumsum(tp[t])
                fpc = np.cumsum(1 - tp[t])
                rec, prec = tpc / npos, tpc / (tpc + fpc)
                mprec = np.hstack([[0], prec, [0]])
                mrec = np.hstack([[0], rec, [1]])
                for q in range(len(mprec) - 2, -1, -1):
                    mprec[q] = max(mprec[q], mprec[q + 1])
                w = np.where(mrec[1:] != mrec[:-1])[0] + 1
                ap[t] = np.sum((mrec[w] - mrec[w - 1]) * mprec[w])
        out[c] = ap
    return out


def snippet_times(n: int, *, stride_s: float = 0.64, length_s: float | None = None) -> np.ndarray:
    """(n, 2) snippet timestamps: starts every ``stride_s``, each ``length_s`` long."""
    length = stride_s if length_s is None else length_s
    starts = np.arange(n) * stride_s
    return np.stack([starts, starts + length], axis=1)
