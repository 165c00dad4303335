"""The evaluator on the real THUMOS14 ground truths (bundled with talkit)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from eval_helpers import gt_as_detections, make_detections

from talkit.datasets import Dataset, load_ambiguous, load_annotations
from talkit.wtal_heads.evaluation import THUMOS14_BAD_VIDEOS, evaluate, segment_tiou

THUMOS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@pytest.fixture(scope="module")
def thumos_test(real_data: Path) -> Dataset:
    return load_annotations(real_data / "thumos14" / "gt.json").subset("test")


def test_real_gt_as_predictions_scores_one_everywhere(thumos_test: Dataset) -> None:
    result = evaluate(thumos_test, gt_as_detections(thumos_test), thresholds="thumos14")
    assert result.gt_summary == {"videos": 210, "instances": 3311, "classes": 20}
    assert sum(result.npos) == 3311
    np.testing.assert_array_equal(result.map, np.ones(9))
    assert result.averages == {"0.1:0.7": 1.0, "0.1:0.5": 1.0, "0.1:0.9": 1.0}


def _shift_to_tiou_06(s: float, e: float, others: list[tuple[float, float]]) -> tuple[float, float]:
    """[s, e] moved by a quarter of its length (tIoU (L-d)/(L+d) = 0.6), nudged by ulps so
    that the evaluator's own float tIoU is >= 0.6 and within 1e-12 of it, and chosen
    (right or left) so that it overlaps no other GT of its class with tIoU >= 0.6."""
    d = (e - s) / 4
    for direction in (1.0, -1.0):
        ns, ne = s + direction * d, e + direction * d
        for _ in range(200):
            t = float(segment_tiou([ns, ne], np.array([[s, e]]))[0])
            if t >= 0.6:
                break
            # step both ends one ulp back towards the original: overlap grows
            ns, ne = np.nextafter(ns, s), np.nextafter(ne, e)
        assert 0.6 <= t < 0.6 + 1e-12
        if not others or float(segment_tiou([ns, ne], np.array(others)).max()) < 0.6:
            return float(ns), float(ne)
    raise AssertionError(f"no shift of [{s}, {e}] avoids its neighbours")


def test_real_gt_shifted_to_tiou_06(thumos_test: Dataset) -> None:
    rows = []
    for vid, video in thumos_test.videos.items():
        for i, seg in enumerate(video.annotations):
            others = [
                (o.start_s, o.end_s)
                for j, o in enumerate(video.annotations)
                if j != i and o.label == seg.label
            ]
            ns, ne = _shift_to_tiou_06(seg.start_s, seg.end_s, others)
            rows.append((vid, seg.label, ns, ne, 1.0))
    result = evaluate(thumos_test, make_detections(rows), thresholds=THUMOS)
    expected = np.array([1.0 if t <= 0.6 else 0.0 for t in THUMOS])
    for c in result.classes:
        np.testing.assert_array_equal(result.class_ap(c), expected, err_msg=c)
    np.testing.assert_array_equal(result.map, expected)


def test_wtalc_gt_counts_and_thumos_exclusions(real_data: Path, thumos_test: Dataset) -> None:
    wtalc = load_annotations(real_data / "thumos14_wtalc").subset("test")
    full = evaluate(wtalc, gt_as_detections(wtalc), thresholds="thumos14")
    assert full.gt_summary["videos"] == 212 and full.gt_summary["instances"] == 3358
    assert full.average_map == 1.0
    excluded = evaluate(
        wtalc, gt_as_detections(wtalc), thresholds="thumos14", exclude_videos=THUMOS14_BAD_VIDEOS
    )
    # Without 270 and 1496 (1292 is absent from both files) the W-TALC test set has the
    # 210 videos and 3311 instances of gt.json.
    assert excluded.gt_summary["videos"] == 210 and excluded.gt_summary["instances"] == 3311
    assert excluded.accounting["excluded_videos"]["predictions"] == 3358 - 3311


def test_ambiguous_intervals_drop_overlapping_predictions(
    real_data: Path, thumos_test: Dataset
) -> None:
    amb = load_ambiguous(real_data / "thumos14_wtalc" / "Ambiguous_test.txt")
    in_gt = [
        (v, s, e) for v, s, e in amb if v in thumos_test.videos and thumos_test.videos[v].labels
    ]
    gt_rows = [
        (vid, seg.label, seg.start_s, seg.end_s, 1.0)
        for vid, video in thumos_test.videos.items()
        for seg in video.annotations
    ]
    # A confident false positive exactly on each ambiguous interval, and one that only
    # touches it (zero-length intersection), which must survive.
    on = [(v, thumos_test.videos[v].labels[0], s, e, 2.0) for v, s, e in in_gt]
    touching = [(v, thumos_test.videos[v].labels[0], e, e + 1.0, 3.0) for v, s, e in in_gt[:1]]
    dets = make_detections([*on, *touching, *gt_rows])
    with_amb = evaluate(thumos_test, dets, thresholds="thumos14", ambiguous=amb)
    without = evaluate(thumos_test, dets, thresholds="thumos14")
    dropped = with_amb.accounting["ambiguous"]["predictions_dropped"]
    assert with_amb.accounting["ambiguous"]["intervals"] == sum(
        1 for v, _, _ in amb if v in thumos_test.videos
    )
    # Every "on" detection is dropped; GT-shaped ones overlapping an interval may be too.
    assert len(on) <= dropped < len(dets) - len(touching)
    assert with_amb.accounting["predictions_scored"] == len(dets) - dropped
    assert without.average_map < with_amb.average_map
    only_touching = evaluate(
        thumos_test, make_detections(touching), thresholds="thumos14", ambiguous=amb
    )
    assert only_touching.accounting["ambiguous"]["predictions_dropped"] == 0
    only_on = evaluate(thumos_test, make_detections(on), thresholds="thumos14", ambiguous=amb)
    assert only_on.accounting["ambiguous"]["predictions_dropped"] == len(on)


def test_activitynet12_gt_fed_back(real_data: Path) -> None:
    ds = load_annotations(real_data / "activitynet12" / "gt.json")
    result = evaluate(ds, gt_as_detections(ds), thresholds="activitynet")
    assert result.gt_summary == {"videos": 2383, "instances": 3582, "classes": 100}
    # Three GT segments have zero length ([0, 0], [4.10395, 4.10395], [142.281, 142.281]):
    # fed back, their tIoU is 0/0, which counts as 0, so only their classes lose AP.
    degenerate = {
        seg.label for v in ds.videos.values() for seg in v.annotations if seg.end_s <= seg.start_s
    }
    assert degenerate == {"Playing kickball", "Playing guitarra", "High jump"}
    for c in result.classes:
        ap = result.class_ap(c)
        if c in degenerate:
            assert np.all(ap < 1.0)
        else:
            np.testing.assert_allclose(ap, 1.0, rtol=0, atol=1e-12, err_msg=c)
