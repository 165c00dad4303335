"""The small parts BaSNet and LGBM-Net are built from.

Every part takes and returns time-major tensors ``(B, T, D)`` so heads can be read as a
plain data path, and every knob is a keyword with the authors' default (pytorchvideo
builder style). The parts::

    TemporalEncoder   x ──┬─ conv branch   (Conv1d k, LeakyReLU) ──┐
                          └─ global branch (LSTM | non-local | pool)┴─ concat → (B, T, H·n)
    AttentionModule   encoder → [Conv1d, LeakyReLU]·(n−1) → Conv1d(→1) → sigmoid → (B, T)
    CASModule         encoder → Conv1d k3 → LeakyReLU → Dropout → Conv1d(→C+1, no bias)
    MILScorer         (B, T, C+1) → mean of the top ⌊T/r⌋ per class → (B, C+1) logits

BaSNet's filter module is an AttentionModule with one 1×1 conv branch; its CAS module is a
CASModule with one k3 conv branch. LGBM-Net swaps both encoders for conv ∥ LSTM (or a
non-local block, or global pooling), which is all that "local-global" means in its report.

Both methods run the CAS module on x and on w ⊙ x with the same weights.
``CASModule.forward_pair(x, w)`` computes both at once and does less work than two calls:
a branch's first layer is linear in its input, so ``W (w_t x_t) = w_t (W x_t)`` is
computed once for both. The conv branch computes its k taps ``W_j x`` with one matrix
product and sums them shifted, weighted by w for the suppressed branch; the LSTM branch
computes its input projection once (on CPU, with :mod:`talkit.wtal_heads.lstm`). Each
branch returns both results stacked as one batch of 2B, and the rest runs on that batch:
the merge conv reads the branches' outputs through one padded concatenation
(:func:`talkit.wtal_heads.temporal_conv.temporal_conv_of_concat`). The result is the same
function as two calls (tested to 1e-5).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from talkit.wtal_heads.lstm import input_projection, run_lstm
from talkit.wtal_heads.temporal_conv import (
    leaky_conv_pair,
    temporal_conv,
    temporal_conv_of_concat,
)

Branch = Literal["conv", "lstm", "nonlocal", "pool"]
GLOBAL_BRANCHES: tuple[str, ...] = ("lstm", "nonlocal", "pool")


def _conv(in_dim: int, out_dim: int, kernel: int, *, bias: bool = True) -> nn.Conv1d:
    return nn.Conv1d(in_dim, out_dim, kernel_size=kernel, padding=kernel // 2, bias=bias)


class ConvBranch(nn.Module):
    """Local operation: a temporal conv over a window of ``kernel`` snippets."""

    def __init__(self, *, in_dim: int, out_dim: int, kernel: int = 3) -> None:
        super().__init__()
        if kernel % 2 != 1:
            raise ValueError(f"conv kernel must be odd to keep the length, got {kernel}")
        self.conv = _conv(in_dim, out_dim, kernel)
        self.act = nn.LeakyReLU()

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return self.act(temporal_conv(x, self.conv))

    def forward_both(self, x: Tensor, w: Tensor, mask: Tensor | None = None) -> Tensor:
        """``forward(x)`` and ``forward(w ⊙ x)`` stacked (2B, T, H), from one product."""
        return leaky_conv_pair(x, w, self.conv, self.act.negative_slope)


def forward_stacked(branch: nn.Module, x: Tensor, w: Tensor, mask: Tensor | None) -> Tensor:
    """``branch`` on x and w ⊙ x as one (2B, T, ·) batch, the mask repeated: the plain
    way to get ``forward_both`` where nothing can be shared."""
    both_mask = None if mask is None else torch.cat([mask, mask])
    return branch(torch.cat([x, w[..., None] * x]), both_mask)


class LSTMBranch(nn.Module):
    """Global operation: a bidirectional LSTM over the whole sequence.

    Each direction has ``out_dim // 2`` units so the branch outputs ``out_dim``. Padded
    steps (``mask`` False) are packed away, so they do not leak into valid ones.
    """

    def __init__(self, *, in_dim: int, out_dim: int) -> None:
        super().__init__()
        if out_dim % 2:
            raise ValueError(f"LSTM branch width must be even (two directions), got {out_dim}")
        self.lstm = nn.LSTM(in_dim, out_dim // 2, batch_first=True, bidirectional=True)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        if mask is None or bool(mask.all()):
            if x.device.type == "cpu":
                return run_lstm(self.lstm, *input_projection(self.lstm, x))
            return self.lstm(x)[0]
        return self._packed(x, mask)

    def forward_both(self, x: Tensor, w: Tensor, mask: Tensor | None = None) -> Tensor:
        """``forward(x)`` and ``forward(w ⊙ x)`` stacked (2B, T, H); on CPU the input
        projection is shared."""
        if x.device.type == "cpu" and (mask is None or bool(mask.all())):
            return run_lstm(self.lstm, *input_projection(self.lstm, x), w)
        return forward_stacked(self, x, w, mask)

    def _packed(self, x: Tensor, mask: Tensor) -> Tensor:
        lengths = mask.sum(1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(
            x, lengths, batch_first=True, enforce_sorted=False
        )
        out, _ = self.lstm(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return out


class NonLocalBranch(nn.Module):
    """Global operation: an embedded-Gaussian non-local block (Wang et al. 2018) in 1-D.

    A 1×1 projection to ``out_dim``, then every snippet attends to every other one; the
    block is residual, so at initialisation it is the projection alone.
    """

    def __init__(self, *, in_dim: int, out_dim: int, inner_dim: int | None = None) -> None:
        super().__init__()
        inner = inner_dim or max(1, out_dim // 2)
        self.proj = nn.Linear(in_dim, out_dim)
        self.theta = nn.Linear(out_dim, inner, bias=False)
        self.phi = nn.Linear(out_dim, inner, bias=False)
        self.g = nn.Linear(out_dim, inner, bias=False)
        self.out = nn.Linear(inner, out_dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.act = nn.LeakyReLU()

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        h = self.proj(x)
        logits = self.theta(h) @ self.phi(h).transpose(1, 2)  # (B, T, T)
        if mask is not None:
            logits = logits.masked_fill(~mask[:, None, :], float("-inf"))
        attn = torch.softmax(logits, dim=-1)
        return self.act(h + self.out(attn @ self.g(h)))


class PoolBranch(nn.Module):
    """Global operation: the video's mean feature, projected and broadcast to every snippet."""

    def __init__(self, *, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(in_dim, out_dim)
        self.act = nn.LeakyReLU()

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        if mask is None:
            pooled = x.mean(1, keepdim=True)
        else:
            m = mask[..., None].to(x.dtype)
            pooled = (x * m).sum(1, keepdim=True) / m.sum(1, keepdim=True).clamp(min=1)
        return self.act(self.proj(pooled)).expand(-1, x.shape[1], -1)


def make_branch(kind: str, *, in_dim: int, out_dim: int, conv_kernel: int = 3) -> nn.Module:
    """One encoder branch by name: conv (local), lstm / nonlocal / pool (global)."""
    if kind == "conv":
        return ConvBranch(in_dim=in_dim, out_dim=out_dim, kernel=conv_kernel)
    if kind == "lstm":
        return LSTMBranch(in_dim=in_dim, out_dim=out_dim)
    if kind == "nonlocal":
        return NonLocalBranch(in_dim=in_dim, out_dim=out_dim)
    if kind == "pool":
        return PoolBranch(in_dim=in_dim, out_dim=out_dim)
    raise ValueError(f"unknown encoder branch {kind!r}; choose conv, lstm, nonlocal or pool")


class TemporalEncoder(nn.Module):
    """Parallel branches over the snippet sequence, concatenated along channels.

    ``branches=("conv",)`` is BaSNet's plain conv; ``("conv", "lstm")`` is LGBM-Net's
    local ∥ global pair. Output width is ``hidden_dim · len(branches)``.
    """

    def __init__(
        self,
        *,
        in_dim: int,
        hidden_dim: int,
        branches: Sequence[str] = ("conv",),
        conv_kernel: int = 3,
    ) -> None:
        super().__init__()
        if not branches:
            raise ValueError("a TemporalEncoder needs at least one branch")
        self.branch_names = tuple(branches)
        self.branches = nn.ModuleList(
            make_branch(b, in_dim=in_dim, out_dim=hidden_dim, conv_kernel=conv_kernel)
            for b in branches
        )
        self.out_dim = hidden_dim * len(self.branches)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        outs = [branch(x, mask) for branch in self.branches]
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)

    def forward_both(self, x: Tensor, w: Tensor, mask: Tensor | None = None) -> list[Tensor]:
        """Each branch's ``forward(x)`` and ``forward(w ⊙ x)`` stacked (2B, T, H), sharing
        what the branch can share; the caller concatenates (``forward``'s channel order)."""
        outs = []
        for branch in self.branches:
            if hasattr(branch, "forward_both"):
                outs.append(branch.forward_both(x, w, mask))
            else:
                outs.append(forward_stacked(branch, x, w, mask))
        return outs


