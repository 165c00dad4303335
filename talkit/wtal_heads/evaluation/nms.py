"""Non-maximum suppression of temporal segments in seconds: hard and soft (Gaussian, linear)."""

from __future__ import annotations

import numpy as np

from talkit.errors import InputError
from talkit.wtal_heads.evaluation.tiou import segment_tiou


def nms(
    segments: np.ndarray,
    scores: np.ndarray,
    *,
    iou: float = 0.5,
    kind: str = "hard",
    sigma: float = 0.5,
    min_score: float = 1e-3,
    length_offset: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices kept (best first) and their scores.

    - ``hard``: visit by descending score (ties in input order); drop every later segment
      whose tIoU with a kept one is >= ``iou``.
    - ``soft`` (Gaussian soft-NMS): after keeping the best, multiply the others' scores by
      ``exp(-tIoU² / sigma)``; segments that fall under ``min_score`` are dropped.
    - ``linear`` (linear soft-NMS): multiply by ``1 - tIoU`` where tIoU >= ``iou``.

    ``length_offset`` is added to every length and intersection in the tIoU
    (:func:`~talkit.wtal_heads.evaluation.tiou.pair_tiou`); BaSNet's NMS uses 1.
    """
    segs = np.asarray(segments, dtype=np.float64).reshape(-1, 2)
    sc = np.asarray(scores, dtype=np.float64).ravel().copy()
    if len(segs) != len(sc):
        raise InputError(f"{len(segs)} segments but {len(sc)} scores given to NMS")
    if kind == "hard":
        order = np.argsort(-sc, kind="stable")
        alive = np.ones(len(sc), dtype=bool)
        keep: list[int] = []
        for i in order:
            if not alive[i]:
                continue
            keep.append(int(i))
            alive &= segment_tiou(segs[i], segs, length_offset=length_offset) < iou
        idx = np.asarray(keep, dtype=np.int64)
        return idx, sc[idx]
    if kind not in ("soft", "linear"):
        raise InputError(f"unknown NMS kind {kind!r}", hint="hard, soft or linear")
    remaining = np.arange(len(sc))
    keep_idx: list[int] = []
    keep_sc: list[float] = []
    while len(remaining):
        best = int(np.argmax(sc[remaining]))  # first of equal maxima: input order
        i = int(remaining[best])
        keep_idx.append(i)
        keep_sc.append(float(sc[i]))
        remaining = np.delete(remaining, best)
        if not len(remaining):
            break
        t = segment_tiou(segs[i], segs[remaining], length_offset=length_offset)
        if kind == "soft":
            sc[remaining] *= np.exp(-(t**2) / sigma)
        else:
            sc[remaining] *= np.where(t >= iou, 1.0 - t, 1.0)
        remaining = remaining[sc[remaining] >= min_score]
    return np.asarray(keep_idx, dtype=np.int64), np.asarray(keep_sc)
