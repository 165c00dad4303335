"""CAS → detections: every method's preset, NMS, watershed, scoring and time mapping."""

from __future__ import annotations

import math

import numpy as np
import pytest
from eval_helpers import make_dataset, snippet_times

from talkit.errors import ConfigError, InputError
from talkit.wtal_heads.evaluation import evaluate
from talkit.wtal_heads.evaluation.nms import nms
from talkit.wtal_heads.evaluation.postprocess import (
    PRESETS,
    PostprocessConfig,
    VideoCAS,
    cas_to_detections,
    cell_edges,
    detect_videos,
    get_preset,
    merge_detections,
    select_classes,
    topk_mean,
    upsample,
)
from talkit.wtal_heads.evaluation.proposals import connected_runs, contrast_scores, watershed_runs

STRIDE = 16 / 25  # I3D at 25 fps, 16-frame stride: snippet i starts at i·0.64 s
CLASSES = ["Jump", "Swim", "Dive"]
# Known plateaus (class, first snippet, last snippet + 1) and their seconds.
PLATEAUS = [("Jump", 10, 20), ("Jump", 40, 55), ("Swim", 60, 70)]


def _synthetic_video(n: int = 100) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cas = np.zeros((n, len(CLASSES)))
    for label, a, b in PLATEAUS:
        cas[a:b, CLASSES.index(label)] = 1.0
    return cas, snippet_times(n, stride_s=STRIDE), np.array([0.9, 0.8, 0.01])


def _expected_segments(plateaus: list[tuple[str, int, int]]) -> list[tuple[str, float, float]]:
    return sorted((lab, a * STRIDE, b * STRIDE) for lab, a, b in plateaus)


def _found(dets: list[dict]) -> list[tuple[str, float, float]]:
    return sorted((d["label"], d["segment"][0], d["segment"][1]) for d in dets)


def _assert_segments(
    found: list[tuple[str, float, float]], expected: list[tuple[str, float, float]]
) -> None:
    assert [f[0] for f in found] == [e[0] for e in expected]
    np.testing.assert_allclose([f[1:] for f in found], [e[1:] for e in expected], atol=1e-9)


def _nearest(preset: str) -> PostprocessConfig:
    """The preset with nearest upsampling: BaSNet's linear ×24 (extrapolated at the end)
    ramps a plateau's edges over one snippet, so its segments are not exact."""
    return get_preset(preset, upsample_mode="nearest")


@pytest.mark.parametrize("preset", ["basnet", "lgbm", "d2net"])
def test_known_plateaus_come_back_exactly_in_seconds(preset: str) -> None:
    cas, times, scores = _synthetic_video()
    dets = cas_to_detections(cas, times, scores, _nearest(preset), classes=CLASSES)
    _assert_segments(_found(dets), _expected_segments(PLATEAUS))


def test_basnet_linear_upsampling_ramps_plateau_edges_within_one_snippet() -> None:
    cas, times, scores = _synthetic_video()
    dets = cas_to_detections(cas, times, scores, "basnet", classes=CLASSES)
    best = {}
    for d in dets:  # the best proposal of each plateau
        key = min(PLATEAUS, key=lambda p: abs(p[1] * STRIDE - d["segment"][0]))
        if key not in best or d["score"] > best[key]["score"]:
            best[key] = d
    assert len(best) == len(PLATEAUS)
    for (label, a, b), d in best.items():
        assert d["label"] == label
        # Sample k reads the CAS at snippet k/24: the rise from snippet a-1 to a starts
        # one sample after (a-1)·24, the fall after b-1 reaches 0 at (b-1)·24 + 24.
        assert (a - 1) * STRIDE < d["segment"][0] <= a * STRIDE
        assert (b - 1) * STRIDE < d["segment"][1] <= b * STRIDE


