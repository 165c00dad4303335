"""DGAM's architecture, loss terms and stage alternation, each on tiny tensors against an
independent numpy computation written out in the test."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from talkit.wtal_heads.dgam import DGAM
from talkit.wtal_heads.dgam_losses import (
    background_loss,
    foreground_loss,
    guide_loss,
    kl_to_attention_prior,
    pool_fg_bg,
    smoothed_guide_scores,
)
from talkit.wtal_heads.head import build_head


def _np_gauss_reflect(s: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """1-D Gaussian along axis 0, radius round(4σ), half-sample symmetric edges."""
    r = int(4 * sigma + 0.5)
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    n = s.shape[0]
    out = np.zeros_like(s, dtype=np.float64)
    for t in range(n):
        for j, off in enumerate(range(-r, r + 1)):
            i = t + off
            while i < 0 or i >= n:  # reflect: ... b a | a b c ... c | c b ...
                i = -i - 1 if i < 0 else 2 * n - i - 1
            out[t] += k[j] * s[i]
    return out


def test_the_head_builds_the_reference_architecture() -> None:
    m = build_head("dgam", in_dim=2048, num_classes=20, params={})
    assert isinstance(m, DGAM)
    for s in ("rgb", "flow"):
        sm, cv = m.models[s], m.cvaes[s]
        assert sm.classifier.weight.shape == (21, 1024)  # background is the last class
        assert sm.attention[0].weight.shape == (256, 1024)
        assert sm.attention[2].weight.shape == (1, 256)
        assert cv.encoder[0].weight.shape == (128, 1025)
        assert cv.encoder[4].weight.shape == (256, 128)  # μ and log σ², 128 each
        assert cv.decoder[0].weight.shape == (128, 129)
        assert cv.decoder[4].weight.shape == (1024, 128)


def test_the_streams_are_independent_models() -> None:
    torch.manual_seed(0)
    m = build_head("dgam", in_dim=8, num_classes=3, params={}).eval()
    x = torch.randn(1, 6, 8)
    y = x.clone()
    y[..., 4:] += 1.0  # change the flow half only
    a, b = m(x), m(y)
    torch.testing.assert_close(a["att_rgb"], b["att_rgb"])
    assert not torch.allclose(a["att_flow"], b["att_flow"])


def test_fg_bg_pooling_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 3)).astype(np.float32)
    att = rng.uniform(size=(2, 5)).astype(np.float32)
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=np.float32)
    fg, bg = pool_fg_bg(torch.from_numpy(x), torch.from_numpy(att), torch.from_numpy(mask))
    for i in range(2):
        n = int(mask[i].sum())
        a, xi = att[i, :n], x[i, :n]
        efg = (a[:, None] * xi).sum(0) / (a.sum() + 1)
        ebg = ((1 - a)[:, None] * xi).sum(0) / ((1 - a).sum() + 1e-6)
        np.testing.assert_allclose(fg[i].numpy(), efg, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(bg[i].numpy(), ebg, rtol=1e-5, atol=1e-6)


def test_fg_and_bg_classification_losses_match_numpy() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(2, 4)).astype(np.float64)  # C = 3 plus background
    y = np.array([[1, 0, 1], [0, 1, 0]], dtype=np.float64)
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    expect_fg = np.mean([-(y[i] / y[i].sum() * logp[i, :3]).sum() for i in range(2)])
    expect_bg = np.mean(-logp[:, 3])
    t = torch.from_numpy(logits)
    assert float(foreground_loss(t, torch.from_numpy(y))) == pytest.approx(expect_fg, rel=1e-9)
    assert float(background_loss(t)) == pytest.approx(expect_bg, rel=1e-9)


def test_kl_is_against_the_attention_prior() -> None:
    rng = np.random.default_rng(2)
    mean = rng.normal(size=(2, 4, 3))
    log_var = rng.normal(size=(2, 4, 3)) * 0.3
    att = rng.uniform(size=(2, 4))
    # KL(N(μ, σ²) || N(λ, 1)) per element = ½(σ² + (μ−λ)² − 1 − log σ²)
    per = 0.5 * (np.exp(log_var) + (mean - att[..., None]) ** 2 - 1 - log_var)
    got = kl_to_attention_prior(*(torch.from_numpy(a) for a in (mean, log_var, att)))
    assert float(got) == pytest.approx(per.mean(), rel=1e-9)
    # The prior's mean is λ: a posterior equal to N(λ, I) costs nothing.
    zero = kl_to_attention_prior(
        torch.from_numpy(np.repeat(att[..., None], 3, -1)),
        torch.zeros(2, 4, 3, dtype=torch.float64),
        torch.from_numpy(att),
    )
    assert float(zero) == pytest.approx(0.0, abs=1e-12)


def test_guide_is_smoothed_detached_and_matches_numpy() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1, 9, 4))
    w = rng.normal(size=(3, 4))  # C = 2 plus background, no bias
    y = np.array([[0.0, 1.0]])
    att = rng.uniform(size=(1, 9))
    logits = x[0] @ w.T
    s = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    st = _np_gauss_reflect(s)
    g_fg, g_bg = st[:, 1], 1 - st[:, 2]
    expect = np.mean(np.abs(att[0] - g_fg) + np.abs(att[0] - g_bg))
    xt = torch.from_numpy(x).requires_grad_(True)
    wt = torch.from_numpy(w).requires_grad_(True)
    guide = smoothed_guide_scores(xt, wt)
    assert not guide.requires_grad  # a target: no gradient flows into the classifier
    np.testing.assert_allclose(guide[0].numpy(), st, rtol=1e-9)
    att_t = torch.from_numpy(att).requires_grad_(True)
    got = guide_loss(att_t, guide, torch.from_numpy(y))
    assert float(got.detach()) == pytest.approx(expect, rel=1e-9)
    got.backward()
    assert att_t.grad is not None and xt.grad is None and wt.grad is None


def _train_step(m: DGAM, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> str:
    stage, _ = m.stage(int(m.step))
    loss, _ = m.loss(m(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return stage


def test_stages_alternate_and_each_trains_only_its_part() -> None:
    torch.manual_seed(0)
    m = build_head(
        "dgam", in_dim=8, num_classes=3, params={"stage_iterations": 2, "ramp_epochs": 1}
    ).train()
    assert isinstance(m, DGAM)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2, betas=(0.8, 0.999))
    x = torch.randn(2, 10, 8)
    y = torch.tensor([[1.0, 0, 0], [0, 1.0, 1.0]])
    seen = []
    for _ in range(6):
        before_model = [p.detach().clone() for p in m.models.parameters()]
        before_cvae = [p.detach().clone() for p in m.cvaes.parameters()]
        stage = _train_step(m, opt, x, y)
        seen.append(stage)
        same_model = all(
            torch.equal(a, b) for a, b in zip(before_model, m.models.parameters(), strict=True)
        )
        same_cvae = all(
            torch.equal(a, b) for a, b in zip(before_cvae, m.cvaes.parameters(), strict=True)
        )
        epoch = m.stage(int(m.step) - 1)[1]
        if stage == "cvae":
            assert same_model
            # Epoch 0 has r = 0: the CVAE loss is zero, so the CVAE learns from epoch 1 on.
            assert same_cvae == (epoch == 0)
        else:
            assert same_cvae and not same_model
    assert seen == ["cvae", "cvae", "model", "model", "cvae", "cvae"]


def test_reconstruction_gradient_reaches_attention_through_the_frozen_decoder() -> None:
    torch.manual_seed(0)
    m = build_head("dgam", in_dim=8, num_classes=3, params={"stage_iterations": 1}).train()
    m.step.fill_(3)  # a model stage of epoch 1 (r > 0)
    out = m(torch.randn(2, 10, 8))
    loss, parts = m.loss(out, torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]))
    loss.backward()
    assert parts["stage_cvae"] == 0.0
    assert all(p.grad is None for p in m.cvaes.parameters())
    assert all(p.grad is not None for p in m.models["rgb"].attention.parameters())


def test_the_weights_table_is_applied_per_stream() -> None:
    torch.manual_seed(0)
    params = {"fg_weight": [1.0, 0.3], "bg_weight": [1.0, 1.0], "recon_weight": [0.1, 0.1]}
    m = build_head("dgam", in_dim=8, num_classes=3, params={**params, "recon_ramp": False})
    m.step.fill_(m.stage_iterations)  # first model stage, epoch 0
    torch.manual_seed(1)
    loss, parts = m.loss(m(torch.randn(2, 10, 8)), torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]))
    expect = sum(
        wf * parts[f"loss_fg_{s}"]
        + wb * parts[f"loss_bg_{s}"]
        + 0.1 * parts[f"loss_guide_{s}"]
        + 0.1 * parts[f"loss_recon_{s}"]
        for s, wf, wb in (("rgb", 1.0, 1.0), ("flow", 0.3, 1.0))
    )
    assert float(loss.detach()) == pytest.approx(expect, rel=1e-5)


def test_infer_gives_each_streams_wtcas_score_signal_and_classes() -> None:
    torch.manual_seed(0)
    m = build_head("dgam", in_dim=8, num_classes=3, params={"fusion": [0.35, 0.65]}).eval()
    x = torch.randn(1, 7, 8)
    inf = m.infer(x)
    assert inf.streams is not None
    halves = {"rgb": x[..., :4], "flow": x[..., 4:]}
    lam, sig = {}, {}
    for s, xs in halves.items():
        sm = m.models[s]
        lam[s] = sm(xs)[..., None]
        sig[s] = torch.sigmoid(xs @ sm.classifier.weight.detach()[:-1].t())
        f = (lam[s] * xs).sum(1) / lam[s].sum(1)
        probs = torch.softmax(sm.classifier(f), -1)[:, :3]
        torch.testing.assert_close(inf.streams[s].class_scores, probs)
        torch.testing.assert_close(inf.streams[s].threshold_cas, lam[s] * sig[s])
    # Score signal: λ_s·(α_s·λ_s σ_s + (1 − α_s)·λ_s σ_other), α = 0.35 RGB, 0.65 flow.
    for s, o, a in (("rgb", "flow", 0.35), ("flow", "rgb", 0.65)):
        expect = lam[s] * (a * lam[s] * sig[s] + (1 - a) * lam[s] * sig[o])
        torch.testing.assert_close(inf.streams[s].cas, expect)


def test_a_batch_without_labels_trains_nothing() -> None:
    torch.manual_seed(0)
    m = build_head("dgam", in_dim=8, num_classes=3, params={"stage_iterations": 1}).train()
    for _ in range(2):  # a CVAE stage, then a model stage
        loss, _ = m.loss(m(torch.randn(2, 5, 8)), torch.zeros(2, 3))
        loss.backward()
        assert float(loss.detach()) == 0.0
        assert all(p.grad is None for p in m.parameters())
