"""talkit's ``basnet`` preset gives the proposals BaSNet's own code gives, but for its
documented departures (docs/evaluation.md), each shown here on an input that triggers it.

The reference is restated loop by loop in ``basnet_reference.py`` from the authors' code
path; talkit's side is the real pipeline: the dataset's uniform sampling and position
times, then ``cas_to_detections``.
"""

from __future__ import annotations

import numpy as np
import pytest
from basnet_reference import ACT_THRESH, basnet_reference, reference_minmax, reference_nms
from scipy.interpolate import interp1d
from scipy.ndimage import gaussian_filter1d

from talkit.datasets.store_dataset import position_times, uniform_indices
from talkit.wtal_heads.evaluation.nms import nms
from talkit.wtal_heads.evaluation.postprocess import (
    cas_to_detections,
    get_preset,
    minmax_normalize,
    upsample,
)

STRIDE = 16 / 25  # I3D at 25 fps, 16-frame snippets: what the reference's t_factor assumes


def _times(v_len: int, num_segments: int) -> np.ndarray:
    """What the training data path gives the post-processing for a uniformly sampled video."""
    starts = np.arange(v_len) * STRIDE
    ts = np.stack([starts, starts + STRIDE], axis=1)
    return position_times(ts, num_segments, uniform_indices(v_len, num_segments))


def _talkit(cas_supp: np.ndarray, score_supp: np.ndarray, v_len: int, preset="basnet") -> list:
    """talkit on the same inputs, background column dropped as ``head.infer`` drops it."""
    c = cas_supp.shape[1] - 1
    dets = cas_to_detections(cas_supp[:, :c], _times(v_len, len(cas_supp)), score_supp[:c], preset)
    return [(int(d["label"]), d["score"], *d["segment"]) for d in dets]


def _assert_same(ours: list, ref: list) -> None:
    ours, ref = sorted(ours), sorted(ref)
    assert len(ours) == len(ref), (len(ours), len(ref))
    assert [o[0] for o in ours] == [r[0] for r in ref]
    np.testing.assert_allclose(
        np.array([o[1:] for o in ours]).reshape(-1, 3),
        np.array([r[1:] for r in ref]).reshape(-1, 3),
        rtol=0,
        atol=1e-9,
    )


def _random_video(rng: np.random.Generator, t: int, c: int) -> tuple[np.ndarray, np.ndarray]:
    """A smooth CAS (T, C+1) that crosses 0, and scores (C+1,) selecting 1–3 classes (plus
    class 0 at exactly the 0.25 threshold when it is not picked), never class 0 alone."""
    cas = gaussian_filter1d(rng.standard_normal((t, c + 1)), sigma=rng.uniform(0.5, 3), axis=0)
    cas = cas * rng.uniform(1, 6) + rng.uniform(-1.5, 1.0, size=c + 1)
    scores = rng.dirichlet(np.full(c + 1, 0.3))
    picked = rng.choice(c, size=int(rng.integers(1, 4)), replace=False)
    if list(picked) == [0]:
        picked = np.array([0, 1])
    scores[:c] = rng.uniform(0, 0.2, c)
    scores[picked] = rng.uniform(0.25, 0.9, len(picked))
    if 0 not in picked:
        scores[0] = 0.25
    return cas, scores


