"""BaSNet and LGBM-Net: their parts, losses and the behaviours the methods rely on."""

from __future__ import annotations

import pytest
import torch

from talkit.errors import ConfigError
from talkit.wtal_heads.basnet import create_basnet
from talkit.wtal_heads.head import build_head, head_names
from talkit.wtal_heads.lgbm import create_lgbm
from talkit.wtal_heads.parts import MILScorer, TemporalEncoder


def test_basnet_default_has_the_reference_architecture() -> None:
    """Filter D→512→1 (k1), CAS D→2048 (k3) → 2048 (k3) → C+1 (k1, no bias)."""
    d, c = 2048, 20
    net = create_basnet(in_dim=d, num_classes=c)
    n_filter = sum(p.numel() for p in net.attention.parameters())
    n_cas = sum(p.numel() for p in net.cas.parameters())
    assert n_filter == (d * 512 + 512) + (512 * 1 + 1)
    assert n_cas == (d * 2048 * 3 + 2048) + (2048 * 2048 * 3 + 2048) + 2048 * (c + 1)
    assert net.cas.dropout.p == 0.7 and net.scorer.ratio == 8 and net.l1_weight == 1e-4
    out = net.eval()(torch.rand(2, 40, d))
    assert out["cas_base"].shape == (2, 40, c + 1) and out["attention"].shape == (2, 40)
    assert torch.allclose(out["score_supp"].sum(1), torch.ones(2))


def test_mil_scorer_is_top_k_mean_and_ignores_padding() -> None:
    torch.manual_seed(0)
    cas = torch.randn(3, 40, 5)
    scorer = MILScorer(ratio=8)
    expected = cas.sort(dim=1, descending=True).values[:, :5].mean(1)
    assert torch.allclose(scorer(cas), expected)
    # A padded video scores exactly as the same video alone, with k from its own length.
    mask = torch.ones(3, 40, dtype=torch.bool)
    mask[1, 24:] = False
    padded = cas.clone()
    padded[1, 24:] = 100.0  # padding must never win the top-k
    got = scorer(padded, mask)
    assert torch.allclose(got[1], scorer(cas[1:2, :24])[0])
    assert torch.allclose(got[0], expected[0])


def test_basnet_loss_is_bce_against_normalised_labels_with_background_one_and_zero() -> None:
    net = create_basnet(in_dim=8, num_classes=3, cas_dim=16, filter_dim=4)
    labels = torch.tensor([[1.0, 0.0, 1.0]])
    out = {
        "score_base": torch.tensor([[0.3, 0.1, 0.2, 0.4]]),
        "score_supp": torch.tensor([[0.5, 0.1, 0.3, 0.1]]),
        "attention": torch.tensor([[0.5, 1.0, 0.0, 0.5]]),
    }
    total, parts = net.loss(out, labels)

    def bce(p: list[float], t: list[float]) -> float:
        p_, t_ = torch.tensor(p), torch.tensor(t)
        return float(-(t_ * p_.log() + (1 - t_) * (1 - p_).log()).mean())

    base = bce([0.3, 0.1, 0.2, 0.4], [1 / 3, 0, 1 / 3, 1 / 3])  # background target 1
    supp = bce([0.5, 0.1, 0.3, 0.1], [0.5, 0, 0.5, 0])  # background target 0
    assert parts["loss_base"] == pytest.approx(base, rel=1e-5)
    assert parts["loss_supp"] == pytest.approx(supp, rel=1e-5)
    assert parts["loss_l1"] == pytest.approx(2.0)  # Σ_t |w|, averaged over videos
    assert float(total) == pytest.approx(base + supp + 1e-4 * 2.0, rel=1e-5)


def test_suppressed_branch_sees_only_what_the_filter_lets_through() -> None:
    torch.manual_seed(0)
    net = create_basnet(in_dim=8, num_classes=3, cas_dim=16, filter_dim=4).eval()
    with torch.no_grad():
        net.attention.head[-1].bias.fill_(-1e4)  # the filter closes: w = 0 everywhere
        out = net(torch.rand(2, 12, 8))
        blank = net.cas(torch.zeros(2, 12, 8))
    assert torch.allclose(out["attention"], torch.zeros(2, 12))
    assert torch.allclose(out["cas_supp"], blank)
    assert not torch.allclose(out["cas_base"], blank)


@pytest.mark.parametrize("global_op", ["lstm", "nonlocal", "pool"])
def test_lgbm_global_op_sees_the_whole_video_where_basnet_sees_a_window(global_op: str) -> None:
    """Changing snippet 8 moves LGBM-Net's CAS at the first snippet; BaSNet's two
    k3 convs only see five snippets."""
    torch.manual_seed(0)
    x = torch.rand(1, 30, 8)
    y = x.clone()
    y[0, 8] += 5.0  # far outside two k3 convs around snippet 0
    lg = create_lgbm(
        in_dim=8, num_classes=3, global_op=global_op, cas_dim=16, attention_dim=8
    ).eval()
    bas = create_basnet(in_dim=8, num_classes=3, cas_dim=16, filter_dim=4).eval()
    with torch.no_grad():
        for p in lg.parameters():  # trained-like weights (the non-local block starts at zero)
            p.normal_(0, 0.1)
        assert not torch.equal(lg(x)["cas_base"][0, 0], lg(y)["cas_base"][0, 0])
        assert not torch.equal(lg(x)["attention"][0, 0], lg(y)["attention"][0, 0])
        assert torch.allclose(bas(x)["cas_base"][0, 0], bas(y)["cas_base"][0, 0])
    assert lg.postprocess == "lgbm" and bas.postprocess == "basnet"


