"""1-D proposal generation and outer-inner contrast scoring on a sampled signal.

All functions work on sample indices; runs are half-open ``[start, end)``.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import find_peaks

from talkit.errors import InputError


def connected_runs(active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and ends of the maximal runs of True in a boolean vector."""
    a = np.asarray(active, dtype=bool).ravel()
    d = np.diff(np.concatenate([[0], a.view(np.int8), [0]]))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


def watershed_runs(
    signal: np.ndarray, active: np.ndarray, *, min_dynamic: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    """Split each active run at the valleys between its peaks (a 1-D watershed).

    Treat the signal as a landscape flooded from its peaks: every peak that rises at
    least ``min_dynamic`` above the saddle towards a higher peak (its prominence) seeds
    a basin, and two neighbouring basins meet at the lowest point between their peaks.
    That lowest stretch is the watershed line and belongs to neither run, so two
    plateaus joined by a dip, which a single threshold merges, come out apart.
    """
    sig = np.asarray(signal, dtype=np.float64).ravel()
    starts, ends = connected_runs(active)
    out_s: list[int] = []
    out_e: list[int] = []
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        seg = sig[a:b]
        if b - a < 3:
            out_s.append(a)
            out_e.append(b)
            continue
        floor = seg.min() - 1.0
        peaks, _ = find_peaks(
            np.concatenate([[floor], seg, [floor]]), prominence=(min_dynamic, None)
        )
        peaks = np.sort(peaks - 1)
        lo = 0
        for p, q in zip(peaks[:-1].tolist(), peaks[1:].tolist(), strict=True):
            window = seg[p : q + 1]
            lowest = np.flatnonzero(window == window.min())
            v0 = int(lowest[0])
            run = np.flatnonzero(np.diff(lowest) != 1)
            v1 = int(lowest[run[0]]) if len(run) else int(lowest[-1])
            out_s.append(a + lo)
            out_e.append(a + p + v0)
            lo = p + v1 + 1
        out_s.append(a + lo)
        out_e.append(b)
    return np.asarray(out_s, dtype=np.int64), np.asarray(out_e, dtype=np.int64)


def contrast_scores(
    signal: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    *,
    ratio: float = 0.25,
    extra: int = 0,
    minimum: int = 0,
    mode: str = "pooled",
    weight: float = 1.0,
    left_ceil: bool = False,
) -> np.ndarray:
    """Outer-inner contrast of each run: mean inside minus ``weight`` × the outer term.

    Each side's window has ``max(minimum, floor(ratio·len) + extra)`` samples, clipped at
    the ends of the signal; with ``left_ceil`` the left one rounds up instead (BaSNet's
    code truncates ``start − ratio·len``, which rounds the window up). The outer term is

    - ``pooled`` (BaSNet): the mean over both windows' samples together;
    - ``mean_of_sides`` (D2-Net): the mean of the non-empty sides' means;
    - ``sum`` (DGAM): left mean + right mean, an empty side counting 0;

    and 0 when both windows are empty.
    """
    sig = np.asarray(signal, dtype=np.float64).ravel()
    s = np.asarray(starts, dtype=np.int64)
    e = np.asarray(ends, dtype=np.int64)
    n = len(sig)
    prefix = np.concatenate([[0.0], np.cumsum(sig)])
    length = e - s
    if np.any(length <= 0):
        raise InputError("proposal runs must have positive length")
    inner = (prefix[e] - prefix[s]) / length
    w = np.maximum(minimum, np.floor(ratio * length + 1e-9).astype(np.int64) + extra)
    wl = w
    if left_ceil:
        wl = np.maximum(minimum, np.ceil(ratio * length - 1e-9).astype(np.int64) + extra)
    ls, re = np.maximum(0, s - wl), np.minimum(n, e + w)
    nl, nr = s - ls, re - e
    sum_l, sum_r = prefix[s] - prefix[ls], prefix[re] - prefix[e]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_l = np.where(nl > 0, sum_l / np.maximum(nl, 1), 0.0)
        mean_r = np.where(nr > 0, sum_r / np.maximum(nr, 1), 0.0)
    if mode == "pooled":
        outer = np.where(nl + nr > 0, (sum_l + sum_r) / np.maximum(nl + nr, 1), 0.0)
    elif mode == "mean_of_sides":
        sides = (nl > 0).astype(np.float64) + (nr > 0)
        outer = np.where(sides > 0, (mean_l + mean_r) / np.maximum(sides, 1), 0.0)
    elif mode == "sum":
        outer = mean_l + mean_r
    else:
        raise InputError(
            f"unknown outer contrast mode {mode!r}", hint="pooled, mean_of_sides or sum"
        )
    return inner - weight * outer