@pytest.mark.parametrize("seed", range(8))
def test_basnet_preset_gives_the_reference_proposals(seed: int) -> None:
    rng = np.random.default_rng(seed)
    compared = 0
    for _ in range(5):
        t = int(rng.choice([16, 50, 75]))
        v_len = int(rng.choice([t // 3 + 1, t, 3 * t + 7]))  # repeated, equal, skipped snippets
        cas, scores = _random_video(rng, t, 6)
        ref = basnet_reference(cas, scores, v_len, reference_defects=False)
        _assert_same(_talkit(cas, scores, v_len), ref)
        compared += len(ref)
    assert compared > 0


def test_a_class_score_of_exactly_the_threshold_is_selected_and_adds_the_constant() -> None:
    rng = np.random.default_rng(3)
    cas, _ = _random_video(rng, 40, 3)
    scores = np.array([0.1, 0.25, 0.2, 0.45])  # class 1 at exactly 0.25
    ours = _talkit(cas, scores, 40)
    assert {o[0] for o in ours} == {1}
    _assert_same(ours, basnet_reference(cas, scores, 40))
    # The class score enters as a constant 0.2, so a higher class score changes nothing.
    louder = scores.copy()
    louder[1] = 0.9
    _assert_same(_talkit(cas, louder, 40), ours)


def test_each_step_matches_the_reference_function() -> None:
    rng = np.random.default_rng(0)
    cas = rng.normal(0.2, 1.0, (30, 4))
    cas[:, 1] -= 5.0  # never above 0: left unchanged
    cas[:, 2] = np.abs(cas[:, 2]) + 0.5  # all positive: the true min-max
    np.testing.assert_array_equal(minmax_normalize(cas, clamp=True), reference_minmax(cas))
    np.testing.assert_array_equal(minmax_normalize(cas, clamp=True)[:, 1], cas[:, 1])
    up = interp1d(np.arange(30), cas, kind="linear", axis=0, fill_value="extrapolate")(
        np.arange(0, 30, 1 / 24)
    )
    np.testing.assert_array_equal(upsample(cas, 24, mode="linear_start"), up)
    assert get_preset("basnet").thresholds == tuple(ACT_THRESH.tolist())


def test_departure_a_video_whose_only_class_is_index_0_keeps_its_proposals() -> None:
    rng = np.random.default_rng(1)
    cas, _ = _random_video(rng, 50, 4)
    scores = np.array([0.6, 0.1, 0.05, 0.1, 0.15])  # class 0 alone
    assert basnet_reference(cas, scores, 80) == []  # the reference's pred.any() skips it
    ours = _talkit(cas, scores, 80)
    assert ours and {o[0] for o in ours} == {0}
    _assert_same(ours, basnet_reference(cas, scores, 80, reference_defects=False))


def test_departure_a_selected_class_without_active_sample_gets_none_instead_of_a_crash() -> None:
    rng = np.random.default_rng(2)
    cas, _ = _random_video(rng, 50, 4)
    cas[:, 2] = -np.abs(cas[:, 2]) - 0.1  # never above 0: no sample is active
    scores = np.array([0.05, 0.4, 0.3, 0.1, 0.15])  # classes 1 and 2
    with pytest.raises(IndexError):
        basnet_reference(cas, scores, 60)
    ours = _talkit(cas, scores, 60)
    assert {o[0] for o in ours} == {1}
    _assert_same(ours, basnet_reference(cas, scores, 60, reference_defects=False))


def test_departure_equal_scores_enter_nms_in_input_order() -> None:
    # Two proposals of one class with the same score and tIoU (+1 lengths) 0.8 >= 0.7.
    props = [[0, 1.0, 10.0, 18.0], [0, 1.0, 11.0, 18.0]]
    (kept,) = reference_nms(props, 0.7)
    assert kept[2:] == [11.0, 18.0]  # the reference's argsort()[::-1] keeps the later one
    keep, _ = nms(np.array([p[2:] for p in props]), np.ones(2), iou=0.7, length_offset=1.0)
    assert keep.tolist() == [0]  # talkit keeps the first listed (stable, documented)


def test_the_old_recipe_differs_where_the_issue_found_it() -> None:
    """Each step the preset changed moves proposals on ordinary inputs: they are not no-ops."""
    rng = np.random.default_rng(5)
    cas, scores = _random_video(rng, 75, 6)
    base = _talkit(cas, scores, 100)
    for field, old in [
        ("normalize_clamp", False),
        ("upsample_mode", "nearest"),
        ("class_score_binary", False),
        ("outer_left_ceil", False),
        ("nms_length_offset", 0.0),
    ]:
        changed = _talkit(cas, scores, 100, get_preset("basnet", **{field: old}))
        assert sorted(changed) != sorted(base), field
