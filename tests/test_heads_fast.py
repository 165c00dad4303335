"""The shared-work forward of BaSNet and LGBM-Net computes what two plain calls compute.

``CASModule.forward_pair`` and the CPU LSTM recurrence (talkit.wtal_heads.lstm) exist to
make LGBM-Net cheaper; these tests restate the plain formulation (each branch called on x
and on w ⊙ x with torch's own Conv1d and LSTM) and compare outputs and gradients.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from talkit.wtal_heads.basnet import create_basnet
from talkit.wtal_heads.lgbm import create_lgbm
from talkit.wtal_heads.lstm import input_projection, lstm_recurrence, run_lstm
from talkit.wtal_heads.parts import ConvBranch, LSTMBranch, TemporalEncoder
from talkit.wtal_heads.temporal_conv import (
    leaky_conv_pair,
    temporal_conv,
    temporal_conv_of_concat,
)


def _plain_encoder(enc: TemporalEncoder, x: Tensor) -> Tensor:
    outs = []
    for branch in enc.branches:
        if isinstance(branch, ConvBranch):
            outs.append(branch.act(branch.conv(x.transpose(1, 2))).transpose(1, 2))
        elif isinstance(branch, LSTMBranch):
            outs.append(branch.lstm(x)[0])  # torch's own (mkldnn on CPU) LSTM
        else:
            outs.append(branch(x))
    return torch.cat(outs, dim=-1)


def _plain_forward(net, x: Tensor) -> dict[str, Tensor]:
    """The old formulation: the CAS module called twice, torch's Conv1d and LSTM."""
    x = net.standardize(x)
    att = net.attention
    w = torch.sigmoid(att.head(_plain_encoder(att.encoder, x).transpose(1, 2))).squeeze(1)

    def cas(inp: Tensor) -> Tensor:
        m = net.cas
        h = m.dropout(m.act(m.merge(_plain_encoder(m.encoder, inp).transpose(1, 2))))
        return m.classifier(h).transpose(1, 2)

    cas_base, cas_supp = cas(x), cas(w[..., None] * x)
    return {
        "attention": w,
        "cas_base": cas_base,
        "cas_supp": cas_supp,
        "score_base": torch.softmax(net.scorer(cas_base), dim=-1),
        "score_supp": torch.softmax(net.scorer(cas_supp), dim=-1),
    }


