"""From a class activation sequence (CAS) to detections in seconds.

BaSNet, LGBM-Net, DGAM and D2-Net differ at inference only in the parameters of one
pipeline, so it is written once here and each method's recipe is a preset
(:mod:`talkit.wtal_heads.evaluation.postprocess_presets`)::

    class scores ─ select classes (threshold | relative-to-max | top-k)
    CAS (T, C) ──┬─ [min-max per class] ─ [upsample ×f] ─────────────── score signal
                 └─ threshold signal = a·CAS + b·attention² ─ [Gaussian] ─┐
                    proposals: connected runs at each threshold | watershed per level
                    score = inner mean − outer contrast [+ w·class score], filter
                    snippet index → seconds (timestamps) ─ per-class NMS (hard | soft)

Times: row ``i`` of the CAS covers ``[b_i, b_{i+1}]`` where ``b_0`` is the first
snippet's start, ``b_T`` the last one's end and ``b_i`` the midpoint between snippet
``i-1``'s end and snippet ``i``'s start (the shared edge for back-to-back snippets, the
middle of the overlap or gap otherwise). Upsampling splits each row's interval evenly.

The ``basnet`` preset matches BaSNet's code step by step (see
:mod:`~talkit.wtal_heads.evaluation.postprocess_presets`); its deliberate departures are
that a video whose only selected class has index 0 still gets proposals, a class with no
active sample gets no proposal where the reference code crashes, and NMS visits equal
scores in input order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter1d

from talkit.errors import InputError
from talkit.wtal_heads.evaluation.detections import DetectionSet
from talkit.wtal_heads.evaluation.nms import nms
from talkit.wtal_heads.evaluation.postprocess_config import PostprocessConfig
from talkit.wtal_heads.evaluation.postprocess_presets import PRESETS, get_preset
from talkit.wtal_heads.evaluation.proposals import connected_runs, contrast_scores, watershed_runs

__all__ = [
    "PRESETS",
    "PostprocessConfig",
    "VideoCAS",
    "cas_to_detections",
    "cell_edges",
    "detect_videos",
    "get_preset",
    "merge_detections",
    "minmax_normalize",
    "select_classes",
    "topk_mean",
    "upsample",
]


def select_classes(
    scores: np.ndarray,
    *,
    rule: str = "threshold",
    value: float = 0.25,
    inclusive: bool = True,
    fallback_argmax: bool = False,
    topk: int = 2,
    floor_high: float | None = None,
) -> np.ndarray:
    """Indices of the classes a video is predicted to contain.

    ``threshold``: score >= value (or > value); ``relative``: score above value × max and
    positive; ``topk``: the ``int(value)`` best; ``topk_floor``: scores above both the
    floor (``value``, or ``floor_high`` when some score exceeds it) and the
    ``topk + 1``-th best score, so at most ``topk`` classes (D2-Net on ActivityNet). With
    ``fallback_argmax`` an empty selection becomes the best class alone.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    if rule == "threshold":
        keep = s >= value if inclusive else s > value
    elif rule == "relative":
        cut = value * s.max() if len(s) else 0.0
        keep = ((s >= cut) if inclusive else (s > cut)) & (s > 0)
    elif rule == "topk":
        k = max(0, min(int(value), len(s)))
        keep = np.zeros(len(s), dtype=bool)
        keep[np.argsort(-s, kind="stable")[:k]] = True
    elif rule == "topk_floor":
        floor = value
        if floor_high is not None and np.any(s > floor_high):
            floor = floor_high
        if len(s) > topk:
            floor = max(floor, float(np.sort(s)[-(topk + 1)]))
        keep = s > floor
    else:
        raise InputError(
            f"unknown class selection rule {rule!r}",
            hint="threshold, relative, topk or topk_floor",
        )
    idx = np.flatnonzero(keep)
    if len(idx) == 0 and fallback_argmax and len(s):
        idx = np.array([int(np.argmax(s))])
    return idx


