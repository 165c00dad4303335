"""A one-layer LSTM recurrence over a precomputed input projection, with a hand-written
backward: what lets LGBM-Net's two branches share the LSTM's input projection on CPU.

Why: ``nn.LSTM`` takes inputs, not their projections, so the base branch (x) and the
suppressed branch (w ⊙ x) each pay for ``W_ih·x``, two thirds of the LSTM's work. The
projection is linear, so ``W_ih (w_t x_t) = w_t (W_ih x_t)``: computed once as one large
matrix product, it serves both branches. The recurrence reads that projection where it
lies and forms each step's gate input for both branches on the fly (``+ bias`` for x,
``w_t · + bias`` for w ⊙ x), so neither the two branches' inputs nor a time-flipped copy
for the reverse direction is ever materialised. All sequences of both branches and both
directions step together (one batched product per step), and outputs are written in
place, in ``nn.LSTM``'s layout. The backward collects every step's gate gradients in the
projection's layout and forms ``dW_hh`` with one matrix product per direction over all
steps, where autograd would accumulate T thin ones.

Gate order and equations are PyTorch's (i, f, g, o)::

    gates_t = pre_t + W_hh h_{t-1}          pre_t = W_ih x_t + b_ih + b_hh
    c_t = σ(f) c_{t-1} + σ(i) tanh(g)       h_t = σ(o) tanh(c_t)

so the result equals ``nn.LSTM`` with the same weights (to float rounding; tested).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable


class _Recurrence(torch.autograd.Function):
    """Hidden states (S, T, D·H) of D directions over S = B (``w`` None) or 2B sequences.

    ``proj`` (B, T, D·4H) is ``W_ih x`` without bias, ``bias`` (D·4H,), ``w`` (B, T) or
    None, ``w_hh`` (D, 4H, H); direction d runs backwards in time if ``reverse[d]``.
    Sequence s < B reads ``proj + bias``, sequence B + s reads ``w ⊙ proj + bias``.
    Zero initial state.
    """

    @staticmethod
    def forward(
        ctx: Any,
        proj: Tensor,
        bias: Tensor,
        w: Tensor | None,
        w_hh: Tensor,
        reverse: tuple[bool, ...],
    ) -> Tensor:
        b, t, _ = proj.shape
        dirs, four_h, hidden = w_hh.shape
        seqs = b if w is None else 2 * b
        w_t = w_hh.transpose(1, 2)
        gate_bias = bias.view(dirs, 1, four_h)
        h = proj.new_zeros(dirs, seqs, hidden)
        c = proj.new_zeros(dirs, seqs, hidden)
        gates = proj.new_empty(dirs, seqs, four_h)
        out = proj.new_empty(seqs, t, dirs * hidden)
        cs = proj.new_empty(dirs, seqs, t, hidden)  # per direction, in its own step order
        acts = proj.new_empty(dirs, seqs, t, four_h)  # σ(i), σ(f), tanh(g), σ(o)
        for step in range(t):
            torch.baddbmm(gate_bias, h, w_t, out=gates)
            for d in range(dirs):
                time = t - 1 - step if reverse[d] else step
                p = proj[:, time, d * four_h : (d + 1) * four_h]
                gates[d, :b] += p
                if w is not None:
                    gates[d, b:].addcmul_(p, w[:, time, None])
            a = acts[:, :, step]
            torch.sigmoid(gates[..., : 2 * hidden], out=a[..., : 2 * hidden])
            torch.tanh(gates[..., 2 * hidden : 3 * hidden], out=a[..., 2 * hidden : 3 * hidden])
            torch.sigmoid(gates[..., 3 * hidden :], out=a[..., 3 * hidden :])
            i, f, g, o = a.chunk(4, dim=-1)
            c = torch.addcmul(f * c, i, g)
            h = o * torch.tanh(c)
            cs[:, :, step] = c
            for d in range(dirs):
                time = t - 1 - step if reverse[d] else step
                out[:, time, d * hidden : (d + 1) * hidden] = h[d]
        ctx.save_for_backward(proj, w, w_hh, out, cs, acts)
        ctx.reverse = reverse
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        proj, w, w_hh, out, cs, acts = ctx.saved_tensors
        reverse = ctx.reverse
        dirs, four_h, hidden = w_hh.shape
        seqs, t, _ = out.shape
        b = proj.shape[0]
        d_pre = grad_out.new_empty(seqs, t, dirs * four_h)  # in the projection's layout
        d_step = grad_out.new_empty(dirs, seqs, four_h)
        dh = grad_out.new_empty(dirs, seqs, hidden)
        dh_next = grad_out.new_zeros(dirs, seqs, hidden)
        dc_next = grad_out.new_zeros(dirs, seqs, hidden)
        zeros = grad_out.new_zeros(dirs, seqs, hidden)
        di, df, dg, do = d_step.chunk(4, dim=-1)
        for step in range(t - 1, -1, -1):
            times = [t - 1 - step if reverse[d] else step for d in range(dirs)]
            for d, time in enumerate(times):
                torch.add(dh_next[d], grad_out[:, time, d * hidden : (d + 1) * hidden], out=dh[d])
            c_prev = cs[:, :, step - 1] if step > 0 else zeros
            i, f, g, o = acts[:, :, step].chunk(4, dim=-1)
            tanh_c = torch.tanh(cs[:, :, step])
            dc = torch.addcmul(dc_next, dh * o, 1 - tanh_c * tanh_c)
            torch.mul(dc * g, i * (1 - i), out=di)
            torch.mul(dc * c_prev, f * (1 - f), out=df)
            torch.mul(dc * i, 1 - g * g, out=dg)
            torch.mul(dh * tanh_c, o * (1 - o), out=do)
            dc_next = dc * f
            torch.bmm(d_step, w_hh, out=dh_next)
            for d, time in enumerate(times):
                d_pre[:, time, d * four_h : (d + 1) * four_h] = d_step[d]
        grad_w_hh = None
        if ctx.needs_input_grad[3]:
            grad_w_hh = torch.stack(
                [_grad_w_hh(d_pre, out, d, hidden, rev) for d, rev in enumerate(reverse)]
            )
        grad_bias = d_pre.sum((0, 1)) if ctx.needs_input_grad[1] else None
        grad_proj = grad_w = None
        if w is not None and ctx.needs_input_grad[2]:
            grad_w = _rowwise_dot(d_pre[b:], proj)
        if ctx.needs_input_grad[0]:  # last: it updates d_pre's first B rows in place
            grad_proj = d_pre[:b]
            if w is not None:
                grad_proj.addcmul_(d_pre[b:], w[..., None])
        return grad_proj, grad_bias, grad_w, grad_w_hh, None


def _rowwise_dot(a: Tensor, b: Tensor, rows: int = 256) -> Tensor:
    """``torch.linalg.vecdot(a, b)`` for (B, T, D) inputs, a few rows at a time, so that the
    elementwise product it forms stays small (cached) instead of the inputs' full size."""
    flat_a, flat_b = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
    out = a.new_empty(flat_a.shape[0])
    for lo in range(0, flat_a.shape[0], rows):
        out[lo : lo + rows] = torch.linalg.vecdot(flat_a[lo : lo + rows], flat_b[lo : lo + rows])
    return out.view(a.shape[:-1])