def test_known_plateaus_with_dgam_both_streams() -> None:
    # DGAM thresholds 0.8·CAS + 0.2·λ²: the class-agnostic attention λ is on wherever any
    # action is, so here only one class is in the video (class scores select Jump alone).
    cas, times, _ = _synthetic_video()
    cas[:, 1] = 0.0
    attention = cas.max(axis=1)
    scores = np.array([0.9, 0.05, 0.01])
    per_stream = [
        cas_to_detections(
            cas, times, scores, _nearest("dgam"), classes=CLASSES, attention=attention, stream=s
        )
        for s in ("rgb", "flow")
    ]
    merged = merge_detections(*per_stream, nms_iou=PRESETS["dgam"].nms_iou)
    _assert_segments(_found(merged), _expected_segments([p for p in PLATEAUS if p[0] == "Jump"]))
    # inner mean 1, outer windows 0 -> score = 1 − 0.3·(0 + 0)
    assert all(d["score"] == pytest.approx(1.0) for d in merged)


def test_basnet_scores_add_the_binarised_class_score_term() -> None:
    cas, times, scores = _synthetic_video()
    dets = cas_to_detections(cas, times, scores, _nearest("basnet"), classes=CLASSES)
    by_label = {d["label"]: d["score"] for d in dets}
    # inner 1 − outer 0 + 0.2 × 1: BaSNet's code binarises the class scores first
    assert by_label["Jump"] == pytest.approx(1.2)
    assert by_label["Swim"] == pytest.approx(1.2)
    weighted = get_preset("basnet", upsample_mode="nearest", class_score_binary=False)
    by_label = {d["label"]: d["score"] for d in cas_to_detections(cas, times, scores, weighted)}
    assert by_label["0"] == pytest.approx(1 + 0.2 * 0.9)


def test_watershed_separates_plateaus_a_single_threshold_merges() -> None:
    signal = np.zeros(40)
    signal[5:15] = 1.0
    signal[15] = 0.5  # the dip where the two plateaus touch
    signal[16:26] = 0.8
    active = signal >= 0.3
    s, e = connected_runs(active)
    assert list(zip(s, e, strict=True)) == [(5, 26)]  # one threshold: one merged run
    s, e = watershed_runs(signal, active, min_dynamic=0.1)
    assert list(zip(s, e, strict=True)) == [(5, 15), (16, 26)]  # the dip is the watershed line
    # A bump lower than min_dynamic does not seed its own basin.
    s, e = watershed_runs(signal, active, min_dynamic=0.5)
    assert list(zip(s, e, strict=True)) == [(5, 26)]


def test_lgbm_preset_separates_touching_actions_basnet_merges() -> None:
    n = 60
    cas = np.zeros((n, 1))
    cas[10:20, 0] = 1.0
    cas[20, 0] = 0.5
    cas[21:31, 0] = 0.8
    times = snippet_times(n, stride_s=STRIDE)
    lgbm = _found(
        cas_to_detections(cas, times, np.array([0.9]), _nearest("lgbm"), classes=["Jump"])
    )
    _assert_segments(lgbm, [("Jump", 10 * STRIDE, 20 * STRIDE), ("Jump", 21 * STRIDE, 31 * STRIDE)])
    basnet = _found(
        cas_to_detections(cas, times, np.array([0.9]), _nearest("basnet"), classes=["Jump"])
    )
    assert basnet == [("Jump", pytest.approx(10 * STRIDE), pytest.approx(31 * STRIDE))]


def test_hard_nms_keeps_the_expected_segments() -> None:
    segs = np.array([[0, 10], [1, 10], [20, 30], [5, 15], [21, 29]], dtype=float)
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.75])
    # [1,10] vs [0,10]: tIoU .9 -> dropped.  [21,29] vs [20,30]: .8, but it scores higher,
    # so it is kept and suppresses [20,30].  [5,15] vs [0,10]: 5/15 < .5 -> kept.
    keep, kept_scores = nms(segs, scores, iou=0.5)
    assert keep.tolist() == [0, 4, 3]
    assert kept_scores.tolist() == [0.9, 0.75, 0.6]
    # At tIoU 0.3 [5,15] goes too (0.333 >= 0.3).
    assert nms(segs, scores, iou=0.3)[0].tolist() == [0, 4]


