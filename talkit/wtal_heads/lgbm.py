"""LGBM-Net: local-global background modeling (Wang et al., HACS 2021 WS-TAL report).

BaSNet with local-global parts (../shared/papers/002, sections 3.1–3.3)::

    x ──┬─ Conv (local) ─┐                                   cas_base ─► top-k ─► softmax
        └─ LSTM (global)─┴─ concat ─ conv ─ conv ─ σ ─► w      ▲ shared
                                                         x, w ⊙ x ─► local-global sub-net
    local-global sub-net: [Conv ∥ LSTM] ─ concat ─ conv k3 ─ LeakyReLU ─ Dropout ─ conv → C+1

- Local-global attention module: Conv ∥ global op, merged by two convs, then a sigmoid.
  It is supervised by the activation of the top-scoring class in the CAS: per snippet,
  the base-branch softmax probability of the video's highest-scoring ground-truth class
  (detached). The report gives neither the loss form nor its weight; we use a mean
  absolute difference weighted by ``guide_weight``.
- Local-global sub-net: the CAS, Conv ∥ global op merged by two convs.
- The global op is selectable: ``lstm`` (the report's), ``nonlocal`` or ``pool`` (also tried).
- Two weight-sharing branches, background labels 1 (base) and 0 (suppressed), top-k mean
  MIL, the L1 term on the weights: as in BaSNet. Detection uses the suppressed branch with
  the watershed preset (``postprocess = "lgbm"``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from talkit.wtal_heads.basnet import BackgroundSuppressionNet
from talkit.wtal_heads.head import register_head
from talkit.wtal_heads.parts import GLOBAL_BRANCHES, AttentionModule, CASModule, MILScorer


class LocalGlobalBackgroundNet(BackgroundSuppressionNet):
    """BaSNet's two branches with local-global parts and a supervised attention."""

    postprocess = "lgbm"

    def __init__(self, *, guide_weight: float = 0.1, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.guide_weight = guide_weight

    def attention_target(
        self, out: dict[str, Tensor], labels: Tensor, mask: Tensor | None = None
    ) -> Tensor:
        """Per-snippet activation of the top-scoring labelled class, from the base CAS."""
        c = self.num_classes
        probs = torch.softmax(out["cas_base"], dim=-1)  # (B, T, C+1)
        scores = out["score_base"][:, :c].masked_fill(labels <= 0, float("-inf"))
        top = scores.argmax(1)  # a video with no label falls back to class 0; never trained on
        idx = top.view(-1, 1, 1).expand(-1, probs.shape[1], 1)
        return probs.gather(2, idx).squeeze(-1).detach()

    def loss(self, out: dict[str, Tensor], labels: Tensor) -> tuple[Tensor, dict[str, float]]:
        total, parts = super().loss(out, labels)
        target = self.attention_target(out, labels)
        guide = (out["attention"] - target).abs().mean()
        parts["loss_guide"] = float(guide.detach())
        return total + self.guide_weight * guide, parts


@register_head("lgbm")
def create_lgbm(
    *,
    in_dim: int = 2048,
    num_classes: int = 200,
    global_op: str = "lstm",
    attention_dim: int = 512,
    cas_dim: int = 2048,
    local_kernel: int = 3,
    dropout: float = 0.7,
    topk_ratio: int = 8,
    l1_weight: float = 1e-4,
    guide_weight: float = 0.1,
) -> LocalGlobalBackgroundNet:
    """LGBM-Net with BaSNet's widths and training defaults (the report builds on BaSNet).

    ``global_op``: ``lstm`` (bidirectional, ``dim/2`` units per direction), ``nonlocal``
    (embedded-Gaussian non-local block) or ``pool`` (video mean broadcast to every snippet).
    """
    if global_op not in GLOBAL_BRANCHES:
        raise ValueError(
            f"global_op must be one of {', '.join(GLOBAL_BRANCHES)}, got {global_op!r}"
        )
    branches = ("conv", global_op)
    return LocalGlobalBackgroundNet(
        attention=AttentionModule(
            in_dim=in_dim,
            hidden_dim=attention_dim,
            branches=branches,
            conv_kernel=local_kernel,
            merge_dims=(attention_dim,),
        ),
        cas=CASModule(
            in_dim=in_dim,
            num_classes=num_classes,
            hidden_dim=cas_dim,
            branches=branches,
            conv_kernel=local_kernel,
            merge_kernel=3,
            dropout=dropout,
        ),
        scorer=MILScorer(ratio=topk_ratio),
        num_classes=num_classes,
        in_dim=in_dim,
        l1_weight=l1_weight,
        guide_weight=guide_weight,
    )
