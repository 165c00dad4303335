"""DGAM's detection recipe (the ``dgam`` presets through ``detect_videos`` with per-stream
outputs) against the independent restatement of the authors' code in dgam_reference.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from talkit.wtal_heads.evaluation.postprocess import VideoCAS, detect_videos
from talkit.wtal_heads.head import build_head
from talkit.wtal_heads.inference import _video_cas
from tests.dgam_reference import reference_detections

CLASSES = ["a", "b", "c", "d"]


def _bumps(rng: np.random.Generator, t: int) -> np.ndarray:
    """An attention with a few raised stretches, as a trained λ looks."""
    lam = rng.uniform(0.0, 0.15, size=t)
    for _ in range(3):
        s = int(rng.integers(0, t - 6))
        lam[s : s + int(rng.integers(3, 12))] += rng.uniform(0.4, 0.8)
    return np.clip(lam, 0, 1)


def _streams(seed: int, t: int) -> dict[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = {}
    for s in ("rgb", "flow"):
        probs = rng.dirichlet(np.ones(len(CLASSES)) * 0.5)
        out[s] = {
            "lam": _bumps(rng, t),
            "sig": 1 / (1 + np.exp(-rng.normal(0, 2, size=(t, len(CLASSES))))),
            "probs": probs,
        }
    return out


def _video(streams: dict, fusion: tuple[float, float], dt: float) -> VideoCAS:
    t = len(streams["rgb"]["lam"])
    times = np.stack([np.arange(t) * dt, (np.arange(t) + 1) * dt], axis=1)
    per = {}
    for i, (s, o) in enumerate((("rgb", "flow"), ("flow", "rgb"))):
        lam = streams[s]["lam"][:, None]
        wt = lam * streams[s]["sig"]
        score = lam * (fusion[i] * wt + (1 - fusion[i]) * lam * streams[o]["sig"])
        per[s] = VideoCAS("v", streams[s]["probs"], score, times, streams[s]["lam"], wt)
    fused = VideoCAS("v", per["rgb"].class_scores, per["rgb"].cas, times)
    fused.streams = per
    return fused


def _records(dets) -> list[tuple[int, float, float, float]]:
    return sorted(
        (CLASSES.index(d["label"]), d["score"], d["segment"][0], d["segment"][1])
        for d in dets.to_results()["v"]
    )


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(
    ("preset", "fusion", "thresholds", "anet"),
    [
        ("dgam", (0.35, 0.65), (0.03, 0.08), False),
        ("dgam_activitynet", (0.5, 0.5), (0.01, 0.01), True),
    ],
)
def test_presets_give_the_reference_detections(seed, preset, fusion, thresholds, anet) -> None:
    dt = 0.64
    streams = _streams(seed, 60)
    # Lower a few attentions so the thresholds cut several runs per class.
    expect = reference_detections(
        streams, fusion=fusion, thresholds=thresholds, dt=dt, activity_net=anet
    )
    got = _records(detect_videos([_video(streams, fusion, dt)], CLASSES, preset))
    assert len(expect) > 0
    assert len(got) == len(expect)
    for g, e in zip(got, sorted(expect), strict=True):
        assert g[0] == e[0]
        assert g[1:] == pytest.approx(e[1:], abs=1e-9)


def test_the_head_output_reaches_detection_per_stream() -> None:
    """head.infer → per-stream VideoCAS → detections equal the reference computed from the
    head's own λ, σ(x Wᵀ) and class probabilities."""
    torch.manual_seed(0)
    m = build_head("dgam", in_dim=8, num_classes=4, params={}).eval()
    with torch.no_grad():  # a classifier and attention that respond to the features
        for s in ("rgb", "flow"):
            m.models[s].attention[2].bias.fill_(-1.0)
            m.models[s].classifier.weight.mul_(5)
    rng = np.random.default_rng(1)
    x = rng.normal(0, 2, size=(1, 40, 8)).astype(np.float32)
    inf = m.infer(torch.from_numpy(x))
    dt = 0.5
    times = np.stack([np.arange(40) * dt, (np.arange(40) + 1) * dt], axis=1)
    video = _video_cas(inf, 0, "v", times, ())
    video.streams = {s: _video_cas(i, 0, "v", times, ()) for s, i in inf.streams.items()}
    streams = {}
    for s, xs in (("rgb", x[0, :, :4]), ("flow", x[0, :, 4:])):
        att = m.models[s].attention
        w1, b1 = att[0].weight.detach().numpy(), att[0].bias.detach().numpy()
        w2, b2 = att[2].weight.detach().numpy(), att[2].bias.detach().numpy()
        lam = 1 / (1 + np.exp(-(np.maximum(xs @ w1.T + b1, 0) @ w2.T + b2)))[:, 0]
        w = m.models[s].classifier.weight.detach().numpy()
        b = m.models[s].classifier.bias.detach().numpy()
        f = (lam[:, None] * xs).sum(0) / lam.sum()
        logits = f @ w.T + b
        probs = np.exp(logits - logits.max())
        streams[s] = {
            "lam": lam,
            "sig": 1 / (1 + np.exp(-(xs @ w[:-1].T))),
            "probs": (probs / probs.sum())[:-1],
        }
    expect = reference_detections(streams, fusion=(0.35, 0.65), thresholds=(0.03, 0.08), dt=dt)
    got = _records(detect_videos([video], CLASSES, "dgam"))
    assert len(got) == len(expect) > 0
    for g, e in zip(got, sorted(expect), strict=True):
        assert g[0] == e[0]
        assert g[1:] == pytest.approx(e[1:], rel=1e-4, abs=1e-5)