def test_soft_nms_decays_overlapping_scores() -> None:
    segs = np.array([[0, 10], [1, 10], [50, 60]], dtype=float)
    keep, s = nms(segs, np.array([0.9, 0.8, 0.5]), kind="soft", sigma=0.5)
    # [1,10] keeps 0.8·exp(−0.9²/0.5) ≈ 0.158 and falls below the untouched [50,60].
    assert keep.tolist() == [0, 2, 1]
    np.testing.assert_allclose(s, [0.9, 0.5, 0.8 * math.exp(-0.81 / 0.5)])
    keep, s = nms(segs, np.array([0.9, 0.8, 0.5]), kind="linear", iou=0.5)
    np.testing.assert_allclose(s, [0.9, 0.5, 0.8 * (1 - 0.9)])


def test_contrast_score_variants_by_hand() -> None:
    sig = np.array([0.2, 0.4, 1.0, 1.0, 1.0, 1.0, 0.0, 0.6])
    s, e = np.array([2]), np.array([6])  # inner mean 1.0, len 4 -> floor(0.25·4) = 1
    # pooled (BaSNet): outer samples [0.4] and [0.0] -> 0.2; score 0.8
    assert contrast_scores(sig, s, e, mode="pooled")[0] == pytest.approx(0.8)
    # DGAM: windows len//4 + 1 = 2: left [0.2, 0.4] = 0.3, right [0.0, 0.6] = 0.3
    assert contrast_scores(sig, s, e, extra=1, mode="sum", weight=0.3)[0] == pytest.approx(
        1 - 0.3 * 0.6
    )
    # D2-Net: windows max(1, 1): mean of side means (0.4 + 0.0) / 2 = 0.2
    assert contrast_scores(sig, s, e, minimum=1, mode="mean_of_sides")[0] == pytest.approx(0.8)
    # A run touching the start has only a right side.
    assert contrast_scores(sig, np.array([0]), np.array([4]), mode="mean_of_sides")[
        0
    ] == pytest.approx(0.65 - 1.0)


def test_class_selection_rules() -> None:
    s = np.array([0.1, 0.3, 0.25, 0.05])
    assert select_classes(s, rule="threshold", value=0.25).tolist() == [1, 2]
    assert select_classes(s, rule="threshold", value=0.25, inclusive=False).tolist() == [1]
    assert select_classes(s, rule="relative", value=0.5, inclusive=False).tolist() == [1, 2]
    assert select_classes(s, rule="topk", value=3).tolist() == [0, 1, 2]
    assert select_classes(s, rule="threshold", value=0.5).tolist() == []
    assert select_classes(s, rule="threshold", value=0.5, fallback_argmax=True).tolist() == [1]


def test_only_class_zero_still_gets_proposals() -> None:
    # The reference's `pred.any()` drops videos whose only class has index 0; we do not.
    cas, times, _ = _synthetic_video()
    dets = cas_to_detections(cas, times, np.array([0.9, 0.0, 0.0]), "basnet", classes=CLASSES)
    assert {d["label"] for d in dets} == {"Jump"}
    # BaSNet has no arg-max fallback: no class >= 0.25, no detection.
    assert cas_to_detections(cas, times, np.array([0.2, 0.1, 0.0]), "basnet") == []


def test_d2net_drops_runs_shorter_than_two_snippets() -> None:
    cas = np.zeros((30, 1))
    cas[5, 0] = 1.0  # one snippet
    cas[10:13, 0] = 1.0
    dets = cas_to_detections(cas, snippet_times(30), topk_mean(cas), "d2net", classes=["Jump"])
    _assert_segments(_found(dets), [("Jump", 10 * STRIDE, 13 * STRIDE)])


