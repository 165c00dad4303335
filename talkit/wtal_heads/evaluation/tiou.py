"""Temporal IoU of segments in seconds: the one definition the evaluator and NMS share."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pair_tiou(
    s1: np.ndarray, e1: np.ndarray, s2: np.ndarray, e2: np.ndarray, *, length_offset: float = 0.0
) -> np.ndarray:
    """Elementwise tIoU of ``[s1, e1]`` and ``[s2, e2]`` (broadcast); 0/0 counts as 0.

    ``inter = max(0, min(e1, e2) − max(s1, s2) + o)`` and ``union = (e1 − s1 + o) +
    (e2 − s2 + o) − inter`` with ``o = length_offset``. The evaluator uses ``o = 0``
    (continuous seconds, the ActivityNet definition); BaSNet's NMS counts segment lengths
    as ``end − start + 1`` (a pixel-box convention applied to seconds), which is ``o = 1``.
    """
    s1, e1, s2, e2 = (np.asarray(a, dtype=np.float64) for a in (s1, e1, s2, e2))
    inter = np.maximum(np.minimum(e1, e2) - np.maximum(s1, s2) + length_offset, 0.0)
    union = (e2 - s2 + length_offset) + (e1 - s1 + length_offset) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        tiou = np.asarray(inter / union, dtype=np.float64)
    tiou[~np.isfinite(tiou)] = 0.0
    return tiou


def segment_tiou(
    segment: Sequence[float], candidates: np.ndarray, *, length_offset: float = 0.0
) -> np.ndarray:
    """tIoU of one ``[start, end]`` with each row of ``candidates`` (K, 2), in seconds."""
    cand = np.asarray(candidates, dtype=np.float64).reshape(-1, 2)
    return pair_tiou(
        float(segment[0]),
        float(segment[1]),
        cand[:, 0],
        cand[:, 1],
        length_offset=length_offset,
    )
