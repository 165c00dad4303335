"""The PNG figures: a timeline with its CAS panel, PR curves, and the PR numbers behind them."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from eval_helpers import make_dataset, make_detections, snippet_times

from talkit.datasets.model import Segment
from talkit.wtal_heads.evaluation import evaluate


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_pr_curve_numbers() -> None:
    # GT (v1): [0,10], [20,30]; predictions TP, FP, TP -> precision 1, 1/2, 2/3; recall 1/2, 1/2, 1.
    ds = make_dataset({"v1": [("Jump", 0, 10), ("Jump", 20, 30)]})
    dets = make_detections(
        [("v1", "Jump", 0, 10, 0.9), ("v1", "Jump", 50, 60, 0.8), ("v1", "Jump", 20, 30, 0.7)]
    )
    result = evaluate(ds, dets, thresholds=[0.5, 0.9])
    recall, precision = result.pr_curve("Jump", 0.5)
    np.testing.assert_allclose(recall, [0.5, 0.5, 1.0])
    np.testing.assert_allclose(precision, [1.0, 0.5, 2 / 3])


@pytest.mark.slow
def test_timeline_with_cas_panel_and_pr_curves(tmp_path: Path) -> None:
    from talkit.wtal_heads.evaluation.plots import plot_pr_curves, plot_video_timeline

    n = 100
    cas = np.zeros((n, 2))
    cas[10:20, 0] = 1.0
    gt = [Segment(label="Jump", start_s=6.4, end_s=12.8)]
    dets = [{"label": "Jump", "score": 0.9, "segment": [6.0, 13.0]}]
    with_cas = plot_video_timeline(
        "v1",
        gt,
        dets,
        tmp_path / "a.png",
        cas=cas,
        timestamps=snippet_times(n),
        classes=["Jump", "Swim"],
    )
    without = plot_video_timeline("v1", gt, dets, tmp_path / "b.png")
    (w1, h1), (w2, h2) = _png_size(with_cas), _png_size(without)
    assert w1 == w2 and h1 > h2  # the CAS panel sits above the segments

    ds = make_dataset({"v1": [("Jump", 6.4, 12.8)]})
    result = evaluate(ds, make_detections([("v1", "Jump", 6.0, 13.0, 0.9)]), thresholds="thumos14")
    pr = plot_pr_curves(result, "Jump", tmp_path / "pr" / "Jump.png")
    assert pr.exists() and _png_size(pr)[0] > 0