def topk_mean(cas: np.ndarray, *, divisor: int = 8) -> np.ndarray:
    """Video-level class scores: the mean of the top ``max(1, T // divisor)`` per class."""
    cas = np.asarray(cas, dtype=np.float64)
    k = max(1, cas.shape[0] // divisor)
    return np.sort(cas, axis=0)[-k:].mean(axis=0)


def minmax_normalize(x: np.ndarray, *, clamp: bool = False) -> np.ndarray:
    """Per-column min-max over time; a constant column becomes zeros.

    ``clamp``: BaSNet's variant. The min and the max are clamped at 0 first and a span
    that is not positive counts as 1, so a column that dips below 0 becomes ``x / max``
    (negative values stay negative) and one that never rises above 0 is left unchanged.
    """
    x = np.asarray(x, dtype=np.float64)
    lo, hi = x.min(axis=0, keepdims=True), x.max(axis=0, keepdims=True)
    if clamp:
        lo, hi = np.maximum(lo, 0.0), np.maximum(hi, 0.0)
        span = hi - lo
        return (x - lo) / np.where(span > 0, span, 1.0)
    span = hi - lo
    return np.where(span > 0, (x - lo) / np.where(span > 0, span, 1.0), 0.0)


def upsample(x: np.ndarray, factor: int, *, mode: str = "nearest") -> np.ndarray:
    """×``factor`` along time.

    - ``nearest`` repeats rows;
    - ``linear`` interpolates between row centres (sub-row centres at
      ``(k + 0.5) / factor``), holding the end values;
    - ``linear_start`` reads sample ``k`` at row position ``k / factor`` (row ``i``'s
      value at the start of its interval) and extends the last slope past the last row,
      as BaSNet's code does with ``interp1d(..., fill_value="extrapolate")``.
    """
    x = np.asarray(x, dtype=np.float64)
    if factor <= 1:
        return x
    if mode == "nearest" or (mode == "linear_start" and x.shape[0] == 1):
        return np.repeat(x, factor, axis=0)
    n = x.shape[0]
    if mode == "linear_start":
        pos = np.arange(n * factor) * (1.0 / factor)
        hi = np.clip(np.ceil(pos).astype(np.int64), 1, n - 1)
        lo = hi - 1
        frac = (pos - lo).reshape((-1,) + (1,) * (x.ndim - 1))
        return (x[hi] - x[lo]) * frac + x[lo]
    if mode != "linear":
        raise InputError(
            f"unknown upsampling mode {mode!r}", hint="nearest, linear or linear_start"
        )
    pos = (np.arange(n * factor) + 0.5) / factor - 0.5  # in row-centre coordinates
    pos = np.clip(pos, 0, n - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    w = (pos - lo).reshape((-1,) + (1,) * (x.ndim - 1))
    return x[lo] * (1 - w) + x[hi] * w


def cell_edges(timestamps: np.ndarray) -> np.ndarray:
    """(T + 1,) edges in seconds: row ``i`` covers ``[edges[i], edges[i + 1]]``."""
    ts = np.asarray(timestamps, dtype=np.float64)
    edges = np.empty(len(ts) + 1)
    edges[0], edges[-1] = ts[0, 0], ts[-1, 1]
    edges[1:-1] = (ts[:-1, 1] + ts[1:, 0]) / 2
    return edges


def _sample_times(edges: np.ndarray, factor: int, index: np.ndarray) -> np.ndarray:
    """Seconds at upsampled sample boundaries ``index`` (0 .. T·factor)."""
    row = np.minimum(index // factor, len(edges) - 2)
    frac = (index - row * factor) / factor
    return edges[row] + frac * (edges[row + 1] - edges[row])


def _check_inputs(
    cas: np.ndarray, timestamps: np.ndarray, class_scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cas = np.asarray(cas, dtype=np.float64)
    ts = np.asarray(timestamps, dtype=np.float64)
    cs = np.asarray(class_scores, dtype=np.float64).ravel()
    if cas.ndim != 2 or cas.shape[0] == 0:
        raise InputError(f"CAS must be a non-empty (T, C) array, got shape {cas.shape}")
    if ts.shape != (cas.shape[0], 2):
        raise InputError(
            f"timestamps must be (T, 2) = ({cas.shape[0]}, 2) seconds, got {ts.shape}",
            hint="one (start, end) row per CAS row, e.g. the store's timestamps array",
        )
    if cs.shape != (cas.shape[1],):
        raise InputError(f"class scores must have {cas.shape[1]} entries, got {cs.shape}")
    for name, arr in (("CAS", cas), ("timestamps", ts), ("class scores", cs)):
        if not np.isfinite(arr).all():
            raise InputError(
                f"{name} contain NaN or infinite values", hint="check the model output"
            )
    if np.any(ts[:, 1] < ts[:, 0]) or np.any(np.diff(ts[:, 0]) < 0):
        raise InputError("timestamps must have start <= end and non-decreasing starts")
    return cas, ts, cs


def cas_to_detections(
    cas: np.ndarray,
    timestamps: np.ndarray,
    class_scores: np.ndarray,
    config: PostprocessConfig | str = "basnet",
    *,
    classes: Sequence[str] | None = None,
    attention: np.ndarray | None = None,
    threshold_cas: np.ndarray | None = None,
    stream: str | None = None,
    ambiguous: Sequence[tuple[float, float]] = (),
) -> list[dict[str, Any]]:
    """Detections ``{label, score, segment: [start_s, end_s]}`` of one video, best first.

    - ``cas`` (T, C): the signal proposals are scored on (and thresholded on, unless
      ``threshold_cas`` gives another one, as DGAM does with each stream's own CAS).
    - ``timestamps`` (T, 2): each row's snippet (start, end) in seconds.
    - ``class_scores`` (C,): video-level scores for class selection and the score term.
    - ``attention`` (T,): foreground weight, for ``threshold_mix`` (DGAM's λ²).
    - ``stream``: picks ``config.stream_thresholds[stream]`` (DGAM: rgb / flow).
    - ``ambiguous``: the video's (start_s, end_s) Ambiguous intervals, for
      ``drop_ambiguous`` (D2-Net on THUMOS14).
    """
    cfg = get_preset(config) if isinstance(config, str) else config
    cas, ts, cs = _check_inputs(cas, timestamps, class_scores)
    n_rows, n_cls = cas.shape
    names = list(classes) if classes is not None else [str(c) for c in range(n_cls)]
    if len(names) != n_cls:
        raise InputError(f"{len(names)} class names given for a CAS with {n_cls} classes")
    thr_cas = cas if threshold_cas is None else np.asarray(threshold_cas, dtype=np.float64)
    if thr_cas.shape != cas.shape:
        raise InputError(f"threshold_cas must have the CAS shape {cas.shape}, got {thr_cas.shape}")
    att = None if attention is None else np.asarray(attention, dtype=np.float64).ravel()
    if att is not None and len(att) != n_rows:
        raise InputError(f"attention must have {n_rows} entries (one per CAS row), got {len(att)}")
    if cfg.threshold_mix[1] != 0 and att is None:
        raise InputError(
            f"preset {cfg.name!r} thresholds a·CAS + b·attention², but no attention was given",
            hint="pass attention=(T,) foreground weights",
        )
    thresholds = cfg.thresholds
    if stream is not None:
        if stream not in cfg.stream_thresholds:
            raise InputError(
                f"preset {cfg.name!r} has no thresholds for stream {stream!r}",
                hint=f"streams: {', '.join(cfg.stream_thresholds) or 'none'}",
            )
        thresholds = cfg.stream_thresholds[stream]

    selected = select_classes(
        cs,
        rule=cfg.class_rule,
        value=cfg.class_value,
        inclusive=cfg.class_inclusive,
        fallback_argmax=cfg.class_fallback_argmax,
        topk=cfg.class_topk,
        floor_high=cfg.class_floor_high,
    )
    if len(selected) == 0:
        return []
    f = max(1, int(cfg.upsample))
    score_sig = cas[:, selected]
    thr_sig = thr_cas[:, selected]
    if cfg.normalize:
        score_sig = minmax_normalize(score_sig, clamp=cfg.normalize_clamp)
        thr_sig = (
            score_sig
            if threshold_cas is None
            else minmax_normalize(thr_sig, clamp=cfg.normalize_clamp)
        )
    score_sig = upsample(score_sig, f, mode=cfg.upsample_mode)
    thr_sig = upsample(thr_sig, f, mode=cfg.upsample_mode)
    a, b = cfg.threshold_mix
    if (a, b) != (1.0, 0.0):
        thr_sig = a * thr_sig
        if b != 0 and att is not None:
            thr_sig = thr_sig + b * upsample(att, f, mode=cfg.upsample_mode)[:, None] ** 2
    if cfg.smooth_sigma > 0:
        thr_sig = gaussian_filter1d(thr_sig, sigma=cfg.smooth_sigma, axis=0)

    edges = cell_edges(ts)
    min_len = int(np.ceil(cfg.min_length * f - 1e-9))
    out: list[dict[str, Any]] = []
    for j, c in enumerate(selected):
        starts, ends, scores = _class_proposals(
            cfg, thresholds, thr_sig[:, j], score_sig[:, j], min_len
        )
        if len(starts) == 0:
            continue
        scores = scores + cfg.class_score_weight * (1.0 if cfg.class_score_binary else cs[c])
        if cfg.min_score is not None:
            ok = scores >= cfg.min_score
            starts, ends, scores = starts[ok], ends[ok], scores[ok]
        segs = np.stack([_sample_times(edges, f, starts), _sample_times(edges, f, ends)], axis=1)
        segs, scores = _suppress(cfg, segs, scores)
        if cfg.drop_ambiguous and len(ambiguous):
            ok = ~_overlaps_any(segs, ambiguous)
            segs, scores = segs[ok], scores[ok]
        out.extend(
            {"label": names[c], "score": float(sc), "segment": [float(s), float(e)]}
            for (s, e), sc in zip(segs, scores, strict=True)
        )
    out.sort(key=lambda d: -d["score"])
    if cfg.max_detections is not None:
        out = out[: cfg.max_detections]
    return out


def _class_proposals(
    cfg: PostprocessConfig,
    thresholds: Sequence[float],
    thr_sig: np.ndarray,
    score_sig: np.ndarray,
    min_len: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sample-index runs [start, end) and their contrast scores, over all thresholds."""
    all_s, all_e, all_sc = [], [], []
    for thr in thresholds:
        active = thr_sig >= thr if cfg.threshold_inclusive else thr_sig > thr
        if cfg.require_positive:
            active &= thr_sig > 0
        if cfg.generator == "watershed":
            s, e = watershed_runs(thr_sig, active, min_dynamic=cfg.watershed_min_dynamic)
        else:
            s, e = connected_runs(active)
        long_enough = (e - s) >= max(min_len, 1)
        s, e = s[long_enough], e[long_enough]
        if len(s) == 0:
            continue
        sig = score_sig * active if cfg.score_on_thresholded else score_sig
        all_s.append(s)
        all_e.append(e)
        all_sc.append(
            contrast_scores(
                sig,
                s,
                e,
                ratio=cfg.outer_ratio,
                extra=cfg.outer_extra,
                minimum=cfg.outer_min,
                mode=cfg.outer_mode,
                weight=cfg.outer_weight,
                left_ceil=cfg.outer_left_ceil,
            )
        )
    if not all_s:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0)
    return np.concatenate(all_s), np.concatenate(all_e), np.concatenate(all_sc)


def _overlaps_any(segs: np.ndarray, intervals: Sequence[tuple[float, float]]) -> np.ndarray:
    """True for each segment with a positive intersection with any interval."""
    iv = np.asarray(intervals, dtype=np.float64).reshape(-1, 2)
    inter = np.minimum(segs[:, None, 1], iv[None, :, 1]) - np.maximum(
        segs[:, None, 0], iv[None, :, 0]
    )
    return (inter > 0).any(axis=1)


def _suppress(
    cfg: PostprocessConfig, segs: np.ndarray, scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    if cfg.nms != "none" and len(scores):
        keep, scores = nms(
            segs,
            scores,
            iou=cfg.nms_iou,
            kind=cfg.nms,
            sigma=cfg.soft_nms_sigma,
            min_score=cfg.soft_nms_min_score,
            length_offset=cfg.nms_length_offset,
        )
        segs = segs[keep]
    if cfg.relative_keep > 0 and len(scores):
        ok = scores >= cfg.relative_keep * scores.max()
        segs, scores = segs[ok], scores[ok]
    return segs, scores


def merge_detections(
    *per_stream: list[dict[str, Any]], nms_iou: float = 0.5, kind: str = "hard"
) -> list[dict[str, Any]]:
    """Union several detection lists of one video and run per-class NMS (DGAM's fusion)."""
    by_label: dict[str, list[dict[str, Any]]] = {}
    for dets in per_stream:
        for d in dets:
            by_label.setdefault(d["label"], []).append(d)
    out: list[dict[str, Any]] = []
    for label, dets in by_label.items():
        segs = np.array([d["segment"] for d in dets], dtype=np.float64)
        scores = np.array([d["score"] for d in dets], dtype=np.float64)
        keep, new_scores = nms(segs, scores, iou=nms_iou, kind=kind)
        out.extend(
            {"label": label, "score": float(sc), "segment": segs[i].tolist()}
            for i, sc in zip(keep, new_scores, strict=True)
        )
    out.sort(key=lambda d: -d["score"])
    return out


@dataclass
class VideoCAS:
    """A head's output on one video: what :func:`detect_videos` needs."""

    video_id: str
    class_scores: np.ndarray  # (C,)
    cas: np.ndarray  # (T, C)
    times: np.ndarray  # (T, 2) seconds
    attention: np.ndarray | None = None  # (T,)
    threshold_cas: np.ndarray | None = None  # (T, C), when thresholding uses another signal
    ambiguous: Sequence[tuple[float, float]] = ()  # THUMOS14 Ambiguous intervals, seconds
    # Per-stream outputs (DGAM): each is detected with ``stream=`` its name, then merged.
    streams: dict[str, VideoCAS] | None = None


def _video_detections(
    v: VideoCAS, classes: Sequence[str], cfg: PostprocessConfig, stream: str | None
) -> list[dict[str, Any]]:
    try:
        return cas_to_detections(
            v.cas,
            v.times,
            v.class_scores,
            cfg,
            classes=classes,
            attention=v.attention,
            threshold_cas=v.threshold_cas,
            stream=stream,
            ambiguous=v.ambiguous,
        )
    except InputError as exc:
        raise InputError(f"video {v.video_id}: {exc.message}", hint=exc.hint) from exc


def detect_videos(
    videos: Iterable[VideoCAS],
    classes: Sequence[str],
    config: PostprocessConfig | str = "basnet",
    *,
    stream: str | None = None,
) -> DetectionSet:
    """Run :func:`cas_to_detections` on every video and collect one :class:`DetectionSet`."""
    cfg = get_preset(config) if isinstance(config, str) else config
    records: list[dict[str, Any]] = []
    for v in videos:
        if v.streams:  # each stream with its own thresholds, then union and NMS (DGAM)
            per = [_video_detections(sv, classes, cfg, name) for name, sv in v.streams.items()]
            dets = merge_detections(*per, nms_iou=cfg.nms_iou, kind=cfg.nms)
        else:
            dets = _video_detections(v, classes, cfg, stream)
        records.extend({"video": v.video_id, **d} for d in dets)
    return DetectionSet.from_records(records, source=f"post-processing {cfg.name}")
