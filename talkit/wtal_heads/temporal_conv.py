"""Same-padded temporal convolutions over time-major snippet features, as k accumulated
matrix products on row-shifted views of one padded copy of the input.

Why: the heads' k3 convs (BaSNet's and LGBM-Net's CAS layers; LGBM-Net's 4096-wide merge
is the largest layer of either head) are most of a training step on CPU. Padding every
video with k // 2 zero rows at each end and flattening the batch makes the input one
matrix in which output row r reads input rows r … r + k − 1, so tap j is a product with
the rows shifted by j, with no im2col copy (k times the input) and no transposes. Rows
that would mix two videos are exactly the rows past each video's end; they are computed
and dropped. The backward does the same with the k taps, and skips the input's gradient
when the input needs none (the first layer, reading features).

Two more shapes of the same work, for the two-branch heads:

- ``temporal_conv_of_concat``: a conv over the channel concatenation of several parts
  (LGBM-Net's merge reads conv ∥ LSTM outputs) writes the concatenation and the padding
  as one copy, where ``cat`` then ``pad`` wrote the 4096-wide input twice and zero-filled
  it once; its backward hands each part a view of one gradient.
- ``leaky_conv_pair``: ``LeakyReLU(conv(x))`` and ``LeakyReLU(conv(w ⊙ x))`` from one
  product (the taps ``W_j x``), summed shifted in place with a hand-written backward.

Same functions as ``nn.Conv1d(padding=k // 2)`` on ``x.transpose(1, 2)`` (tested, with
their gradients). Measured at LGBM-Net's merge (32 × 750 snippets, 4096 → 2048, k3): forward
and backward 0.4 s faster than an im2col product, and the saved input is 1× instead of 3×.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable


class _PaddedConcat(torch.autograd.Function):
    """Parts (B, T, D_i) → (B, T + 2·pad, ΣD_i): concatenated along channels, with ``pad``
    zero rows before and after every video, written once into one buffer."""

    @staticmethod
    def forward(ctx: Any, pad: int, *parts: Tensor) -> Tensor:
        b, t, _ = parts[0].shape
        out = parts[0].new_empty(b, t + 2 * pad, sum(p.shape[-1] for p in parts))
        out[:, :pad].zero_()
        out[:, t + pad :].zero_()
        lo = 0
        for part in parts:
            out[:, pad : pad + t, lo : lo + part.shape[-1]] = part
            lo += part.shape[-1]
        ctx.geometry = (pad, t, [p.shape[-1] for p in parts])
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        pad, t, widths = ctx.geometry
        grads: list[Tensor | None] = [None]
        lo = 0
        for width in widths:  # views of the incoming gradient: no copies
            grads.append(grad[:, pad : pad + t, lo : lo + width])
            lo += width
        return tuple(grads)


def padded_concat(parts: Sequence[Tensor], pad: int) -> Tensor:
    """``F.pad(torch.cat(parts, -1), (0, 0, pad, pad))`` in one copy (B, T + 2·pad, ΣD)."""
    return _PaddedConcat.apply(pad, *parts)


class _ShiftedConv(torch.autograd.Function):
    """Padded (B, T + k − 1, D) ⊛ weight (H, D, k) + bias → (B, T, H), odd k; the input's
    pad rows are the zero ("same") padding, so their gradient is computed and ignored."""

    @staticmethod
    def forward(ctx: Any, xp: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        b, rows, d = xp.shape
        hidden, _, k = weight.shape
        pad = k // 2
        t = rows - 2 * pad
        xp = xp.reshape(b * rows, d)
        # W_jᵀ as taps[:, j] (D, H), rows k·H apart: one blocked 2-D transpose of the weight.
        taps = weight.reshape(hidden, d * k).t().contiguous().view(d, k, hidden)
        n = b * rows - 2 * pad  # output row r = b·rows + t reads input rows r … r + k − 1
        out = xp.new_empty(b * rows, hidden)
        body = out[:n]
        if bias is None:
            torch.mm(xp[:n], taps[:, 0], out=body)
        else:
            torch.addmm(bias, xp[:n], taps[:, 0], out=body)
        for j in range(1, k):
            body.addmm_(xp[j : j + n], taps[:, j])
        ctx.save_for_backward(xp, taps)
        ctx.geometry = (b, t, pad, bias is not None)
        return out.view(b, rows, hidden)[:, :t]

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        xp, taps = ctx.saved_tensors
        b, t, pad, has_bias = ctx.geometry
        d, k, hidden = taps.shape
        rows = t + 2 * pad
        gp = grad.new_empty(b, rows, hidden)
        gp[:, t:].zero_()  # rows past a video's end get no gradient
        gp[:, :t] = grad
        gp = gp.view(b * rows, hidden)
        n = b * rows - 2 * pad
        g = gp[:n]
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            gxp = grad.new_empty(b * rows, d)
            torch.mm(g, taps[:, 0].t(), out=gxp[:n])
            gxp[n:].zero_()
            for j in range(1, k):
                gxp[j : j + n].addmm_(g, taps[:, j].t())
            grad_x = gxp.view(b, rows, d)
        if ctx.needs_input_grad[1]:
            grad_w = torch.stack([g.t() @ xp[j : j + n] for j in range(k)], dim=-1)
        if has_bias and ctx.needs_input_grad[2]:
            grad_b = g.sum(0)
        return grad_x, grad_w, grad_b


class _ShiftedTapsPair(torch.autograd.Function):
    """LeakyReLU(conv(x)) and LeakyReLU(conv(w ⊙ x)) stacked (2B, T, H), from the taps
    ``W_j x`` (B, T, k, H): out_t = bias + Σ_j s_{t'} W_j x_{t'}, t' = t + j − pad, with
    s = 1 for the first B rows and s = w for the last B. Written in place into one buffer,
    where autograd would keep a padded copy of every tap and a full-size zero-filled
    gradient for each of their slices."""

    @staticmethod
    def forward(
        ctx: Any, taps: Tensor, w: Tensor, bias: Tensor | None, negative_slope: float
    ) -> Tensor:
        b, t, k, hidden = taps.shape
        pad = k // 2
        out = taps.new_empty(2 * b, t, hidden)
        base, supp = out[:b], out[b:]
        scale = w[..., None]
        centre = taps[:, :, pad]
        if bias is None:
            base.copy_(centre)
            torch.mul(centre, scale, out=supp)
        else:
            torch.add(centre, bias, out=base)
            torch.addcmul(bias, centre, scale, out=supp)
        for j, lo, hi in _tap_rows(k, t):
            if j == pad or lo >= hi:
                continue
            src = slice(lo + j - pad, hi + j - pad)
            base[:, lo:hi] += taps[:, src, j]
            supp[:, lo:hi].addcmul_(taps[:, src, j], scale[:, src])
        F.leaky_relu_(out, negative_slope)
        ctx.save_for_backward(taps, w, out)
        ctx.geometry = (negative_slope, bias is not None)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        taps, w, out = ctx.saved_tensors
        negative_slope, has_bias = ctx.geometry
        b, t, k, _ = taps.shape
        pad = k // 2
        g = torch.ops.aten.leaky_relu_backward(grad, out, negative_slope, True)
        g_base, g_supp = g[:b], g[b:]
        # The suppressed rows' gradient reaching each tap, G[:, t', j] = g_supp[:, t]; then
        # d/dw_t' = Σ_j <W_j x_t', G[:, t', j]>, and d/dtaps = w ⊙ G + (the same from g_base).
        grad_taps = torch.empty_like(taps)
        for j, lo, hi in _tap_rows(k, t):
            if lo >= hi:  # a tap that reaches no output (T < k // 2 + 1)
                grad_taps[:, :, j].zero_()
                continue
            src = slice(lo + j - pad, hi + j - pad)
            grad_taps[:, : src.start, j].zero_()
            grad_taps[:, src.stop :, j].zero_()
            grad_taps[:, src, j] = g_supp[:, lo:hi]
        grad_w = None
        if ctx.needs_input_grad[1]:
            flat = (b * t, -1)
            grad_w = torch.linalg.vecdot(taps.view(flat), grad_taps.view(flat)).view(b, t)
        grad_taps.mul_(w[..., None, None])
        for j, lo, hi in _tap_rows(k, t):
            if lo < hi:
                src = slice(lo + j - pad, hi + j - pad)
                grad_taps[:, src, j] += g_base[:, lo:hi]
        grad_bias = g.sum((0, 1)) if has_bias and ctx.needs_input_grad[2] else None
        return grad_taps, grad_w, grad_bias, None


def _tap_rows(k: int, t: int) -> list[tuple[int, int, int]]:
    """(tap j, first output row it reaches, one past the last) for a same-padded k-tap conv
    over T rows; lo >= hi where a tap reaches none."""
    pad = k // 2
    return [(j, max(0, pad - j), min(t, t + pad - j)) for j in range(k)]


def leaky_conv_pair(x: Tensor, w: Tensor, conv: nn.Conv1d, negative_slope: float) -> Tensor:
    """``LeakyReLU(conv(x))`` and ``LeakyReLU(conv(w ⊙ x))`` stacked (2B, T, H) for ``x``
    (B, T, D), ``w`` (B, T), from one product: ``conv`` is linear in its input, so the
    taps ``W_j x`` serve both, ``w`` weighting them per input snippet."""
    weight, bias = conv.weight, conv.bias  # (H, D, k), (H,)
    hidden, dim, k = weight.shape
    b, t, _ = x.shape
    taps = x.reshape(b * t, dim) @ weight.permute(1, 2, 0).reshape(dim, k * hidden)
    return _ShiftedTapsPair.apply(taps.view(b, t, k, hidden), w, bias, negative_slope)


def temporal_conv(x: Tensor, conv: nn.Conv1d) -> Tensor:
    """``conv`` (odd kernel, same padding) applied to time-major ``x`` (B, T, D) -> (B, T, H).

    The same function as ``conv(x.transpose(1, 2)).transpose(1, 2)``; see the module
    docstring for how it is computed on CPU. On other devices it is that call (cuDNN's
    kernels, with their default precision, as the authors' code ran). The result may be a
    strided view (B, T, H).
    """
    return temporal_conv_of_concat([x], conv)


def temporal_conv_of_concat(parts: Sequence[Tensor], conv: nn.Conv1d) -> Tensor:
    """``temporal_conv(torch.cat(parts, -1), conv)``, with the concatenation and the padding
    written as one copy on CPU (LGBM-Net's merge reads conv ∥ LSTM outputs of 2B videos)."""
    k = conv.kernel_size[0]
    if parts[0].device.type == "cpu" and k > 1:
        return _ShiftedConv.apply(padded_concat(parts, k // 2), conv.weight, conv.bias)
    x = parts[0] if len(parts) == 1 else torch.cat(list(parts), dim=-1)
    if x.device.type != "cpu":
        return conv(x.transpose(1, 2)).transpose(1, 2)
    out = x @ conv.weight[:, :, 0].t()  # k = 1: a plain product
    return out if conv.bias is None else out + conv.bias