class AttentionModule(nn.Module):
    """Foreground weight per snippet in [0, 1]: encoder, merge convs, sigmoid.

    ``merge_dims`` lists the widths of the hidden merge convs (k1 after the encoder); the
    last conv maps to one channel. BaSNet: encoder conv k1 → 512, no hidden merge conv.
    LGBM-Net: conv ∥ LSTM, then two convs ("merged through two convolutional layers").
    """

    def __init__(
        self,
        *,
        in_dim: int,
        hidden_dim: int = 512,
        branches: Sequence[str] = ("conv",),
        conv_kernel: int = 1,
        merge_dims: Sequence[int] = (),
    ) -> None:
        super().__init__()
        self.encoder = TemporalEncoder(
            in_dim=in_dim, hidden_dim=hidden_dim, branches=branches, conv_kernel=conv_kernel
        )
        layers: list[nn.Module] = []
        width = self.encoder.out_dim
        for dim in merge_dims:
            layers += [_conv(width, dim, 1), nn.LeakyReLU()]
            width = dim
        layers.append(_conv(width, 1, 1))
        self.head = nn.Sequential(*layers)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        h = self.encoder(x, mask)
        for layer in self.head:
            h = temporal_conv(h, layer) if isinstance(layer, nn.Conv1d) else layer(h)
        return torch.sigmoid(h).squeeze(-1)