def _grad_w_hh(d_pre: Tensor, out: Tensor, d: int, hidden: int, reverse: bool) -> Tensor:
    """Σ over sequences and steps of (gate gradient)ᵀ h_{t-1} for direction ``d``, as one
    product over the flattened S·T rows, h_{t-1} being the output one row earlier (one row
    later for a reverse direction). The rows where a sequence starts have h_{t-1} = 0, and
    the shifted product would pair them with the neighbouring sequence instead: their gate
    gradients are set aside and zeroed for the product, then put back. No shifted copy of
    the outputs is made."""
    seqs, t, _ = d_pre.shape
    four_h = 4 * hidden
    gates = d_pre.view(seqs * t, -1)[:, d * four_h : (d + 1) * four_h]
    hs = out.view(seqs * t, -1)[:, d * hidden : (d + 1) * hidden]
    first = d_pre[:, -1 if reverse else 0, d * four_h : (d + 1) * four_h]
    kept = first.clone()
    first.zero_()
    grad = gates[:-1].t() @ hs[1:] if reverse else gates[1:].t() @ hs[:-1]
    first.copy_(kept)
    return grad


def lstm_recurrence(pre: Tensor, w_hh: Tensor, *, reverse: bool = False) -> Tensor:
    """Hidden states (B, T, H) of one LSTM direction from its pre-activations (B, T, 4H)."""
    bias = pre.new_zeros(pre.shape[-1])
    return _Recurrence.apply(pre, bias, None, w_hh[None], (reverse,))


def input_projection(lstm: nn.LSTM, x: Tensor) -> tuple[Tensor, Tensor]:
    """``W_ih x`` of every direction of a one-layer ``nn.LSTM`` as one product (B, T, 4H·dirs),
    and the summed biases (4H·dirs,) that belong after any per-snippet scaling."""
    dirs = ["", "_reverse"] if lstm.bidirectional else [""]
    w_ih = torch.cat([getattr(lstm, f"weight_ih_l0{s}") for s in dirs], dim=0)
    bias = torch.cat(
        [getattr(lstm, f"bias_ih_l0{s}") + getattr(lstm, f"bias_hh_l0{s}") for s in dirs]
    )
    return x @ w_ih.t(), bias


def run_lstm(lstm: nn.LSTM, proj: Tensor, bias: Tensor, w: Tensor | None = None) -> Tensor:
    """Outputs of a one-layer ``nn.LSTM`` from ``input_projection``'s result: (B, T, H·dirs)
    on x, or with ``w`` (B, T) given, (2B, T, H·dirs) on x then on w ⊙ x. Directions are
    concatenated as ``nn.LSTM`` does."""
    if lstm.bidirectional:
        w_hh = torch.stack([lstm.weight_hh_l0, lstm.weight_hh_l0_reverse])
        return _Recurrence.apply(proj, bias, w, w_hh, (False, True))
    return _Recurrence.apply(proj, bias, w, lstm.weight_hh_l0[None], (False,))
