"""D2-Net's architecture, loss terms, prototype and inference, each on tiny tensors against
an independent numpy computation written out in the test."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from talkit.wtal_heads.config import load_config
from talkit.wtal_heads.d2net import D2Net
from talkit.wtal_heads.d2net_losses import (
    attention_embeddings,
    discriminative_loss,
    inter_video_loss,
    intra_video_loss,
    pair_weights,
    singular_ratio,
    topk_scores,
)
from talkit.wtal_heads.head import build_head


def _np_cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-8))


def _head(preset: str = "d2net_thumos14", **params) -> D2Net:
    cfg = load_config(preset)
    return build_head("d2net", in_dim=2048, num_classes=20, params={**cfg.model.params, **params})  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("preset", "kernel", "dilation", "ckernel"),
    [("d2net_thumos14", 3, 1, 1), ("d2net_activitynet12", 5, 2, 5)],
)
def test_presets_build_the_reference_architecture(preset, kernel, dilation, ckernel) -> None:
    torch.manual_seed(0)
    m = _head(preset)
    for conv in (m.conv1, m.conv2):
        assert conv.groups == 2 and conv.weight.shape == (2048, 1024, kernel)
        assert conv.dilation == (dilation,)
    assert m.classifier.groups == 2 and m.classifier.weight.shape == (40, 1024, ckernel)
    assert m.dropout.p == 0.7 and m.act.negative_slope == 0.2
    w = m.conv1.weight.detach().numpy()
    assert abs(w.std() - 0.01) < 5e-4 and abs(w.mean()) < 5e-4
    assert float(m.conv1.bias.detach().abs().max()) == 0.0
    assert m.prototype.shape == (1, 1024) and float(m.prototype.abs().sum()) == 0.0


def test_the_rgb_and_flow_halves_stay_apart() -> None:
    torch.manual_seed(0)
    m = build_head("d2net", in_dim=16, num_classes=3, params={}).eval()
    x = torch.randn(1, 12, 16)
    y = x.clone()
    y[..., 8:] += torch.randn(1, 12, 8)  # change the flow half only
    hx = m.conv2(m.conv1(x.transpose(1, 2))).transpose(1, 2)
    hy = m.conv2(m.conv1(y.transpose(1, 2))).transpose(1, 2)
    torch.testing.assert_close(hx[..., :8], hy[..., :8])  # the RGB half does not see it
    assert not torch.allclose(hx[..., 8:], hy[..., 8:])
    # The CAS is the mean of the two streams' sigmoids: the RGB logits are the first C.
    out = m(x)
    logits = m.classifier(
        (m.act(m.conv2(m.act(m.conv1(x.transpose(1, 2))) + x.transpose(1, 2))))
        + m.act(m.conv1(x.transpose(1, 2)))
        + x.transpose(1, 2)
    ).transpose(1, 2)
    expect = (torch.sigmoid(logits[..., :3]) + torch.sigmoid(logits[..., 3:])) / 2
    torch.testing.assert_close(out["cas"], expect)


def test_video_scores_are_the_top_ceil_t_over_8_mean_of_valid_rows() -> None:
    rng = np.random.default_rng(0)
    cas = rng.uniform(size=(2, 20, 3)).astype(np.float32)
    lengths = np.array([20, 9])
    got = topk_scores(torch.from_numpy(cas), torch.from_numpy(lengths), 8).numpy()
    for i, n in enumerate(lengths):
        k = math.ceil(n / 8)
        expect = np.sort(cas[i, :n], axis=0)[::-1][:k].mean(0)
        np.testing.assert_allclose(got[i], expect, rtol=1e-6)


def test_discriminative_loss_with_pair_weights_and_class_weights() -> None:
    p = np.array([[0.9, 0.2, 0.0005], [0.3, 0.6, 0.9995]])  # two get clamped
    y = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    w = np.array([[0.3, 0.1, 0.2], [0.0, 0.5, 0.0]])  # [w0, w1, w2] per video
    gamma = 0.01
    got = discriminative_loss(torch.tensor(p), torch.tensor(y), torch.tensor(w), gamma=gamma).item()

    pc = np.clip(p, 1e-3, 1 - 1e-3)
    total = 0.0
    for i in range(2):
        w0, w1, w2 = w[i]
        for c in range(3):
            pos = (1 - pc[i, c] + w2 + gamma * w0) ** 2 * y[i, c] * np.log(pc[i, c])
            neg = (pc[i, c] + w2 + gamma * w1) ** 2 * (1 - y[i, c]) * np.log(1 - pc[i, c])
            weight = 3.0 if y[i, c] == 1 else 1.0  # W_c = C for positive classes
            total += -(pos + neg) * weight
    assert got == pytest.approx(total / 6, rel=1e-9)


def test_attention_embeddings_and_pair_weights() -> None:
    # Video 0: two action snippets (max CAS 0.9, 0.7), two background (0.1, 0.3); video 1:
    # everything at 0.6, so no background (1 − 0.6 < 0.5); video 2: all background.
    cas = np.array(
        [
            [[0.9, 0.1], [0.1, 0.1], [0.2, 0.7], [0.3, 0.2]],
            [[0.6, 0.2], [0.6, 0.2], [0.6, 0.2], [0.6, 0.2]],
            [[0.25, 0.1], [0.1, 0.3], [0.2, 0.2], [0.05, 0.1]],
        ]
    )
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(3, 4, 5))
    lengths = np.array([4, 4, 3])  # video 2's last row is padding
    fg, bg, has_fg, has_bg, most_bg = attention_embeddings(
        torch.tensor(cas),
        torch.tensor(emb),
        torch.tensor(lengths),
        fg_threshold=0.5,
        bg_threshold=0.5,
    )
    assert has_fg.tolist() == [True, True, False] and has_bg.tolist() == [True, False, True]

    def pooled(i: int, which: str) -> np.ndarray:
        a = cas[i, : lengths[i]].max(1)
        att = np.where(a >= 0.5, a, 0) if which == "fg" else np.where(1 - a >= 0.5, 1 - a, 0)
        return (att[:, None] * emb[i, : lengths[i]]).sum(0) / att.sum()

    np.testing.assert_allclose(fg[0].numpy(), pooled(0, "fg"))
    np.testing.assert_allclose(fg[1].numpy(), pooled(1, "fg"))
    np.testing.assert_allclose(bg[0].numpy(), pooled(0, "bg"))
    np.testing.assert_allclose(bg[2].numpy(), pooled(2, "bg"))
    # Most background: arg-min of the max CAS among valid rows (not the padded one).
    np.testing.assert_allclose(most_bg[0].numpy(), emb[0, 1])
    np.testing.assert_allclose(most_bg[2].numpy(), emb[2, 2])

    gen = torch.Generator().manual_seed(5)
    w = pair_weights(fg, bg, has_fg, has_bg, generator=gen).numpy()
    # The same draws, in the documented order: fg pairing, bg pairing, then the separation
    # subsets (fg videos, bg videos).
    gen = torch.Generator().manual_seed(5)
    fg_ids, bg_ids = [0, 1], [0, 2]
    perm_fg = torch.randperm(2, generator=gen).tolist()
    perm_bg = torch.randperm(2, generator=gen).tolist()
    pick_fg = torch.randperm(2, generator=gen)[:2].tolist()
    pick_bg = torch.randperm(2, generator=gen)[:2].tolist()
    F_, B_ = fg.numpy(), bg.numpy()
    expect = np.zeros((3, 3))
    for j, v in enumerate(fg_ids):
        expect[v, 0] = 1 - _np_cos(F_[v], F_[fg_ids[perm_fg[j]]])
    for j, v in enumerate(bg_ids):
        expect[v, 1] = 1 - _np_cos(B_[v], B_[bg_ids[perm_bg[j]]])
    for a, b in zip(pick_fg, pick_bg, strict=True):
        expect[fg_ids[a], 2] = max(0.0, _np_cos(F_[fg_ids[a]], B_[bg_ids[b]]))
    np.testing.assert_allclose(w, expect, atol=1e-12)
    assert w[2, 0] == 0 and w[1, 1] == 0 and w[2, 2] == 0  # missing embeddings give 0


def test_singular_ratio_on_matrices_with_known_singular_values() -> None:
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
    r, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(3, 3)))
    m = q @ np.diag([4.0, 2.0, 0.5]) @ r.T  # singular values 4, 2, 0.5
    assert singular_ratio(torch.tensor(m)).item() == pytest.approx(math.log(8.0), rel=1e-9)
    m0 = q @ np.diag([4.0, 2.0, 0.0]) @ r.T  # a zero singular value is ignored with eps
    assert singular_ratio(torch.tensor(m0), eps=1e-5).item() == pytest.approx(math.log(2.0))


def test_inter_video_loss_on_known_singular_values() -> None:
    # Videos 0 and 1 are labelled with classes 0 and 1; class 2 is absent from the batch.
    # q_0 = [0.6, 0.2, 0.02] with 0.02 <= 0.2·0.6 masked -> [0.75, 0.25, 0];
    # q_1 = [0.25, 0.75, 0] likewise. M = [[.75, .25, 0], [.25, .75, 0], [0, 0, 0]]:
    # singular values 1, 0.5 and 0 (ignored) -> log 2.
    p = torch.tensor([[0.6, 0.2, 0.02], [0.2, 0.6, 0.1]])
    y = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]])
    assert inter_video_loss(p, y).item() == pytest.approx(math.log(2.0), rel=1e-6)
    # Two videos of class 0: Y averages them (rows of class 0 = mean of the two q).
    p2 = torch.tensor([[0.6, 0.2, 0.02], [0.2, 0.6, 0.1], [0.9, 0.05, 0.3]])
    y2 = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [1.0, 0, 1.0]])
    q = np.array([[0.6, 0.2, 0.0], [0.2, 0.6, 0.0], [0.9, 0.0, 0.3]])
    q /= q.sum(1, keepdims=True)
    ynp = y2.numpy().T / np.maximum(y2.numpy().sum(0), 1)[:, None]
    s = np.linalg.svd(ynp @ q, compute_uv=False)
    s = s[s > 1e-5]
    assert inter_video_loss(p2, y2).item() == pytest.approx(np.log(s.max() / s.min()), rel=1e-5)


def _ds_case(s_fg: list[float], s_bg: list[float]) -> float:
    """L_DS of one video built so that the fg group's max labelled CAS is ``s_fg`` and the bg
    group's max CAS is ``s_bg``: fg snippets point away from μ, bg snippets along it."""
    n_fg, n_bg = len(s_fg), len(s_bg)
    t = n_fg + n_bg
    mu = torch.tensor([[1.0, 0.0]])
    emb = torch.zeros(1, t, 2)
    emb[0, :n_fg] = torch.tensor([-1.0, 0.2])  # b = (1 − cos)/2 > 0.5
    emb[0, n_fg:] = torch.tensor([1.0, 0.1])  # b < 0.5
    cas = torch.zeros(1, t, 3)
    cas[0, :n_fg, 1] = torch.tensor(s_fg)  # class 1 is the label
    cas[0, :n_fg, 2] = 0.99  # an unlabelled class is not read on fg snippets
    cas[0, n_fg:, 2] = torch.tensor(s_bg)  # any class counts on bg snippets
    y = torch.tensor([[0.0, 1.0, 0.0]])
    return intra_video_loss(cas, emb, y, torch.tensor([t]), mu, bg_threshold=0.5).item()


