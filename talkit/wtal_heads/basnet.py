"""BaSNet: background suppression with two weight-sharing branches (Lee et al., AAAI 2020).

The baseline of LGBM-Net and of this package. Data path::

    x (B,T,D) ──────────────────────────────► CAS module ─► cas_base ─► top-k mean ─► softmax
      │                                          ▲ (shared weights)           score_base
      └─► filter module ─► w (B,T) ─► w ⊙ x ────┘ ─────────► cas_supp ─► top-k mean ─► softmax
                                                                              score_supp

Labels: the base branch's background target is 1, the suppressed branch's is 0; both
normalised to sum 1 and scored with BCE. Plus ``l1_weight`` · mean over videos of Σ_t |w|
(the reference code's L1 norm over time). Inference reads the suppressed branch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from talkit.wtal_heads.head import Inference, WTALHead, register_head
from talkit.wtal_heads.parts import AttentionModule, CASModule, MILScorer


class BackgroundSuppressionNet(WTALHead):
    """Filter (attention) + shared CAS module + top-k MIL, with background labels 1/0."""

    postprocess = "basnet"

    def __init__(
        self,
        *,
        attention: AttentionModule,
        cas: CASModule,
        scorer: MILScorer,
        num_classes: int,
        in_dim: int,
        l1_weight: float = 1e-4,
    ) -> None:
        super().__init__()
        self.attention = attention
        self.cas = cas
        self.scorer = scorer
        self.num_classes = num_classes
        self.in_dim = in_dim
        self.l1_weight = l1_weight
        self.init_input_stats(in_dim)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        x = self.standardize(x, mask)
        w = self.attention(x, mask)  # (B, T)
        if mask is not None:
            w = w * mask.to(w.dtype)
        # Both branches share the CAS module's weights: one call computes both, sharing
        # the first layer's work (see talkit.wtal_heads.parts).
        cas_base, cas_supp = self.cas.forward_pair(x, w, mask)
        both_mask = None if mask is None else torch.cat([mask, mask])
        scores = torch.softmax(self.scorer(torch.cat([cas_base, cas_supp]), both_mask), dim=-1)
        b = x.shape[0]
        return {
            "attention": w,
            "cas_base": cas_base,
            "cas_supp": cas_supp,
            "score_base": scores[:b],
            "score_supp": scores[b:],
        }

    def loss(self, out: dict[str, Tensor], labels: Tensor) -> tuple[Tensor, dict[str, float]]:
        ones = labels.new_ones(labels.shape[0], 1)
        base_t = torch.cat([labels, ones], dim=1)
        supp_t = torch.cat([labels, torch.zeros_like(ones)], dim=1)
        base_t = base_t / base_t.sum(1, keepdim=True)
        supp_t = supp_t / supp_t.sum(1, keepdim=True).clamp(min=1e-6)
        loss_base = F.binary_cross_entropy(out["score_base"], base_t)
        loss_supp = F.binary_cross_entropy(out["score_supp"], supp_t)
        loss_l1 = out["attention"].abs().sum(1).mean()
        total = loss_base + loss_supp + self.l1_weight * loss_l1
        parts = {
            "loss_base": float(loss_base.detach()),
            "loss_supp": float(loss_supp.detach()),
            "loss_l1": float(loss_l1.detach()),
        }
        return total, parts

    @torch.no_grad()
    def infer(self, x: Tensor, mask: Tensor | None = None) -> Inference:
        out = self.forward(x, mask)
        c = self.num_classes
        return Inference(
            class_scores=out["score_supp"][:, :c],
            cas=out["cas_supp"][..., :c],
            attention=out["attention"],
        )


@register_head("basnet")
def create_basnet(
    *,
    in_dim: int = 2048,
    num_classes: int = 20,
    filter_dim: int = 512,
    cas_dim: int = 2048,
    dropout: float = 0.7,
    topk_ratio: int = 8,
    l1_weight: float = 1e-4,
) -> BackgroundSuppressionNet:
    """BaSNet as its authors' code builds it.

    Filter: Conv1d(D→512, k1) → LeakyReLU → Conv1d(512→1, k1) → sigmoid. CAS: Conv1d(D→2048,
    k3) → LeakyReLU → Conv1d(2048→2048, k3) → LeakyReLU → Dropout 0.7 → Conv1d(→C+1, k1, no
    bias). Video score: top T//8 mean, softmax over C+1.
    """
    return BackgroundSuppressionNet(
        attention=AttentionModule(
            in_dim=in_dim, hidden_dim=filter_dim, branches=("conv",), conv_kernel=1
        ),
        cas=CASModule(
            in_dim=in_dim,
            num_classes=num_classes,
            hidden_dim=cas_dim,
            branches=("conv",),
            conv_kernel=3,
            merge_kernel=3,
            dropout=dropout,
        ),
        scorer=MILScorer(ratio=topk_ratio),
        num_classes=num_classes,
        in_dim=in_dim,
        l1_weight=l1_weight,
    )
