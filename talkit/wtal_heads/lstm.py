"""A one-layer LSTM recurrence over precomputed input projections, with a hand-written
backward: what lets LGBM-Net's two branches share the LSTM's input projection on CPU.

Why: ``nn.LSTM`` takes inputs, not their projections, so the base branch (x) and the
suppressed branch (w ⊙ x) each pay for ``W_ih·x``, two thirds of the LSTM's work. The
projection is linear, so ``W_ih (w_t x_t) = w_t (W_ih x_t)``: computed once as one large
matrix product, it serves both branches. The recurrence then runs both branches as one
batch, with both directions stepped together (one batched product per step, half the
sequential steps). Its backward collects every step's gate gradients and forms ``dW_hh``
with one matrix product over all steps, where autograd would accumulate T thin ones.

Gate order and equations are PyTorch's (i, f, g, o)::

    gates_t = pre_t + W_hh h_{t-1}          pre_t = W_ih x_t + b_ih + b_hh
    c_t = σ(f) c_{t-1} + σ(i) tanh(g)       h_t = σ(o) tanh(c_t)

so the result equals ``nn.LSTM`` with the same weights (to float rounding; tested).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


class _Recurrence(torch.autograd.Function):
    """h (D, B, T, H) from pre-activations (D, B, T, 4H) and W_hh (D, 4H, H): D independent
    recurrences (the directions, each already in its own time order) stepped together, so
    each step is one batched product instead of D small ones. Zero initial state."""

    @staticmethod
    def forward(ctx: Any, pre: Tensor, w_hh: Tensor) -> Tensor:
        dirs, b, t, four_h = pre.shape
        hidden = four_h // 4
        w_t = w_hh.transpose(1, 2)
        h = pre.new_zeros(dirs, b, hidden)
        c = pre.new_zeros(dirs, b, hidden)
        hs = pre.new_empty(dirs, b, t, hidden)
        cs = pre.new_empty(dirs, b, t, hidden)
        acts = pre.new_empty(dirs, b, t, four_h)  # σ(i), σ(f), tanh(g), σ(o)
        for step in range(t):
            gates = torch.baddbmm(pre[:, :, step], h, w_t)
            a = acts[:, :, step]
            torch.sigmoid(gates[..., : 2 * hidden], out=a[..., : 2 * hidden])
            torch.tanh(gates[..., 2 * hidden : 3 * hidden], out=a[..., 2 * hidden : 3 * hidden])
            torch.sigmoid(gates[..., 3 * hidden :], out=a[..., 3 * hidden :])
            i, f, g, o = a.chunk(4, dim=-1)
            c = torch.addcmul(f * c, i, g)
            h = o * torch.tanh(c)
            cs[:, :, step] = c
            hs[:, :, step] = h
        ctx.save_for_backward(w_hh, hs, cs, acts)
        return hs

    @staticmethod
    def backward(ctx: Any, grad_hs: Tensor) -> tuple[Tensor, Tensor]:
        w_hh, hs, cs, acts = ctx.saved_tensors
        dirs, b, t, hidden = hs.shape
        d_pre = torch.empty_like(acts)
        dh_next = grad_hs.new_zeros(dirs, b, hidden)
        dc_next = grad_hs.new_zeros(dirs, b, hidden)
        zeros = grad_hs.new_zeros(dirs, b, hidden)
        for step in range(t - 1, -1, -1):
            c_prev = cs[:, :, step - 1] if step > 0 else zeros
            i, f, g, o = acts[:, :, step].chunk(4, dim=-1)
            tanh_c = torch.tanh(cs[:, :, step])
            dh = grad_hs[:, :, step] + dh_next
            dc = torch.addcmul(dc_next, dh * o, 1 - tanh_c * tanh_c)
            d = d_pre[:, :, step]
            di, df, dg, do = d.chunk(4, dim=-1)
            torch.mul(dc * g, i * (1 - i), out=di)
            torch.mul(dc * c_prev, f * (1 - f), out=df)
            torch.mul(dc * i, 1 - g * g, out=dg)
            torch.mul(dh * tanh_c, o * (1 - o), out=do)
            dc_next = dc * f
            dh_next = torch.bmm(d, w_hh)
        h_prev = torch.zeros_like(hs)  # h_{t-1} of every step (zeros first)
        h_prev[:, :, 1:] = hs[:, :, :-1]
        d_w = torch.bmm(
            d_pre.reshape(dirs, b * t, 4 * hidden).transpose(1, 2),
            h_prev.reshape(dirs, b * t, hidden),
        )
        return d_pre, d_w


def lstm_recurrence(pre: Tensor, w_hh: Tensor, *, reverse: bool = False) -> Tensor:
    """Hidden states (B, T, H) of one LSTM direction from its pre-activations (B, T, 4H)."""
    if reverse:
        return _Recurrence.apply(pre.flip(1)[None], w_hh[None])[0].flip(1)
    return _Recurrence.apply(pre[None], w_hh[None])[0]


def input_projection(lstm: nn.LSTM, x: Tensor) -> tuple[Tensor, Tensor]:
    """``W_ih x`` of every direction of a one-layer ``nn.LSTM`` as one product (B, T, 4H·dirs),
    and the summed biases (4H·dirs,) to add after any per-snippet scaling."""
    dirs = ["", "_reverse"] if lstm.bidirectional else [""]
    w_ih = torch.cat([getattr(lstm, f"weight_ih_l0{s}") for s in dirs], dim=0)
    bias = torch.cat(
        [getattr(lstm, f"bias_ih_l0{s}") + getattr(lstm, f"bias_hh_l0{s}") for s in dirs]
    )
    return x @ w_ih.t(), bias


def run_lstm(lstm: nn.LSTM, pre: Tensor) -> Tensor:
    """Outputs (B, T, H·dirs) of a one-layer ``nn.LSTM`` from ``input_projection``'s
    projection plus bias (B, T, 4H·dirs), directions concatenated as ``nn.LSTM`` does.
    Both directions step together (the reverse one on time-flipped input)."""
    four_h = 4 * lstm.hidden_size
    if not lstm.bidirectional:
        return _Recurrence.apply(pre[None], lstm.weight_hh_l0[None])[0]
    stacked = torch.stack([pre[..., :four_h], pre[..., four_h:].flip(1)])
    w_hh = torch.stack([lstm.weight_hh_l0, lstm.weight_hh_l0_reverse])
    hs = _Recurrence.apply(stacked, w_hh)
    return torch.cat([hs[0], hs[1].flip(1)], dim=-1)
