"""Detection AP: worked examples computed by hand, and properties (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from eval_helpers import gt_as_detections, make_dataset, make_detections, reference_ap
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from talkit.errors import InputError
from talkit.wtal_heads.evaluation import (
    THRESHOLD_PRESETS,
    GroundTruthTable,
    average_precision,
    evaluate,
    interpolated_ap,
    segment_tiou,
)

# ---------------------------------------------------------------------------------------
# Worked examples. Each comment derives the AP by hand:
#   precision/recall after each prediction (in score order), then the all-point
#   interpolated area: sum over recall steps of Δrecall × (best precision to the right).
# ---------------------------------------------------------------------------------------


def test_duplicate_prediction_is_a_false_positive() -> None:
    # GT (v1, Jump): [0,10], [20,30].  Predictions by score:
    #   .9 [0,10]  tIoU 1.0 with GT1            -> TP   P=1/1  R=1/2
    #   .8 [1,10]  GT1 (0.9) locked; GT2 tIoU 0 -> FP   P=1/2  R=1/2
    #   .7 [20,30] tIoU 1.0 with GT2            -> TP   P=2/3  R=2/2
    # AP = 1/2·1 + 1/2·2/3 = 5/6
    ds = make_dataset({"v1": [("Jump", 0, 10), ("Jump", 20, 30)]})
    dets = make_detections(
        [("v1", "Jump", 0, 10, 0.9), ("v1", "Jump", 1, 10, 0.8), ("v1", "Jump", 20, 30, 0.7)]
    )
    result = evaluate(ds, dets, thresholds=[0.5])
    assert result.class_ap("Jump")[0] == pytest.approx(5 / 6, abs=1e-12)


def test_prediction_in_video_without_gt_of_its_class() -> None:
    # Jump GT only in v1 [0,10]; v2 holds only Swim.
    #   .9 v2 Jump [0,10]  no Jump GT in v2 -> FP   P=0    R=0
    #   .5 v1 Jump [0,10]  tIoU 1            -> TP   P=1/2  R=1
    # AP(Jump) = 1·1/2 = 0.5.  Swim has GT but no prediction -> AP 0.  mAP = 0.25.
    ds = make_dataset({"v1": [("Jump", 0, 10)], "v2": [("Swim", 3, 8)]})
    dets = make_detections([("v2", "Jump", 0, 10, 0.9), ("v1", "Jump", 0, 10, 0.5)])
    result = evaluate(ds, dets, thresholds=[0.5])
    assert result.class_ap("Jump")[0] == pytest.approx(0.5, abs=1e-12)
    assert result.class_ap("Swim")[0] == 0.0
    assert result.map[0] == pytest.approx(0.25, abs=1e-12)


def test_two_gts_competing_for_one_prediction() -> None:
    # GT (v1): g1 [0,10], g2 [5,15].
    #   .9 [4,12]: tIoU g1 = 6/12 = .5, g2 = 7/11 = .636 -> takes g2 (highest tIoU)
    #   .8 [5,15]: g2 (1.0) locked; g1 = 5/15 = .333 < .5 -> FP
    # At 0.5: TP, FP -> P=1, 1/2; R=1/2, 1/2 -> AP = 1/2·1 = 0.5 (greedy, not optimal)
    # At 0.7: [4,12] reaches .636 < .7 -> FP; [5,15] takes g2 -> TP: P=0, 1/2; R=0, 1/2
    #         -> AP = 1/2·1/2 = 0.25
    ds = make_dataset({"v1": [("Jump", 0, 10), ("Jump", 5, 15)]})
    dets = make_detections([("v1", "Jump", 4, 12, 0.9), ("v1", "Jump", 5, 15, 0.8)])
    result = evaluate(ds, dets, thresholds=[0.5, 0.7])
    np.testing.assert_allclose(result.class_ap("Jump"), [0.5, 0.25], atol=1e-12)


def test_class_with_no_predictions_scores_zero_and_counts_in_map() -> None:
    # Jump predicted perfectly (AP 1); Swim and Dive have GT and no prediction (AP 0).
    # mAP = (1 + 0 + 0) / 3 at every threshold.
    ds = make_dataset({"v1": [("Jump", 0, 10), ("Swim", 20, 25)], "v2": [("Dive", 1, 2)]})
    dets = make_detections([("v1", "Jump", 0, 10, 0.3)])
    result = evaluate(ds, dets, thresholds="thumos14")
    assert result.classes == ["Dive", "Jump", "Swim"]
    np.testing.assert_allclose(result.map, np.full(9, 1 / 3), atol=1e-12)
    assert result.num_predictions == [0, 1, 0]
    assert result.averages["0.1:0.7"] == pytest.approx(1 / 3)


def test_missed_gt_and_interpolation() -> None:
    # GT (v1): [0,10], [20,30], [40,50]; the third is never found.
    #   .9 [0,10]    TP  P=1    R=1/3
    #   .8 [100,110] FP  P=1/2  R=1/3
    #   .7 [20,30]   TP  P=2/3  R=2/3
    # Envelope: precision at R=1/3 becomes max(1, 1/2, 2/3) = 1, at R=2/3 it is 2/3.
    # AP = 1/3·1 + 1/3·2/3 + 1/3·0 = 5/9
    ds = make_dataset({"v1": [("Jump", 0, 10), ("Jump", 20, 30), ("Jump", 40, 50)]})
    dets = make_detections(
        [("v1", "Jump", 0, 10, 0.9), ("v1", "Jump", 100, 110, 0.8), ("v1", "Jump", 20, 30, 0.7)]
    )
    assert evaluate(ds, dets, thresholds=[0.5]).class_ap("Jump")[0] == pytest.approx(
        5 / 9, abs=1e-12
    )


def test_tie_rule_keeps_input_order() -> None:
    # Equal scores are visited in input order.  GT (v1): [0,10].
    # Order FP-then-TP: P=0, 1/2; R=0, 1 -> AP 0.5.   TP-then-FP: P=1, 1/2; R=1, 1 -> AP 1.
    ds = make_dataset({"v1": [("Jump", 0, 10)]})
    fp, tp = ("v1", "Jump", 50, 60, 0.5), ("v1", "Jump", 0, 10, 0.5)
    assert evaluate(ds, make_detections([fp, tp]), thresholds=[0.5]).map[0] == pytest.approx(0.5)
    assert evaluate(ds, make_detections([tp, fp]), thresholds=[0.5]).map[0] == pytest.approx(1.0)


def test_equal_tiou_gt_visited_last_listed_first() -> None:
    # GT (v1): g1 [0,10], g2 [5,15].  [5,10] has tIoU .5 with both: the documented rule
    # visits g2 (listed last) first.  Then [10,15] (tIoU .5 with g2 only) finds g2 locked
    # -> FP.  At 0.5: TP, FP -> AP = 1/2·1 = 0.5.
    ds = make_dataset({"v1": [("Jump", 0, 10), ("Jump", 5, 15)]})
    dets = make_detections([("v1", "Jump", 5, 10, 0.9), ("v1", "Jump", 10, 15, 0.8)])
    assert evaluate(ds, dets, thresholds=[0.5]).map[0] == pytest.approx(0.5)


def test_threshold_comparison_is_inclusive() -> None:
    # [0,5] against [0,10]: tIoU exactly 0.5 -> TP at 0.5, FP at 0.55.
    ds = make_dataset({"v1": [("Jump", 0, 10)]})
    dets = make_detections([("v1", "Jump", 0, 5, 1.0)])
    ap = evaluate(ds, dets, thresholds="activitynet").class_ap("Jump")
    assert ap[0] == 1.0
    assert np.all(ap[1:] == 0.0)


def test_presets_and_interpolation_primitives() -> None:
    assert THRESHOLD_PRESETS["thumos14"].thresholds == (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    assert THRESHOLD_PRESETS["activitynet"].thresholds[0] == 0.5
    assert THRESHOLD_PRESETS["activitynet"].thresholds[-1] == 0.95
    assert len(THRESHOLD_PRESETS["hacs"].thresholds) == 10
    assert segment_tiou([0, 10], np.array([[5, 15], [20, 30]])).tolist() == [5 / 15, 0.0]
    assert interpolated_ap(np.array([1.0, 0.5]), np.array([0.5, 0.5])) == 0.5


def test_average_precision_on_plain_arrays() -> None:
    # Same numbers as test_duplicate_prediction_is_a_false_positive, with no Dataset.
    ap = average_precision(
        ["a", "a"],
        [[0, 10], [20, 30]],
        ["a", "a", "a"],
        [[0, 10], [1, 10], [20, 30]],
        [0.9, 0.8, 0.7],
        [0.5],
    )
    assert ap[0] == pytest.approx(5 / 6)


def test_exclusion_ambiguous_and_unknown_videos() -> None:
    ds = make_dataset({"v1": [("Jump", 0, 10)], "v2": [("Jump", 0, 10)]})
    dets = make_detections(
        [
            ("v9", "Jump", 0, 10, 0.95),  # video not in GT
            ("v2", "Jump", 30, 40, 0.9),  # overlaps an ambiguous interval of v2
            ("v1", "Jump", 0, 10, 0.8),
            ("v2", "Jump", 0, 10, 0.7),
        ]
    )
    # Reference behaviour: the unknown video is a false positive (P=0, 1/2, 2/3 ...).
    fp = evaluate(ds, dets, thresholds=[0.5])
    assert fp.accounting["videos_not_in_gt"] == {
        "videos": 1,
        "predictions": 1,
        "examples": ["v9"],
        "handling": "fp",
    }
    # FP, FP, TP, TP: P = 0, 0, 1/3, 2/4; R = 0, 0, 1/2, 1 -> AP = 1/2·1/2 + 1/2·1/2 = 0.5
    assert fp.map[0] == pytest.approx(0.5)
    dropped = evaluate(
        ds,
        dets,
        thresholds=[0.5],
        unknown_videos="drop",
        ambiguous=[("v2", 29.0, 31.0), ("v7", 0.0, 100.0)],
    )
    # Only the two TPs remain -> AP 1.
    assert dropped.map[0] == 1.0
    assert dropped.accounting["ambiguous"] == {"intervals": 1, "predictions_dropped": 1}
    assert dropped.accounting["predictions_scored"] == 2
    with pytest.raises(InputError, match="v9"):
        evaluate(ds, dets, thresholds=[0.5], unknown_videos="error")
    # Excluding v2 removes its GT (npos 1) and its predictions.
    excl = evaluate(ds, dets, thresholds=[0.5], exclude_videos=["v2"], unknown_videos="drop")
    assert excl.npos == [1] and excl.map[0] == 1.0
    assert excl.accounting["excluded_videos"] == {"videos": ["v2"], "predictions": 2}
    # The same through the columnar GT table.
    table = GroundTruthTable.from_dataset(ds)
    excl_table = evaluate(
        table, dets, thresholds=[0.5], exclude_videos=["v2"], unknown_videos="drop"
    )
    assert excl_table.npos == [1] and excl_table.gt_summary == excl.gt_summary


def test_unknown_label_is_refused_with_a_suggestion() -> None:
    ds = make_dataset({"v1": [("HighJump", 0, 10)]})
    dets = make_detections([("v1", "Highjump", 0, 10, 0.9)])
    with pytest.raises(InputError, match="did you mean 'HighJump'"):
        evaluate(ds, dets)


def test_label_known_but_without_gt_is_counted_not_scored() -> None:
    ds = make_dataset({"v1": [("Jump", 0, 10)]}, classes=["Jump", "Swim"])
    dets = make_detections([("v1", "Jump", 0, 10, 0.9), ("v1", "Swim", 0, 10, 0.95)])
    result = evaluate(ds, dets, thresholds=[0.5])
    assert result.classes == ["Jump"]
    assert result.map[0] == 1.0
    assert result.accounting["labels_without_gt"] == {"Swim": 1}


def test_bad_thresholds_are_refused() -> None:
    ds = make_dataset({"v1": [("Jump", 0, 10)]})
    with pytest.raises(InputError):
        evaluate(ds, make_detections([]), thresholds=[0.0, 0.5])
    with pytest.raises(InputError):
        evaluate(ds, make_detections([]), thresholds="coco")


# ---------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------

LABELS = ("A", "B", "C")
VIDEOS = ("v1", "v2", "v3")
THRESHOLDS = (0.1, 0.3, 0.5, 0.7, 0.9)
# Endpoints on a coarse grid so that equal tIoUs, duplicate GT and touching segments occur.
coord = st.integers(0, 40).map(lambda x: x / 2)


@st.composite
def segment(draw: st.DrawFn) -> tuple[float, float]:
    s = draw(coord)
    length = draw(st.integers(1, 20).map(lambda x: x / 2))
    return s, s + length


@st.composite
def ground_truth(draw: st.DrawFn) -> dict[str, list[tuple[str, float, float]]]:
    gt: dict[str, list[tuple[str, float, float]]] = {}
    for v in VIDEOS:
        rows = draw(st.lists(st.tuples(st.sampled_from(LABELS), segment()), max_size=6))
        gt[v] = [(lab, s, e) for lab, (s, e) in rows]
    if not any(gt.values()):
        gt["v1"] = [("A", 0.0, 5.0)]
    gt["v_empty"] = []
    return gt


@st.composite
def predictions(
    draw: st.DrawFn, distinct_scores: bool = False
) -> list[tuple[str, str, float, float, float]]:
    rows = draw(
        st.lists(
            st.tuples(st.sampled_from((*VIDEOS, "v_empty")), st.sampled_from(LABELS), segment()),
            max_size=25,
        )
    )
    if distinct_scores:
        scores = draw(
            st.lists(st.integers(0, 10**6), min_size=len(rows), max_size=len(rows), unique=True)
        )
    else:
        scores = draw(st.lists(st.integers(0, 4), min_size=len(rows), max_size=len(rows)))
    return [(v, lab, s, e, sc / 10**6) for (v, lab, (s, e)), sc in zip(rows, scores, strict=True)]


PROP = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROP
@given(ground_truth(), st.integers(0, 3))
def test_gt_fed_back_as_predictions_gives_map_one(gt: dict, score_seed: int) -> None:
    ds = make_dataset(gt, classes=LABELS)
    rng = np.random.default_rng(score_seed)
    base = gt_as_detections(ds)
    dets = make_detections(
        (v, lab, s, e, float(rng.integers(0, 3)))
        for v, lab, (s, e) in zip(base.video, base.label, base.segments, strict=True)
    )
    result = evaluate(ds, dets, thresholds=THRESHOLDS)
    np.testing.assert_array_equal(result.map, np.ones(len(THRESHOLDS)))


@PROP
@given(ground_truth(), predictions(), st.sampled_from(LABELS), segment(), st.integers(0, 4))
def test_adding_a_prediction_where_its_class_has_no_gt_never_raises_ap(
    gt: dict, preds: list, label: str, seg: tuple[float, float], score: int
) -> None:
    ds = make_dataset(gt, classes=LABELS)
    before = evaluate(ds, make_detections(preds), thresholds=THRESHOLDS)
    videos_without = [v for v, rows in gt.items() if all(lab != label for lab, _, _ in rows)]
    extra = (videos_without[0], label, seg[0], seg[1], score / 10**6)
    after = evaluate(ds, make_detections([*preds, extra]), thresholds=THRESHOLDS)
    assert after.classes == before.classes
    assert np.all(after.ap <= before.ap + 1e-12)


@PROP
@given(ground_truth(), predictions(distinct_scores=True), st.randoms(use_true_random=False))
def test_ap_is_invariant_to_input_order_without_ties(gt: dict, preds: list, rnd) -> None:
    ds = make_dataset(gt, classes=LABELS)
    shuffled = list(preds)
    rnd.shuffle(shuffled)
    a = evaluate(ds, make_detections(preds), thresholds=THRESHOLDS)
    b = evaluate(ds, make_detections(shuffled), thresholds=THRESHOLDS)
    np.testing.assert_array_equal(a.ap, b.ap)


@PROP
@given(ground_truth(), predictions())
def test_ap_is_in_unit_interval_and_matches_the_plain_loop(gt: dict, preds: list) -> None:
    ds = make_dataset(gt, classes=LABELS)
    dets = make_detections(preds)
    result = evaluate(ds, dets, thresholds=THRESHOLDS, unknown_videos="fp")
    assert np.all((result.ap >= 0) & (result.ap <= 1))
    expected = reference_ap(ds, dets, THRESHOLDS)
    for c in result.classes:
        np.testing.assert_array_equal(result.class_ap(c), expected[c])
