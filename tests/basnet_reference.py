"""BaSNet's inference recipe restated from its authors' code path, one loop at a time.

Written for the tests, independently of talkit's vectorised pipeline, following the
steps of Pilhyeon/BaSNet-pytorch ``test.py`` and ``utils.py`` (minmax_norm,
upgrade_resolution, get_proposal_oic, grouping, nms) in plain numpy: binarise the class
scores, min-max with clamped ends, linear ×24 with extrapolation, zero the CAS under each
threshold, group consecutive active samples, outer-inner contrast with ``int()``-rounded
windows, + gamma × the binarised class score, per-class NMS with ``+1`` lengths.

Two flags keep the behaviours talkit departs from on purpose (both on by default):

- ``skip_only_class_zero``: a video whose selected classes are exactly ``[0]`` gets
  nothing (``pred.any()`` on class indices);
- ``crash_without_proposals``: a selected class with no active sample, or whose only
  active sample is sample 0, makes the reference raise IndexError (``temp_list.any()`` on
  sample indices, then ``proposals[i][0][0]`` on an empty list).
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import interp1d

ACT_THRESH = np.arange(0.0, 0.25, 0.025)


def reference_minmax(cas: np.ndarray) -> np.ndarray:
    """Per column: max and min clamped at 0, a span <= 0 replaced by 1."""
    out = np.empty_like(cas, dtype=np.float64)
    for c in range(cas.shape[1]):
        hi = max(float(cas[:, c].max()), 0.0)
        lo = max(float(cas[:, c].min()), 0.0)
        delta = hi - lo
        if delta <= 0:
            delta = 1.0
        out[:, c] = (cas[:, c] - lo) / delta
    return out


def reference_nms(proposals: list[list[float]], thresh: float) -> list[list[float]]:
    """[class, score, start, end] rows; lengths are end − start + 1; argsort()[::-1] order."""
    if not proposals:
        return []
    arr = np.array(proposals, dtype=np.float64)
    order = list(arr[:, 1].argsort()[::-1])
    keep = []
    while order:
        i = order[0]
        keep.append(proposals[i])
        rest = []
        for j in order[1:]:
            inter = max(0.0, min(arr[i, 3], arr[j, 3]) - max(arr[i, 2], arr[j, 2]) + 1)
            area_i = arr[i, 3] - arr[i, 2] + 1
            area_j = arr[j, 3] - arr[j, 2] + 1
            if inter / (area_i + area_j - inter) < thresh:
                rest.append(j)
        order = rest
    return keep


def basnet_reference(
    cas_supp: np.ndarray,
    score_supp: np.ndarray,
    v_len: int,
    *,
    scale: int = 24,
    feature_fps: float = 25.0,
    class_thresh: float = 0.25,
    lambda_: float = 0.25,
    gamma: float = 0.2,
    nms_thresh: float = 0.7,
    reference_defects: bool = True,
    skip_only_class_zero: bool | None = None,
    crash_without_proposals: bool | None = None,
) -> list[tuple[int, float, float, float]]:
    """(class, score, start_s, end_s) of one video; inputs (T, C+1) and (C+1,), background last.

    ``v_len`` is the video's snippet count: the T positions stretch over ``16·v_len/fps``
    seconds, as the reference's ``t_factor`` says. ``reference_defects`` is the default
    of both defect flags.
    """
    if skip_only_class_zero is None:
        skip_only_class_zero = reference_defects
    if crash_without_proposals is None:
        crash_without_proposals = reference_defects
    num_segments = cas_supp.shape[0]
    score = np.array(score_supp[:-1], dtype=np.float64)
    score[score < class_thresh] = 0.0
    score[score >= class_thresh] = 1.0
    pred = np.where(score > class_thresh)[0]
    if len(pred) == 0 or (skip_only_class_zero and not pred.any()):
        return []
    cas = reference_minmax(cas_supp)[:, pred].reshape(num_segments, -1, 1)
    f = interp1d(np.arange(num_segments), cas, kind="linear", axis=0, fill_value="extrapolate")
    cas = f(np.arange(0, num_segments, 1 / scale))
    t_factor = (16 * v_len) / (scale * num_segments * feature_fps)

    by_class: dict[int, list[list[float]]] = {}
    for thr in ACT_THRESH:
        temp = cas.copy()
        temp[np.where(temp[:, :, 0] < thr)] = 0
        for i, c in enumerate(pred):
            positions = np.where(temp[:, i, 0] > 0)[0]
            if crash_without_proposals and not positions.any():
                raise IndexError(f"class {c} has no proposal at threshold {thr}")
            if len(positions) == 0:
                continue
            groups = np.split(positions, np.where(np.diff(positions) != 1)[0] + 1)
            for g in groups:
                inner = float(np.mean(temp[g, i, 0]))
                n = len(g)
                outer_s = max(0, int(g[0] - lambda_ * n))
                outer_e = min(int(temp.shape[0] - 1), int(g[-1] + lambda_ * n))
                outer = list(range(outer_s, int(g[0]))) + list(range(int(g[-1] + 1), outer_e + 1))
                outer_score = float(np.mean(temp[outer, i, 0])) if outer else 0.0
                s = inner - outer_score + gamma * score[c]
                by_class.setdefault(int(c), []).append(
                    [int(c), s, g[0] * t_factor, (g[-1] + 1) * t_factor]
                )
    out = []
    for c, props in by_class.items():
        out += [(c, p[1], p[2], p[3]) for p in reference_nms(props, nms_thresh)]
    return out