def test_intra_video_loss_on_known_singular_values() -> None:
    # fg mean s = 0.8, bg mean s = 0.2: M = [[.8, .2], [.2, .8]], singular values 1 and 0.6.
    assert _ds_case([0.7, 0.9], [0.1, 0.3, 0.2]) == pytest.approx(math.log(1 / 0.6), rel=1e-6)
    # fg 0.9, bg 0.4: M = [[.9, .1], [.4, .6]]: numpy's SVD of the same matrix.
    s = np.linalg.svd(np.array([[0.9, 0.1], [0.4, 0.6]]), compute_uv=False)
    assert _ds_case([0.9], [0.4, 0.4]) == pytest.approx(np.log(s[0] / s[1]), rel=1e-6)
    # A perfect separation (1 vs 0) is the identity: log 1 = 0.
    assert _ds_case([1.0, 1.0], [0.0]) == pytest.approx(0.0, abs=1e-6)


def test_intra_video_loss_is_zero_before_the_prototype_exists() -> None:
    cas = torch.rand(1, 6, 2)
    emb = torch.randn(1, 6, 4)
    out = intra_video_loss(
        cas, emb, torch.tensor([[1.0, 0]]), torch.tensor([6]), torch.zeros(1, 4), bg_threshold=0.5
    )
    assert out.item() == 0.0


