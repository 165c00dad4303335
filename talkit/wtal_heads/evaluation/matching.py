"""The greedy ActivityNet matching and all-point AP, vectorised with numpy.

The greedy matching is sequential only *within* one (class, video) group, so all groups
advance together: round ``r`` handles the ``r``-th contending prediction of every group
at once, for all thresholds at once. Only predictions with some GT at tIoU >= the
smallest threshold contend, so the number of rounds is the largest number of contending
predictions in one group, not the number of predictions. See
:mod:`talkit.wtal_heads.evaluation.mean_ap` for the semantics and the tie rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from talkit.errors import InputError
from talkit.wtal_heads.evaluation.tiou import pair_tiou


def interpolated_ap(precision: np.ndarray, recall: np.ndarray) -> float:
    """All-point interpolated AP (VOC 2011): the area under the monotone PR envelope."""
    mprec = np.concatenate([[0.0], precision, [0.0]])
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mprec = np.maximum.accumulate(mprec[::-1])[::-1]
    idx = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
    return float(np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx]))


def stable_int_argsort(values: np.ndarray) -> np.ndarray:
    """Stable argsort; non-negative ints below 2**15 go through numpy's radix sort."""
    if len(values) and values.min() >= 0 and values.max() < 2**15:
        return np.argsort(values.astype(np.int16), kind="stable")
    return np.argsort(values, kind="stable")


