"""talkit's ``d2net`` and ``d2net_activitynet`` presets give the detections D2-Net's own
recipe gives (restated loop by loop in ``d2net_reference.py``), on the same CAS.

Snippets here are 1 s long, so the reference's snippet index sets and talkit's seconds
give the same tIoU; the departure (seconds, not rounded 16-frame indices) is shown apart.
"""

from __future__ import annotations

import numpy as np
import pytest
from d2net_reference import reference_video
from scipy.ndimage import gaussian_filter1d

from talkit.wtal_heads.evaluation.postprocess import (
    cas_to_detections,
    get_preset,
    select_classes,
    topk_mean,
)


def _times(t: int, stride: float = 1.0) -> np.ndarray:
    starts = np.arange(t) * stride
    return np.stack([starts, starts + stride], axis=1)


def _talkit(cas: np.ndarray, preset: str, ambiguous=(), divisor: int = 8) -> list:
    dets = cas_to_detections(
        cas, _times(len(cas)), topk_mean(cas, divisor=divisor), preset, ambiguous=ambiguous
    )
    return [(int(d["label"]), *d["segment"], d["score"]) for d in dets]


def _assert_same(ours: list, ref: list) -> None:
    ours, ref = sorted(ours), sorted(ref)
    assert len(ours) == len(ref), (len(ours), len(ref))
    assert [o[0] for o in ours] == [r[0] for r in ref]
    np.testing.assert_allclose(
        np.array([o[1:] for o in ours], dtype=float).reshape(-1, 3),
        np.array([r[1:] for r in ref], dtype=float).reshape(-1, 3),
        rtol=0,
        atol=1e-9,
    )


def _random_cas(rng: np.random.Generator, t: int, c: int, top: float = 1.0) -> np.ndarray:
    """A smooth CAS in [0, top] like sigmoid activations times the bottom-up attention."""
    z = gaussian_filter1d(rng.standard_normal((t, c)), sigma=rng.uniform(1, 4), axis=0)
    z = z * rng.uniform(2, 8) + rng.uniform(-3, 1, size=c)
    return top / (1 + np.exp(-z)) * rng.uniform(0.3, 1.0, size=(t, 1))


@pytest.mark.parametrize("seed", range(6))
def test_thumos_preset_gives_the_reference_detections(seed: int) -> None:
    rng = np.random.default_rng(seed)
    compared = 0
    for _ in range(4):
        t = int(rng.choice([12, 40, 150]))
        cas = _random_cas(rng, t, 5)
        # Ambiguous intervals on snippet boundaries (1 s snippets, so whole seconds).
        a = int(rng.integers(0, t - 3))
        ambiguous = [(float(a), float(a + rng.integers(1, 4)))]
        ref = reference_video(cas, ambiguous=ambiguous, snippets_per_second=1.0)
        _assert_same(_talkit(cas, "d2net", ambiguous), ref)
        compared += len(ref)
    assert compared > 0


@pytest.mark.parametrize("seed", range(6))
def test_activitynet_preset_gives_the_reference_detections(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    compared = 0
    for _ in range(4):
        t = int(rng.choice([12, 40, 150]))
        cas = _random_cas(rng, t, 6, top=2.0)  # attention rescaled to 2·b/max b
        ref = reference_video(cas, activity_net=True)
        _assert_same(_talkit(cas, "d2net_activitynet", divisor=4), ref)
        compared += len(ref)
    assert compared > 0


def test_the_ambiguous_filter_drops_only_overlapping_detections() -> None:
    rng = np.random.default_rng(7)
    cas = _random_cas(rng, 80, 3)
    everything = _talkit(cas, "d2net")
    assert everything
    _, s, e, _ = max(everything, key=lambda d: d[3])
    kept = _talkit(cas, "d2net", ambiguous=[(s + 0.5, s + 0.6)])
    assert (s, e) not in {(d[1], d[2]) for d in kept}
    assert all(d[2] <= s + 0.5 or d[1] >= s + 0.6 for d in kept)
    assert [d for d in everything if d[2] <= s + 0.5 or d[1] >= s + 0.6] == kept


def test_departure_ambiguous_overlap_is_in_seconds_not_rounded_snippets() -> None:
    # One clear action over snippets 10..19 of 16/25 s snippets; an Ambiguous interval that
    # ends 0.1 s inside the action's first snippet.
    stride = 16 / 25
    cas = np.full((40, 1), 0.01)
    cas[10:20, 0] = 0.9
    amb = [(8 * stride, 10 * stride + 0.1)]
    ref = reference_video(cas, ambiguous=amb)
    assert ref  # the reference rounds the interval to snippets 8..9: no overlap
    dets = cas_to_detections(cas, _times(40, stride), topk_mean(cas), "d2net", ambiguous=amb)
    assert dets == []  # talkit: 0.1 s of overlap in seconds is an overlap


def test_activitynet_class_rule_keeps_at_most_two_above_the_floor() -> None:
    pick = lambda s: select_classes(  # noqa: E731
        np.array(s), rule="topk_floor", value=0.5, topk=2, floor_high=1.0
    ).tolist()
    assert pick([0.9, 0.8, 0.7, 0.1]) == [0, 1]  # above the third best (0.7)
    assert pick([0.9, 0.6, 0.6, 0.1]) == [0]  # ties with the third best are out
    assert pick([0.4, 0.3, 0.2]) == []  # nothing above the 0.5 floor
    assert pick([1.4, 0.9, 0.2]) == [0]  # a score above 1 raises the floor to 1
    assert pick([0.9, 0.7]) == [0, 1]  # two classes: no third best


def test_a_run_much_weaker_than_its_surroundings_is_dropped_below_minus_0_4() -> None:
    # A weak run (0.04) between two strong ones, one quiet snippet apart: its outer windows
    # (2 snippets each side) average (0 + 1) / 2, so its score is 0.04 − 0.5 < −0.4.
    cas = np.zeros((30, 1))
    cas[2:8, 0] = 1.0
    cas[9:17, 0] = 0.04
    cas[18:24, 0] = 1.0
    ref = reference_video(cas, snippets_per_second=1.0)
    ours = _talkit(cas, "d2net")
    _assert_same(ours, ref)
    assert ours and (9.0, 17.0) not in {(d[1], d[2]) for d in ours}
    loose = cas_to_detections(
        cas, _times(30), topk_mean(cas), get_preset("d2net", min_score=None, relative_keep=0)
    )
    assert [9.0, 17.0] in [d["segment"] for d in loose]
