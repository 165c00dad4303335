"""PNG figures for looking at localization results: per-video timelines and PR curves.

Built on matplotlib's object API with the Agg canvas, so importing this module never
changes the global pyplot backend and works without a display.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from talkit.datasets.model import Segment
from talkit.wtal_heads.evaluation.mean_ap import EvalResult

_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, format="png", dpi=110)
    return path


def safe_filename(name: str) -> str:
    """A file-system-safe version of a class or video name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "unnamed"


def plot_video_timeline(
    video_id: str,
    ground_truth: Sequence[Segment],
    detections: Sequence[Mapping[str, Any]],
    path: str | Path,
    *,
    cas: np.ndarray | None = None,
    timestamps: np.ndarray | None = None,
    classes: Sequence[str] | None = None,
    top_k: int = 10,
) -> Path:
    """One video on a seconds axis: CAS of its GT classes, GT segments, top detections.

    ``cas`` (T, C) with ``timestamps`` (T, 2) and ``classes`` (C names) adds the CAS
    panel; without them the figure shows segments only (e.g. from a detections file).
    """
    gt_labels = list(dict.fromkeys(s.label for s in ground_truth))
    top = sorted(detections, key=lambda d: -float(d["score"]))[:top_k]
    labels = gt_labels + [d["label"] for d in top if d["label"] not in gt_labels]
    labels = list(dict.fromkeys(labels))
    color = {lab: _PALETTE[i % len(_PALETTE)] for i, lab in enumerate(labels)}
    with_cas = cas is not None and timestamps is not None and classes is not None
    fig = Figure(figsize=(11, 5.5 if with_cas else 3.8))
    axes = fig.subplots(2 if with_cas else 1, 1, sharex=True, squeeze=False)[:, 0]
    ax_seg = axes[-1]

    if with_cas:
        ax = axes[0]
        ts = np.asarray(timestamps, dtype=np.float64)
        centres = ts.mean(axis=1)
        names = list(classes)
        shown = [lab for lab in gt_labels if lab in names] or [
            names[int(np.argmax(np.asarray(cas).max(axis=0)))]
        ]
        for lab in shown:
            ax.plot(
                centres,
                np.asarray(cas)[:, names.index(lab)],
                color=color.get(lab, "k"),
                lw=1.2,
                label=lab,
            )
        ax.set_ylabel("CAS")
        ax.legend(loc="upper right", fontsize=8)
        ax.grid(alpha=0.3)

    rows = {lab: i for i, lab in enumerate(labels)}
    for seg in ground_truth:
        y = rows[seg.label]
        ax_seg.broken_barh(
            [(seg.start_s, seg.end_s - seg.start_s)], (y + 0.05, 0.4), color=color[seg.label]
        )
    best = max((float(d["score"]) for d in top), default=1.0) or 1.0
    ends = [s.end_s for s in ground_truth] + [float(d["segment"][1]) for d in top]
    starts = [s.start_s for s in ground_truth] + [float(d["segment"][0]) for d in top]
    span = (max(ends) - min(starts)) if ends else 1.0
    for d in top:
        s, e = (float(x) for x in d["segment"])
        y = rows[d["label"]]
        alpha = float(np.clip(float(d["score"]) / best, 0.15, 1.0)) if best > 0 else 0.5
        ax_seg.broken_barh(
            [(s, e - s)],
            (y + 0.5, 0.4),
            facecolor=color[d["label"]],
            alpha=alpha,
            edgecolor="k",
            lw=0.5,
        )
        if e - s >= 0.03 * span:
            ax_seg.text(s, y + 0.93, f"{float(d['score']):.2f}", fontsize=6, va="top")
    ax_seg.set_yticks([i + 0.5 for i in range(len(labels))])
    ax_seg.set_yticklabels(labels, fontsize=8)
    ax_seg.legend(
        handles=[
            Patch(facecolor="0.4", label="ground truth (lower)"),
            Patch(
                facecolor="0.4", alpha=0.5, edgecolor="k", label="detection (upper, alpha = score)"
            ),
        ],
        loc="best",
        fontsize=7,
    )
    ax_seg.set_ylim(0, max(1, len(labels)))
    ax_seg.set_xlabel("time (s)")
    ax_seg.grid(axis="x", alpha=0.3)
    axes[0].set_title(f"{video_id}: ground truth and top-{top_k} detections")
    fig.tight_layout()
    return _save(fig, path)


def plot_pr_curves(
    result: EvalResult,
    label: str,
    path: str | Path,
    *,
    thresholds: Sequence[float] = (0.3, 0.5, 0.7),
) -> Path:
    """Precision-recall of one class at the chosen tIoU thresholds, with their AP."""
    fig = Figure(figsize=(5.5, 4.5))
    ax = fig.subplots()
    available = np.asarray(result.thresholds)
    for i, thr in enumerate(thresholds):
        t = int(np.argmin(np.abs(available - thr)))
        recall, precision = result.pr_curve(label, float(available[t]))
        ap = float(result.class_ap(label)[t])
        ax.plot(
            np.r_[0.0, recall],
            np.r_[precision[:1] if len(precision) else [0.0], precision],
            color=_PALETTE[i % len(_PALETTE)],
            lw=1.3,
            label=f"tIoU {available[t]:g}: AP {ap:.3f}",
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    idx = result.classes.index(label)
    ax.set_title(f"{label} (GT {result.npos[idx]}, predictions {result.num_predictions[idx]})")
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def plot_map_by_threshold(result: EvalResult, path: str | Path) -> Path:
    """mAP at every threshold: the one-picture summary of an evaluation."""
    fig = Figure(figsize=(5.5, 3.8))
    ax = fig.subplots()
    ax.plot(result.thresholds, result.map, marker="o")
    ax.set_xlabel("tIoU threshold")
    ax.set_ylabel("mAP")
    ax.set_ylim(0, max(0.05, float(np.max(result.map)) * 1.1) if len(result.map) else 1)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)