@pytest.mark.parametrize(
    ("head", "params"),
    [
        ("lgbm", {"global_op": "lstm"}),
        ("lgbm", {"global_op": "nonlocal"}),
        ("lgbm", {"global_op": "pool", "local_kernel": 5}),
        ("basnet", {}),
    ],
)
def test_the_shared_work_forward_equals_two_plain_calls(head: str, params: dict) -> None:
    torch.manual_seed(0)
    make = create_lgbm if head == "lgbm" else create_basnet
    net = make(in_dim=48, num_classes=5, cas_dim=32, **params).eval()
    if head == "lgbm":
        net.attention.encoder.branches[0].conv.bias.data.normal_()
    x = torch.randn(3, 23, 48)
    labels = torch.tensor([[1.0, 0, 0, 1, 0], [0, 1, 0, 0, 0], [0, 0, 0, 0, 1]])
    got, ref = net(x), _plain_forward(net, x)
    for key in ref:
        torch.testing.assert_close(got[key], ref[key], rtol=1e-5, atol=1e-5)
    # Gradients too: the LSTM recurrence has a hand-written backward.
    g_new = torch.autograd.grad(net.loss(got, labels)[0], list(net.parameters()))
    g_old = torch.autograd.grad(net.loss(ref, labels)[0], list(net.parameters()))
    for a, b in zip(g_new, g_old, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_lgbm_at_the_papers_width_equals_the_plain_formulation() -> None:
    torch.manual_seed(1)
    net = create_lgbm(in_dim=2048, num_classes=20).eval()  # attention 512, CAS 2048
    x = torch.rand(2, 12, 2048)
    with torch.no_grad():
        got, ref = net(x), _plain_forward(net, x)
    for key in ref:
        torch.testing.assert_close(got[key], ref[key], rtol=1e-5, atol=1e-5)


def test_lstm_recurrence_matches_torch_lstm_and_its_gradients_check() -> None:
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(6, 4, batch_first=True, bidirectional=True).double()
    x = torch.randn(2, 7, 6, dtype=torch.float64, requires_grad=True)
    ours = run_lstm(lstm, *input_projection(lstm, x))
    torch.testing.assert_close(ours, lstm(x)[0], rtol=1e-12, atol=1e-12)
    pre = torch.randn(2, 5, 12, dtype=torch.float64, requires_grad=True)
    w_hh = torch.randn(12, 3, dtype=torch.float64, requires_grad=True)
    for reverse in (False, True):
        assert torch.autograd.gradcheck(
            lambda p, w, r=reverse: lstm_recurrence(p, w, reverse=r), (pre, w_hh)
        )


def test_the_pair_recurrence_is_two_plain_lstm_calls_and_its_gradients_check() -> None:
    """With ``w``: sequences 0..B-1 read x, B..2B-1 read w ⊙ x, both directions."""
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(6, 4, batch_first=True, bidirectional=True).double()
    x = torch.randn(2, 7, 6, dtype=torch.float64)
    w = torch.rand(2, 7, dtype=torch.float64, requires_grad=True)
    proj, bias = input_projection(lstm, x)
    ours = run_lstm(lstm, proj, bias, w)
    plain = torch.cat([lstm(x)[0], lstm(w[..., None] * x)[0]])
    torch.testing.assert_close(ours, plain, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(plain)
    wrt = [w, *lstm.parameters()]
    for a, b in zip(
        torch.autograd.grad(ours, wrt, g), torch.autograd.grad(plain, wrt, g), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    proj = proj.detach().requires_grad_()
    bias = bias.detach().requires_grad_()
    assert torch.autograd.gradcheck(lambda p, b, v: run_lstm(lstm, p, b, v), (proj, bias, w))


def test_padded_batches_share_work_through_the_packed_lstm() -> None:
    torch.manual_seed(0)
    branch = LSTMBranch(in_dim=16, out_dim=8)
    x = torch.randn(2, 10, 16)
    w = torch.rand(2, 10)
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[1, 6:] = False
    both = branch.forward_both(x, w, mask)
    base, supp = both[:2], both[2:]
    torch.testing.assert_close(base, branch(x, mask), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(supp, branch(w[..., None] * x, mask), rtol=1e-6, atol=1e-6)
    assert torch.all(supp[1, 6:] == 0)  # padded steps stay out of the LSTM


@pytest.mark.parametrize(
    ("kernel", "bias", "input_grad"),
    [(3, True, True), (5, False, True), (3, True, False), (1, True, True)],
)
def test_temporal_conv_equals_conv1d_with_gradients(
    kernel: int, bias: bool, input_grad: bool
) -> None:
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(6, 4, kernel, padding=kernel // 2, bias=bias).double()
    x = torch.randn(3, 9, 6, dtype=torch.float64, requires_grad=input_grad)
    got = temporal_conv(x, conv)
    want = conv(x.transpose(1, 2)).transpose(1, 2)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    params = [x] * input_grad + list(conv.parameters())
    g = torch.randn_like(want)
    for a, b in zip(
        torch.autograd.grad(got, params, g), torch.autograd.grad(want, params, g), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    if input_grad:  # and the hand-written backward is the true derivative
        assert torch.autograd.gradcheck(lambda v: temporal_conv(v, conv), (x,))


def test_temporal_conv_keeps_videos_apart_at_the_ends() -> None:
    """Padding rows separate the flattened videos: a video's output ignores its neighbours."""
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(5, 3, 3, padding=1)
    x = torch.randn(4, 2, 5)
    alone = torch.cat([temporal_conv(x[i : i + 1], conv) for i in range(4)])
    torch.testing.assert_close(temporal_conv(x, conv), alone, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    ("kernel", "length", "bias"),
    [(3, 9, True), (5, 7, False), (1, 4, True), (5, 1, True), (3, 2, True)],
)
def test_leaky_conv_pair_is_two_plain_convs_with_gradients(
    kernel: int, length: int, bias: bool
) -> None:
    """Short sequences too: with T < k // 2 + 1 some taps reach no output at all."""
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(5, 4, kernel, padding=kernel // 2, bias=bias).double()
    x = torch.randn(2, length, 5, dtype=torch.float64, requires_grad=True)
    w = torch.rand(2, length, dtype=torch.float64, requires_grad=True)

    def plain(inp: Tensor) -> Tensor:
        return torch.nn.functional.leaky_relu(conv(inp.transpose(1, 2)).transpose(1, 2), 0.2)

    got = leaky_conv_pair(x, w, conv, 0.2)
    want = torch.cat([plain(x), plain(w[..., None] * x)])
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    params = [x, w, *conv.parameters()]
    g = torch.randn_like(want)
    for a, b in zip(
        torch.autograd.grad(got, params, g), torch.autograd.grad(want, params, g), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(lambda v, s: leaky_conv_pair(v, s, conv, 0.2), (x, w))


def test_a_conv_of_a_concatenation_reads_the_parts_in_place() -> None:
    """The merge conv over conv ∥ LSTM outputs: the same as cat, then Conv1d."""
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(7, 3, 3, padding=1).double()
    parts = [
        torch.randn(3, 6, 4, dtype=torch.float64, requires_grad=True),
        torch.randn(3, 6, 3, dtype=torch.float64, requires_grad=True),
    ]
    got = temporal_conv_of_concat(parts, conv)
    want = conv(torch.cat(parts, -1).transpose(1, 2)).transpose(1, 2)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(lambda a, b: temporal_conv_of_concat([a, b], conv), parts)
