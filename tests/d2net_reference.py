"""D2-Net's detection recipe restated loop by loop, for one video (THUMOS14 and ActivityNet).

Written from the authors' ``detectionMAP.getDetections`` / ``nms_apply`` /
``filter_segments`` code path in plain Python (lists, integer snippet index sets), without
talkit's vectorised pipeline, so a test can compare the two on the same CAS. Proposals are
``(class, start, end, score)`` in snippet indices, ``[start, end)``.
"""

from __future__ import annotations

import numpy as np


def reference_class_scores(pred: np.ndarray, activity_net: bool) -> np.ndarray:
    """Mean of the top max(1, int(T/8)) (T/4 on ActivityNet) per class, by sorting."""
    t = pred.shape[0]
    end = max(1, int(t / 4)) if activity_net else max(1, int(t / 8))
    ranked = -np.sort(-pred, axis=0)
    return ranked[:end].mean(axis=0)


def reference_selected(c_s: np.ndarray, activity_net: bool) -> np.ndarray:
    if not activity_net:
        return (c_s > np.max(c_s) / 2) * (c_s > 0)
    act_th = 1 if np.sum(c_s > 1) else 0.5
    third = c_s[np.argsort(c_s)[-3]]
    return c_s > max(act_th, third)


def reference_nms(props: list[list], iou_th: float = 0.3) -> list[list]:
    """Greedy NMS over snippet index sets; equal scores: the later-sorted one first."""
    todo = [props[i] for i in np.argsort([p[3] for p in props], kind="stable")]
    out = []
    while todo:
        best = todo.pop()
        out.append(best)
        a = set(range(best[1], best[2]))
        rest = []
        for p in todo:
            b = set(range(p[1], p[2]))
            if len(a & b) / len(a | b) < iou_th:
                rest.append(p)
        todo = rest
    return out


def reference_video(
    pred: np.ndarray,
    *,
    activity_net: bool = False,
    ambiguous: list[tuple[float, float]] = (),
    snippets_per_second: float = 25 / 16,
) -> list[tuple[int, int, int, float]]:
    """All detections of one video, each ``(class, start, end, score)``."""
    c_s = reference_class_scores(pred, activity_net)
    selected = reference_selected(c_s, activity_net)
    out: list[tuple[int, int, int, float]] = []
    for c in range(pred.shape[1]):
        if not selected[c]:
            continue
        tmp = pred[:, c]
        props = []
        for k in range(1, 20):
            thr = k / 40
            on = [0] + [int(v > thr) for v in tmp] + [0]
            starts = [i for i in range(1, len(on)) if on[i] - on[i - 1] == 1]
            ends = [i for i in range(1, len(on)) if on[i] - on[i - 1] == -1]
            for s, e in zip(starts, ends, strict=True):
                s, e = s - 1, e - 1  # back to snippet indices
                if e - s < 2:
                    continue
                lt = max(1, int((e - s) / 4))
                sides = []
                if max(0, s - lt) < s:
                    sides.append(np.mean(tmp[max(0, s - lt) : s]))
                if min(e + lt, len(tmp)) > e:
                    sides.append(np.mean(tmp[e : min(e + lt, len(tmp))]))
                inner = np.mean(tmp[s:e])
                if sides:
                    outer = sides[0] if len(sides) == 1 else (sides[0] + sides[1]) / 2
                    if (outer - inner + 1) / 2 <= 0.7:
                        props.append([c, s, e, inner - outer])
                else:
                    props.append([c, s, e, inner])
        kept = reference_nms(props)
        if kept:
            best = kept[0][3]
            kept = [p for p in kept if p[3] >= 0.1 * best]
        for p in kept:
            pd = set(range(p[1], p[2]))
            hit = False
            for a, b in ambiguous:
                gt = set(range(round(a * snippets_per_second), round(b * snippets_per_second)))
                if len(gt & pd) > 0:
                    hit = True
            if not hit:
                out.append((p[0], p[1], p[2], float(p[3])))
    return out