def test_lgbm_attention_is_supervised_by_the_top_labelled_class_activation() -> None:
    torch.manual_seed(0)
    net = create_lgbm(in_dim=8, num_classes=3, cas_dim=16, attention_dim=8, guide_weight=1.0)
    x = torch.rand(2, 20, 8)
    labels = torch.tensor([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    out = net(x)
    target = net.attention_target(out, labels)
    probs = torch.softmax(out["cas_base"], dim=-1)
    for b in range(2):
        scores = out["score_base"][b, :3].masked_fill(labels[b] <= 0, -1.0)
        top = int(scores.argmax())
        assert labels[b, top] == 1
        assert torch.allclose(target[b], probs[b, :, top])
    assert not target.requires_grad  # a target, not a path for gradients into the CAS
    total, parts = net.loss(out, labels)
    assert parts["loss_guide"] == pytest.approx(
        float((out["attention"] - target).abs().mean().detach()), rel=1e-5
    )
    total.backward()
    assert net.attention.encoder.branches[1].lstm.weight_ih_l0.grad is not None


def test_masked_lstm_branch_ignores_padding() -> None:
    torch.manual_seed(0)
    enc = TemporalEncoder(in_dim=4, hidden_dim=6, branches=("conv", "lstm"), conv_kernel=1)
    x = torch.rand(2, 10, 4)
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[0, 6:] = False
    noisy = x.clone()
    noisy[0, 6:] = 50.0
    got = enc(noisy, mask)[0, :6]
    alone = enc(x[:1, :6])[0]
    assert torch.allclose(got, alone, atol=1e-6)


def test_heads_are_built_by_name_with_clear_errors() -> None:
    assert {"basnet", "lgbm"} <= set(head_names())
    net = build_head("lgbm", in_dim=16, num_classes=4, params={"global_op": "pool", "cas_dim": 8})
    assert net.num_classes == 4
    with pytest.raises(ConfigError, match="unknown head 'bsnet'"):
        build_head("bsnet", in_dim=16, num_classes=4, params={})
    with pytest.raises(ConfigError, match="do not fit head 'basnet'"):
        build_head("basnet", in_dim=16, num_classes=4, params={"global_op": "lstm"})
    with pytest.raises(ConfigError, match="global_op must be one of"):
        build_head("lgbm", in_dim=16, num_classes=4, params={"global_op": "transformer"})


def test_standardized_input_travels_with_the_weights() -> None:
    net = create_basnet(in_dim=4, num_classes=2, cas_dim=8, filter_dim=4).eval()
    x = torch.rand(1, 6, 4) * 10 + 3
    net.set_input_stats(x[0].mean(0), x[0].std(0))
    twin = create_basnet(in_dim=4, num_classes=2, cas_dim=8, filter_dim=4).eval()
    twin.load_state_dict(net.state_dict())
    with torch.no_grad():
        assert torch.allclose(net(x)["cas_supp"], twin(x)["cas_supp"])
        standardized = net.standardize(x)
    assert torch.allclose(standardized.mean(1), torch.zeros(1, 4), atol=1e-5)


def test_head_registry_refuses_a_second_builder_under_one_name() -> None:
    from talkit.wtal_heads.head import register_head

    with pytest.raises(ValueError, match="registered twice"):
        register_head("basnet")(lambda **kw: None)  # type: ignore[arg-type,return-value]


def test_params_that_do_not_fit_are_config_errors_but_builder_bugs_are_not() -> None:
    from talkit.wtal_heads import head as head_module

    with pytest.raises(ConfigError, match=r"do not fit head 'basnet'.*cas_width") as info:
        build_head("basnet", in_dim=8, num_classes=3, params={"cas_width": 4})
    assert "cas_dim" in (info.value.hint or "")
    with pytest.raises(ConfigError, match="global_op must be one of"):
        build_head("lgbm", in_dim=8, num_classes=3, params={"global_op": "gru"})

    def broken(*, in_dim: int, num_classes: int, width: int = 4) -> None:
        raise TypeError("a bug inside the builder")

    head_module._HEADS["broken_for_test"] = broken  # type: ignore[assignment]
    try:
        with pytest.raises(TypeError, match="a bug inside the builder"):
            build_head("broken_for_test", in_dim=8, num_classes=3, params={"width": 2})
    finally:
        del head_module._HEADS["broken_for_test"]
