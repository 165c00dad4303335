"""DGAM's loss terms (Shi et al., CVPR 2020), each a function of tensors so it can be tested.

Shapes: x (B, T, D) one stream's features, λ (B, T) its attention in [0, 1], mask (B, T)
1 on real snippets (the reference always has 400 of them, so it never masks), labels y
(B, C) multi-hot without the background class. The classifier has C + 1 outputs, the last
one background.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter1d
from torch import Tensor


def _valid(mask: Tensor | None, like: Tensor) -> Tensor:
    return torch.ones_like(like) if mask is None else mask.to(like.dtype)


def pool_fg_bg(x: Tensor, att: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """f_fg = Σ λx / (Σλ + 1) and f_bg = Σ (1−λ)x / (Σ(1−λ) + 1e-6), over real snippets."""
    m = _valid(mask, att)
    a = att * m
    b = (1 - att) * m
    fg = (a[..., None] * x).sum(1) / (a.sum(1, keepdim=True) + 1)
    bg = (b[..., None] * x).sum(1) / (b.sum(1, keepdim=True) + 1e-6)
    return fg, bg


def foreground_loss(logits_fg: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy of softmax over C + 1 against y / Σy (background target 0)."""
    y = labels.to(logits_fg.dtype)
    target = y / y.sum(1, keepdim=True).clamp_min(1e-12)
    return -(target * F.log_softmax(logits_fg, dim=1)[:, :-1]).sum(1).mean()


def background_loss(logits_bg: Tensor) -> Tensor:
    """−log softmax(cls(f_bg))[background]: the background feature is class C + 1."""
    return -F.log_softmax(logits_bg, dim=1)[:, -1].mean()


def smoothed_guide_scores(
    x: Tensor, weight: Tensor, mask: Tensor | None = None, sigma: float = 1.0
) -> Tensor:
    """s̃: per-snippet softmax of x·Wᵀ (no bias), Gaussian-smoothed along each video's real
    snippets (scipy's reflect edges, as the reference) and detached: a target, not a path."""
    s = torch.softmax(x.detach() @ weight.detach().t(), dim=-1).cpu().numpy()
    out = np.zeros_like(s)
    lengths = [s.shape[1]] * s.shape[0] if mask is None else mask.sum(1).long().cpu().tolist()
    for i, n in enumerate(lengths):
        if n > 0:
            out[i, :n] = gaussian_filter1d(s[i, :n], sigma=sigma, axis=0)
    return torch.from_numpy(out).to(x.device)


def guide_loss(att: Tensor, guide: Tensor, labels: Tensor, mask: Tensor | None = None) -> Tensor:
    """mean_t(|λ − max_{c∈y} s̃_c| + |λ − (1 − s̃_bg)|) over real snippets."""
    y = labels.to(guide.dtype)
    g_fg = (guide[..., :-1] * y[:, None, :]).max(-1).values
    g_bg = 1 - guide[..., -1]
    m = _valid(mask, att)
    per = ((att - g_fg).abs() + (att - g_bg).abs()) * m
    return per.sum() / m.sum().clamp_min(1)


def kl_to_attention_prior(
    mean: Tensor, log_var: Tensor, att: Tensor, mask: Tensor | None = None
) -> Tensor:
    """KL(N(μ, σ²) ‖ N(λ·1, I)) as the element mean over real snippets:
    −½ mean(1 + log σ² − (μ−λ)² − σ²)."""
    d = mean - att[..., None]
    per = (-0.5 * (1 + log_var - d.pow(2) - log_var.exp())).mean(-1)
    m = _valid(mask, att)
    return (per * m).sum() / m.sum().clamp_min(1)


def masked_mse(a: Tensor, b: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean squared error over the real snippets' elements."""
    m = _valid(mask, a[..., 0])
    err = (a - b).pow(2).mean(-1) * m
    return err.sum() / m.sum().clamp_min(1)


def ramp(epoch: int, length: int = 300) -> float:
    """r = min(epoch, length) / length, the weight ramp of the reconstruction terms."""
    return min(epoch, length) / length if length > 0 else 1.0