def test_d2net_relative_keep_after_nms() -> None:
    cas = np.zeros((40, 1))
    cas[5:10, 0] = 1.0
    cas[20:25, 0] = 0.04  # a faint run: score 0.04 < 0.1 × 1.0
    dets = cas_to_detections(cas, snippet_times(40), np.array([1.0]), "d2net", classes=["Jump"])
    assert len(dets) == 1 and dets[0]["score"] == pytest.approx(1.0)
    keep_all = get_preset("d2net", relative_keep=0.0)
    assert len(cas_to_detections(cas, snippet_times(40), np.array([1.0]), keep_all)) == 2


def test_dgam_activitynet_smooths_before_thresholding() -> None:
    n = 50
    cas = np.zeros((n, 1))
    cas[20:30, 0] = 1.0
    times = snippet_times(n)
    sharp = cas_to_detections(cas, times, np.array([0.9]), _nearest("dgam"), attention=np.zeros(n))
    smooth = cas_to_detections(
        cas, times, np.array([0.9]), _nearest("dgam_activitynet"), attention=np.zeros(n)
    )
    _assert_segments(_found(sharp), [("0", 20 * STRIDE, 30 * STRIDE)])
    (s, e) = smooth[0]["segment"]
    assert s < 20 * STRIDE and e > 30 * STRIDE  # a σ = 25-sample Gaussian widens the run


def test_overlapping_snippets_map_to_midpoints() -> None:
    # 64-frame clips every 16 frames at 25 fps: rows overlap by 1.92 s.
    ts = snippet_times(5, stride_s=0.64, length_s=2.56)
    edges = cell_edges(ts)
    np.testing.assert_allclose(edges, [0.0, 1.6, 2.24, 2.88, 3.52, 5.12])
    cas = np.zeros((5, 1))
    cas[1:3, 0] = 1.0
    (det,) = cas_to_detections(cas, ts, np.array([1.0]), get_preset("d2net", min_length=0))
    np.testing.assert_allclose(det["segment"], [1.6, 2.88])


def test_upsampling_modes() -> None:
    x = np.array([0.0, 1.0, 0.0])
    assert upsample(x, 2).tolist() == [0, 0, 1, 1, 0, 0]
    np.testing.assert_allclose(upsample(x, 2, mode="linear"), [0, 0.25, 0.75, 0.75, 0.25, 0])


def test_bad_inputs_say_what_is_wrong() -> None:
    cas, times, scores = _synthetic_video()
    with pytest.raises(InputError, match="timestamps must be"):
        cas_to_detections(cas, times[:-1], scores)
    with pytest.raises(InputError, match="class scores"):
        cas_to_detections(cas, times, scores[:2])
    with pytest.raises(InputError, match="NaN"):
        cas_to_detections(np.full_like(cas, np.nan), times, scores)
    with pytest.raises(InputError, match="no attention"):
        cas_to_detections(cas, times, scores, "dgam")
    with pytest.raises(InputError, match="stream 'audio'"):
        cas_to_detections(cas, times, scores, "dgam", attention=np.zeros(len(cas)), stream="audio")
    with pytest.raises(ConfigError, match="unknown post-processing preset"):
        get_preset("bsn")
    with pytest.raises(ConfigError, match="nms_iou"):
        get_preset("basnet", nms_iou=2.0)
    with pytest.raises(ValueError):
        PostprocessConfig(thresholds=())


def test_detect_videos_feeds_the_evaluator() -> None:
    cas, times, scores = _synthetic_video()
    videos = [VideoCAS("v1", scores, cas, times), VideoCAS("v2", scores, cas[::-1].copy(), times)]
    dets = detect_videos(videos, CLASSES, "basnet")
    n = len(cas)
    gt = make_dataset(
        {
            "v1": [(lab, a * STRIDE, b * STRIDE) for lab, a, b in PLATEAUS],
            "v2": [(lab, (n - b) * STRIDE, (n - a) * STRIDE) for lab, a, b in PLATEAUS],
        }
    )
    result = evaluate(gt, dets, thresholds="thumos14")
    np.testing.assert_allclose(result.map, 1.0)