def _overlapping_pairs(
    pred_group: np.ndarray,
    pred_segments: np.ndarray,
    pred_order: np.ndarray,
    gt_group: np.ndarray,
    gt_segments: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(prediction, GT) index pairs of the same group that may overlap, in ``pred_order``.

    Every pair with a positive intersection is returned (and maybe a few without; the
    caller filters on tIoU). GT sorted by ``key = dense_group * W + (start - t0)`` with
    ``W`` wider than the time span keeps groups apart; float addition is monotone, so with
    a slack of a few ulps the bounds are conservative: candidates of ``[s, e]`` run from
    the first GT whose running-max end key exceeds ``key(s)`` to the last GT starting
    before ``key(e)``.
    """
    groups, g_dense = np.unique(gt_group, return_inverse=True)
    t0 = min(pred_segments.min(), gt_segments.min())
    span = max(pred_segments.max(), gt_segments.max()) - t0
    width = span + 1.0
    slack = 16 * np.spacing(len(groups) * width + width) + np.spacing(1.0)
    g_off = g_dense.astype(np.float64) * width
    start_key = g_off + (gt_segments[:, 0] - t0)
    gt_order = np.argsort(start_key, kind="stable")
    start_sorted = start_key[gt_order]
    end_cummax = np.maximum.accumulate((g_off + (gt_segments[:, 1] - t0))[gt_order])

    if len(pred_group) and pred_group.min() >= 0 and max(pred_group.max(), groups[-1]) < 2**26:
        lut = np.zeros(int(max(pred_group.max(), groups[-1])) + 1, dtype=np.int64)
        lut[groups] = np.arange(len(groups))
        pos = lut[pred_group]  # a dense lookup beats a binary search per prediction
    else:
        pos = np.minimum(np.searchsorted(groups, pred_group), len(groups) - 1)
    has_gt = np.flatnonzero(groups[pos] == pred_group)
    # Queries grouped by group: binary searches then follow the same path (far faster).
    has_gt = has_gt[stable_int_argsort(pos[has_gt])]
    p_off = pos[has_gt].astype(np.float64) * width
    lo = np.zeros(len(pred_group), dtype=np.int64)
    count = np.zeros(len(pred_group), dtype=np.int64)
    lo[has_gt] = np.searchsorted(
        end_cummax, p_off + (pred_segments[has_gt, 0] - t0) - slack, side="right"
    )
    hi = np.searchsorted(start_sorted, p_off + (pred_segments[has_gt, 1] - t0) + slack, side="left")
    count[has_gt] = np.maximum(hi - lo[has_gt], 0)
    count, lo = count[pred_order], lo[pred_order]
    pair_pred = np.repeat(pred_order, count)
    first_pair = np.cumsum(count) - count
    offset = np.arange(len(pair_pred)) - np.repeat(first_pair, count)
    pair_gt = gt_order[np.repeat(lo, count) + offset]
    same = gt_group[pair_gt] == pred_group[pair_pred]
    return pair_pred[same], pair_gt[same]


def match_predictions(
    pred_group: np.ndarray,
    pred_segments: np.ndarray,
    pred_scores: np.ndarray,
    gt_group: np.ndarray,
    gt_segments: np.ndarray,
    thresholds: Sequence[float],
    *,
    order: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy ActivityNet matching of every prediction, at every threshold at once.

    ``*_group`` are integer keys of (class, video): a prediction can only match GT with
    the same key. Returns ``(order, tp)``: ``order`` lists the predictions by descending
    score (stable, so ties keep input order) and ``tp[i, t]`` says whether prediction
    ``i`` is a true positive at ``thresholds[t]``. A caller may pass its own ``order``
    (any order that sorts every group by descending score, ties in input order).
    """
    thr = np.asarray(thresholds, dtype=np.float64)
    n_pred, n_thr = len(pred_group), len(thr)
    pred_group = np.asarray(pred_group, dtype=np.int64)
    gt_group = np.asarray(gt_group, dtype=np.int64)
    if order is None:
        order = np.argsort(-np.asarray(pred_scores, dtype=np.float64), kind="stable")
    tp = np.zeros((n_pred, n_thr), dtype=bool)
    if n_pred == 0 or len(gt_group) == 0 or n_thr == 0:
        return order, tp
    if thr.min() <= 0:
        raise InputError(f"tIoU thresholds must be > 0, got {thr.min()}")
    ps = np.asarray(pred_segments, np.float64).reshape(-1, 2)
    gs = np.asarray(gt_segments, np.float64).reshape(-1, 2)

    # Pairs in rank order of their prediction; keep those reaching the lowest threshold.
    pair_pred, pair_gt = _overlapping_pairs(pred_group, ps, order, gt_group, gs)
    tiou = pair_tiou(ps[pair_pred, 0], ps[pair_pred, 1], gs[pair_gt, 0], gs[pair_gt, 1])
    keep = tiou >= thr.min()
    pair_pred, pair_gt, tiou = pair_pred[keep], pair_gt[keep], tiou[keep]
    if len(pair_pred) == 0:
        return order, tp
    starts = np.flatnonzero(np.r_[True, pair_pred[1:] != pair_pred[:-1]])
    sizes = np.diff(np.r_[starts, len(pair_pred)])

    # Within a prediction: descending tIoU, equal tIoU last-listed GT first.
    multi = np.flatnonzero(np.repeat(sizes > 1, sizes))
    if len(multi):
        seg_id = np.repeat(np.arange(len(starts)), sizes)[multi]
        by = multi[np.lexsort((-pair_gt[multi], -tiou[multi], seg_id))]
        pair_gt[multi], tiou[multi] = pair_gt[by], tiou[by]

    # Contenders in rank order; round = how many contenders of its group come before it.
    contenders = pair_pred[starts]
    c_group = pred_group[contenders]
    g_order = stable_int_argsort(c_group)
    g_sorted = c_group[g_order]
    g_first = np.flatnonzero(np.r_[True, g_sorted[1:] != g_sorted[:-1]])
    within = np.arange(len(g_sorted)) - np.repeat(g_first, np.diff(np.r_[g_first, len(g_sorted)]))
    c_round = np.empty(len(contenders), dtype=np.int64)
    c_round[g_order] = within
    pair_round = np.repeat(c_round, sizes)

    by_round = stable_int_argsort(pair_round)
    pair_pred, pair_gt, pair_round = pair_pred[by_round], pair_gt[by_round], pair_round[by_round]
    eligible_tiou = tiou[by_round][:, None] >= thr[None, :]
    seg_starts = np.flatnonzero(np.r_[True, pair_pred[1:] != pair_pred[:-1]])
    round_bounds = np.searchsorted(pair_round, np.arange(int(pair_round[-1]) + 2))
    seg_bounds = np.searchsorted(seg_starts, round_bounds)

    locked = np.zeros((len(gt_group), n_thr), dtype=bool)
    big = np.iinfo(np.int64).max
    position = np.arange(len(pair_pred))[:, None]
    for r in range(len(round_bounds) - 1):
        a, b = round_bounds[r], round_bounds[r + 1]
        gts = pair_gt[a:b]
        ok = eligible_tiou[a:b] & ~locked[gts]
        pos = np.where(ok, position[a:b], big)  # global pair positions of the eligible
        segs = seg_starts[seg_bounds[r] : seg_bounds[r + 1]]
        first = np.minimum.reduceat(pos, segs - a, axis=0)
        rows, cols = np.nonzero(first != big)
        if len(rows):
            locked[pair_gt[first[rows, cols]], cols] = True
            tp[pair_pred[segs[rows]], cols] = True
    return order, tp


def ap_from_matches(tp_sorted: np.ndarray, npos: int) -> np.ndarray:
    """AP per threshold from the (N, T) true-positive flags of score-sorted predictions."""
    return class_aps(tp_sorted, np.array([0, len(tp_sorted)]), np.array([npos]))[:, 0]


def class_aps(tp_sorted: np.ndarray, bounds: np.ndarray, npos: np.ndarray) -> np.ndarray:
    """(T, C) AP of every class from class-major, score-sorted (N, T) true-positive flags.

    Class ``c`` owns rows ``bounds[c]:bounds[c + 1]``. Only true positives are visited:
    recall changes exactly there, and the interpolated precision at a true positive (the
    best precision at or after it) is the best precision among the true positives at or
    after it, because precision only rises at true positives. The k-th true positive at
    position p has precision k / (p + 1) and recall k / npos, the very floats the
    reference computes from its cumulative sums, and each AP is ``np.sum`` over the same
    terms in the same order (the final ``(1 - recall) · 0`` included), so results are
    bit-identical to the reference's.
    """
    n_thr, n_cls = tp_sorted.shape[1], len(npos)
    ap = np.zeros((n_thr, n_cls))
    t_idx, n_idx = np.nonzero(np.ascontiguousarray(tp_sorted.T))  # row-major: by t, then n
    if len(t_idx) == 0:
        return ap  # no true positive anywhere: every AP is 0
    cls = np.searchsorted(bounds, n_idx, side="right") - 1
    key = t_idx * n_cls + cls
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    ends = np.r_[starts[1:], len(key)]
    k = (np.arange(len(key)) - np.repeat(starts, ends - starts) + 1).astype(np.float64)
    precision = k / (n_idx - bounds[cls] + 1).astype(np.float64)
    recall = k / np.asarray(npos, dtype=np.float64)[cls]
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        t, c = divmod(int(key[a]), n_cls)
        rec = recall[a:b]
        envelope = np.maximum.accumulate(precision[a:b][::-1])[::-1]
        terms = np.diff(rec, prepend=0.0) * envelope
        if rec[-1] != 1.0:
            terms = np.append(terms, (1.0 - rec[-1]) * 0.0)
        ap[t, c] = np.sum(terms)
    return ap


def average_precision(
    gt_videos: Sequence[Any],
    gt_segments: np.ndarray,
    pred_videos: Sequence[Any],
    pred_segments: np.ndarray,
    pred_scores: np.ndarray,
    thresholds: Sequence[float],
) -> np.ndarray:
    """AP of one class at each threshold, from plain arrays (videos are any hashable ids)."""
    key: dict[Any, int] = {}
    gt_key = np.array([key.setdefault(v, len(key)) for v in gt_videos], dtype=np.int64)
    pred_key = np.array([key.setdefault(v, len(key)) for v in pred_videos], dtype=np.int64)
    order, tp = match_predictions(
        pred_key,
        np.asarray(pred_segments, np.float64).reshape(-1, 2),
        np.asarray(pred_scores, np.float64),
        gt_key,
        np.asarray(gt_segments, np.float64).reshape(-1, 2),
        thresholds,
    )
    return ap_from_matches(tp[order], len(gt_key))
