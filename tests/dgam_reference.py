"""DGAM's detection recipe restated loop by loop for one video, both streams available.

Written from the authors' ``test_final`` / ``utils.get_wtCAM``, ``upgrade_resolution``,
``get_tempseg_list``, ``get_temp_proposal``, ``integrated_prop`` code path in plain numpy
and scipy (``interp1d``), without talkit's pipeline, so a test can compare the two on the
same stream outputs. Each snippet lasts ``dt`` seconds (uniform sampling); proposals are
``(class, score, start_s, end_s)``. The reference's ``pred.any()`` defect (a video whose
only class is 0 gets nothing) is not restated: methods.md tells us not to copy it.
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import interp1d
from scipy.ndimage import gaussian_filter1d


def _classes(probs: np.ndarray) -> list[int]:
    if probs.max() > 0.1:
        return [int(c) for c in np.where(probs > 0.1)[0]]
    return [int(np.argmax(probs))]


def _up(arr: np.ndarray, scale: int) -> np.ndarray:
    x = np.arange(arr.shape[0])
    f = interp1d(x, arr, kind="linear", axis=0, fill_value="extrapolate")
    return f(np.arange(0, arr.shape[0], 1 / scale))


def _stream(
    lam: np.ndarray,  # (T,)
    sig_own: np.ndarray,  # (T, C) σ(x Wᵀ) of this stream
    sig_other: np.ndarray,
    probs: np.ndarray,
    alpha: float,
    thr: float,
    dt: float,
    activity_net: bool,
    scale: int = 20,
) -> tuple[list[int], list[list[tuple[int, float, float, float]]]]:
    pred = _classes(probs)
    wt = lam[:, None] * sig_own
    sub = lam[:, None] * sig_other
    signal = wt[:, pred]
    score = (lam[:, None] * (alpha * wt + (1 - alpha) * sub))[:, pred]
    signal, score = _up(signal, scale), _up(score, scale)
    att = _up(lam, scale)
    props = []
    for i, c in enumerate(pred):
        mix = 0.8 * signal[:, i] + 0.2 * att * att
        if activity_net:
            mix = gaussian_filter1d(mix, sigma=25)
        pos = np.where(mix > thr)[0]
        out = []
        if len(pos):
            for g in np.split(pos, np.where(np.diff(pos) != 1)[0] + 1):
                n = len(score)
                left = 0.0
                if g[0] > 0:
                    left = np.mean(score[max(0, g[0] - g.size // 4 - 1) : g[0], i])
                right = 0.0
                if g[-1] < n - 1:
                    right = np.mean(score[g[-1] + 1 : min(n, g[-1] + 1 + g.size // 4 + 1), i])
                s = np.mean(score[g, i]) - 0.3 * (left + right)
                out.append((c, float(s), g[0] * dt / scale, (g[-1] + 1) * dt / scale))
        props.append(out)
    return pred, props


def _nms(props: list[tuple[int, float, float, float]], iou: float = 0.5) -> list:
    order = sorted(props, key=lambda p: -p[1])
    keep: list = []
    for p in order:
        ok = True
        for k in keep:
            inter = max(0.0, min(p[3], k[3]) - max(p[2], k[2]))
            union = (p[3] - p[2]) + (k[3] - k[2]) - inter
            if union > 0 and inter / union > iou:
                ok = False
                break
        if ok:
            keep.append(p)
    return keep


def reference_detections(
    streams: dict[str, dict[str, np.ndarray]],
    *,
    fusion: tuple[float, float],
    thresholds: tuple[float, float],
    dt: float,
    activity_net: bool = False,
) -> list[tuple[int, float, float, float]]:
    """``streams[s]`` holds ``lam`` (T,), ``sig`` (T, C) and ``probs`` (C,) for rgb, flow."""
    r, f = streams["rgb"], streams["flow"]
    r_pred, r_props = _stream(
        r["lam"], r["sig"], f["sig"], r["probs"], fusion[0], thresholds[0], dt, activity_net
    )
    f_pred, f_props = _stream(
        f["lam"], f["sig"], r["sig"], f["probs"], fusion[1], thresholds[1], dt, activity_net
    )
    out = []
    for c in sorted(set(r_pred) | set(f_pred)):
        if c in r_pred and c in f_pred:
            union = set(r_props[r_pred.index(c)]) | set(f_props[f_pred.index(c)])
            out.extend(_nms(list(union)))
        elif c in r_pred:
            out.extend(r_props[r_pred.index(c)])
        else:
            out.extend(f_props[f_pred.index(c)])
    return out