def test_loss_updates_the_prototype_and_switches_denoising_on_as_the_reference() -> None:
    torch.manual_seed(0)
    m = build_head(
        "d2net", in_dim=8, num_classes=2, params={"denoise_after": 3, "denoise_every": 2}
    )
    emb = torch.randn(3, 6, 4)
    cas = torch.full((3, 6, 2), 0.55)
    cas[0, 2] = torch.tensor([0.2, 0.1])  # video 0's most background snippet: row 2
    cas[1, 4] = torch.tensor([0.3, 0.4])  # video 1's: row 4
    # video 2: everything at 0.55, so no snippet passes the bg threshold: no update
    out = {"cas": cas, "embedding": emb, "lengths": torch.tensor([6, 6, 6])}
    y = torch.tensor([[1.0, 0], [0, 1.0], [1.0, 1.0]])
    mu0 = torch.randn(1, 4)
    m.prototype.copy_(mu0)
    m.train()
    _, parts = m.loss(out, y)
    expect = 0.9 * mu0.numpy() + 0.1 * np.mean([emb[0, 2].numpy(), emb[1, 4].numpy()], axis=0)
    np.testing.assert_allclose(m.prototype.numpy(), expect, rtol=1e-6)
    # Denoising runs at the reference's `itr > denoise_after and itr % 2 == 0`, 0-based.
    seen = [parts["denoise"]]
    for _ in range(5):
        seen.append(m.loss(out, y)[1]["denoise"])
    assert seen == [0.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    assert int(m.step) == 6
    # Evaluation-mode losses neither move μ nor count steps.
    m.eval()
    before = m.prototype.clone()
    m.loss(out, y)
    assert torch.equal(m.prototype, before) and int(m.step) == 6


def test_videos_shorter_than_five_snippets_take_no_part() -> None:
    torch.manual_seed(0)
    m = build_head("d2net", in_dim=8, num_classes=2, params={}).eval()  # no dropout draws
    x = torch.randn(2, 10, 8)
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[1, 4:] = False  # video 1 has 4 snippets
    y = torch.tensor([[1.0, 0], [0, 1.0]])
    with torch.no_grad():
        both, alone = m(x, mask), m(x[:1])
    torch.manual_seed(1)
    with_short, _ = m.loss(both, y)
    torch.manual_seed(1)
    without, _ = m.loss(alone, y[:1])
    assert with_short.item() == pytest.approx(without.item(), rel=1e-6)
    mask[1, 4] = True  # at 5 snippets it counts
    with torch.no_grad():
        five = m(x, mask)
    torch.manual_seed(1)
    assert m.loss(five, y)[0].item() != pytest.approx(without.item(), rel=1e-3)


def test_inference_weights_the_cas_by_the_bottom_up_attention() -> None:
    torch.manual_seed(0)
    m = build_head("d2net", in_dim=8, num_classes=3, params={}).eval()
    m.prototype.copy_(torch.randn(1, 4))
    x = torch.randn(2, 17, 8)
    with torch.no_grad():
        out = m(x)
    inf = m.infer(x)
    e, mu = out["embedding"].numpy(), m.prototype.numpy()[0]
    for i in range(2):
        b = np.array([(1 - _np_cos(e[i, t], mu)) / 2 for t in range(17)])
        cas = out["cas"][i].numpy() * b[:, None]
        np.testing.assert_allclose(inf.attention[i].numpy(), b, rtol=1e-5)
        np.testing.assert_allclose(inf.cas[i].numpy(), cas, rtol=1e-5)
        top = np.sort(cas, axis=0)[::-1][: 17 // 8].mean(0)  # floor(T/8) at detection
        np.testing.assert_allclose(inf.class_scores[i].numpy(), top, rtol=1e-5)


def test_activitynet_inference_rescales_the_attention_to_twice_its_max() -> None:
    torch.manual_seed(0)
    m = build_head(
        "d2net", in_dim=8, num_classes=3, params={"rescale_attention": True, "eval_topk_ratio": 4}
    ).eval()
    m.prototype.copy_(torch.randn(1, 4))
    x = torch.randn(1, 12, 8)
    mask = torch.ones(1, 12, dtype=torch.bool)
    mask[0, 9:] = False
    inf = m.infer(x, mask)
    with torch.no_grad():
        e, mu = m(x, mask)["embedding"][0].numpy(), m.prototype.numpy()[0]
    b = np.array([(1 - _np_cos(e[t], mu)) / 2 for t in range(12)])
    np.testing.assert_allclose(inf.attention[0].numpy(), b * 2 / b[:9].max(), rtol=1e-5)