class CASModule(nn.Module):
    """Class activation sequence (B, T, C+1); the last channel is background.

    encoder → Conv1d(k3, ``hidden_dim``) → LeakyReLU → Dropout → Conv1d(k1, C+1, no bias).
    BaSNet's CAS module is this with a single k3 conv branch of width 2048.
    """

    def __init__(
        self,
        *,
        in_dim: int,
        num_classes: int,
        hidden_dim: int = 2048,
        branches: Sequence[str] = ("conv",),
        conv_kernel: int = 3,
        merge_kernel: int = 3,
        dropout: float = 0.7,
    ) -> None:
        super().__init__()
        self.encoder = TemporalEncoder(
            in_dim=in_dim, hidden_dim=hidden_dim, branches=branches, conv_kernel=conv_kernel
        )
        self.merge = _conv(self.encoder.out_dim, hidden_dim, merge_kernel)
        self.act = nn.LeakyReLU()
        self.dropout = nn.Dropout(dropout)
        self.classifier = _conv(hidden_dim, num_classes + 1, 1, bias=False)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return self._head([branch(x, mask) for branch in self.encoder.branches])

    def forward_pair(
        self, x: Tensor, w: Tensor, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """``(forward(x), forward(w ⊙ x))`` for ``w`` (B, T), doing the shared work once;
        past the encoder both run as one batch of 2B, so dropout draws an independent mask
        for each branch, as the authors' two separate calls do."""
        out = self._head(self.encoder.forward_both(x, w, mask))
        return out[: x.shape[0]], out[x.shape[0] :]

    def _head(self, parts: list[Tensor]) -> Tensor:
        h = self.dropout(self.act(temporal_conv_of_concat(parts, self.merge)))
        return temporal_conv(h, self.classifier)


class MILScorer(nn.Module):
    """Video-level logits: per class, the mean of the top ``max(1, T // ratio)`` snippets.

    With a ``mask`` (padded batches) each video uses its own valid length for T and
    padded snippets never enter the top-k.
    """

    def __init__(self, *, ratio: int = 8) -> None:
        super().__init__()
        if ratio < 1:
            raise ValueError(f"top-k ratio must be >= 1, got {ratio}")
        self.ratio = ratio

    def forward(self, cas: Tensor, mask: Tensor | None = None) -> Tensor:
        b, t, _ = cas.shape
        if mask is None:
            k = max(1, t // self.ratio)
            return cas.topk(k, dim=1).values.mean(1)
        lengths = mask.sum(1)
        k = (lengths // self.ratio).clamp(min=1)  # (B,)
        filled = cas.masked_fill(~mask[..., None], float("-inf"))
        ordered = filled.sort(dim=1, descending=True).values
        ordered = torch.where(torch.isinf(ordered), torch.zeros_like(ordered), ordered)
        csum = ordered.cumsum(dim=1)
        picked = csum.gather(1, (k - 1).view(b, 1, 1).expand(-1, 1, cas.shape[2])).squeeze(1)
        return picked / k[:, None].to(cas.dtype)
