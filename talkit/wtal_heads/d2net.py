"""D2-Net: discriminative embeddings and denoised activations (Narayan et al., ICCV 2021).

As the authors' code (naraysa/D2-Net) runs it. Data path::

    x (B,T,D=[rgb | flow]) ─► x + LeakyReLU(Conv1d k, groups=2) ─► same again ─► h
    h ─► Dropout 0.7 ─► Conv1d(D→2C, groups=2) ─► σ per stream ─► CAS = (σ_rgb + σ_flow)/2
    embedding e_t = (h_rgb + h_flow) / 2   (after the dropout while training, as the reference)

The groups keep the RGB and flow halves apart. Training (see :mod:`.d2net_losses`):

    L = L_dis + 0.1·L_DS + 0.1·L_DV, the two denoising terms from iteration 1000 on,
    on every second iteration (the reference's ``itr > 1000 and itr % 2 == 0``)

and the running background prototype μ (a buffer) ← 0.9 μ + 0.1 · the batch mean of each
video's most-background snippet embedding. Inference multiplies the CAS by the bottom-up
attention (1 − cos(e_t, μ))/2 (on ActivityNet rescaled to 2·b/max b); the video score is
the mean of the top ⌊T/8⌋ (⌊T/4⌋) of that CAS, which the ``d2net`` preset thresholds.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from talkit.wtal_heads.d2net_losses import (
    attention_embeddings,
    bottom_up_attention,
    discriminative_loss,
    inter_video_loss,
    intra_video_loss,
    pair_weights,
    topk_scores,
    update_prototype,
)
from talkit.wtal_heads.head import Inference, WTALHead, register_head

MIN_SNIPPETS = 5  # videos shorter than this take no part in the losses (reference)


def _init(module: nn.Module) -> None:
    if isinstance(module, nn.Conv1d):
        nn.init.normal_(module.weight, 0.0, 0.01)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class D2Net(WTALHead):
    """Two grouped residual temporal convs, a grouped classifier, and the prototype μ."""

    postprocess = "d2net"
    skip_nonfinite = True

    def __init__(
        self,
        *,
        in_dim: int,
        num_classes: int,
        kernel: int = 3,
        dilation: int = 1,
        classifier_kernel: int = 1,
        classifier_dilation: int = 1,
        dropout: float = 0.7,
        topk_ratio: int = 8,
        eval_topk_ratio: int = 8,
        fg_threshold: float = 0.5,
        bg_threshold: float = 0.5,
        ds_bg_threshold: float = 0.5,
        gamma: float = 0.01,
        ds_weight: float = 0.1,
        dv_weight: float = 0.1,
        denoise_after: int = 1000,
        denoise_every: int = 2,
        prototype_momentum: float = 0.9,
        rescale_attention: bool = False,
    ) -> None:
        super().__init__()
        if in_dim % 2:
            raise ValueError(f"in_dim must be even (an RGB and a flow half), got {in_dim}")
        for name, k in (("kernel", kernel), ("classifier_kernel", classifier_kernel)):
            if k % 2 != 1:
                raise ValueError(f"{name} must be odd to keep the length, got {k}")
        if denoise_every < 1:
            raise ValueError(f"denoise_every must be >= 1, got {denoise_every}")
        self.num_classes, self.in_dim = num_classes, in_dim
        pad = (kernel - 1) // 2 * dilation
        self.conv1 = nn.Conv1d(in_dim, in_dim, kernel, padding=pad, dilation=dilation, groups=2)
        self.conv2 = nn.Conv1d(in_dim, in_dim, kernel, padding=pad, dilation=dilation, groups=2)
        self.act = nn.LeakyReLU(0.2)
        self.dropout = nn.Dropout(dropout)
        cpad = (classifier_kernel - 1) // 2 * classifier_dilation
        self.classifier = nn.Conv1d(
            in_dim,
            2 * num_classes,
            classifier_kernel,
            padding=cpad,
            dilation=classifier_dilation,
            groups=2,
        )
        self.apply(_init)
        self.register_buffer("prototype", torch.zeros(1, in_dim // 2))
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.topk_ratio, self.eval_topk_ratio = topk_ratio, eval_topk_ratio
        self.fg_threshold, self.bg_threshold = fg_threshold, bg_threshold
        self.ds_bg_threshold, self.gamma = ds_bg_threshold, gamma
        self.ds_weight, self.dv_weight = ds_weight, dv_weight
        self.denoise_after, self.denoise_every = denoise_after, denoise_every
        self.prototype_momentum = prototype_momentum
        self.rescale_attention = rescale_attention
        self.init_input_stats(in_dim)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        x = self.standardize(x, mask)
        h = x.transpose(1, 2)  # (B, D, T)
        h = self.act(self.conv1(h)) + h
        h = self.act(self.conv2(h)) + h
        h = self.dropout(h)  # identity in eval mode
        logits = self.classifier(h).transpose(1, 2)  # (B, T, 2C): [rgb C | flow C]
        c = self.num_classes
        cas = (torch.sigmoid(logits[..., :c]) + torch.sigmoid(logits[..., c:])) / 2
        h = h.transpose(1, 2)
        half = self.in_dim // 2
        emb = (h[..., :half] + h[..., half:]) / 2
        if mask is None:
            lengths = torch.full((x.shape[0],), x.shape[1], dtype=torch.long, device=x.device)
        else:
            lengths = mask.sum(1).long()
        return {"cas": cas, "embedding": emb, "lengths": lengths}

    def denoising_on(self, iteration: int) -> bool:
        """The reference's switch: after ``denoise_after``, on every ``denoise_every``-th."""
        return iteration > self.denoise_after and iteration % self.denoise_every == 0

    def loss(self, out: dict[str, Tensor], labels: Tensor) -> tuple[Tensor, dict[str, float]]:
        """L_dis (+ L_DS, L_DV when on); updates μ and the step count in training mode."""
        iteration = int(self.step)
        if self.training:
            self.step += 1
        keep = (out["lengths"] >= MIN_SNIPPETS) & (labels.sum(1) > 0)
        cas, emb = out["cas"][keep], out["embedding"][keep]
        lengths, y = out["lengths"][keep], labels[keep].to(cas.dtype)
        zero = out["cas"].new_zeros(())
        if cas.shape[0] == 0:
            return zero, {"loss_dis": 0.0, "loss_ds": 0.0, "loss_dv": 0.0, "denoise": 0.0}
        fg, bg, has_fg, has_bg, most_bg = attention_embeddings(
            cas, emb, lengths, fg_threshold=self.fg_threshold, bg_threshold=self.bg_threshold
        )
        weights = pair_weights(fg, bg, has_fg, has_bg)
        p = topk_scores(cas, lengths, self.topk_ratio)
        l_dis = discriminative_loss(p, y, weights, gamma=self.gamma)
        if self.training:  # μ first: L_DS reads this step's prototype, as the reference
            self.prototype.copy_(
                update_prototype(self.prototype, most_bg[has_bg], momentum=self.prototype_momentum)
            )
        denoise = self.denoising_on(iteration)
        l_ds = l_dv = zero
        if denoise:
            l_dv = inter_video_loss(p, y)
            l_ds = intra_video_loss(
                cas, emb, y, lengths, self.prototype, bg_threshold=self.ds_bg_threshold
            )
        total = l_dis + self.ds_weight * l_ds + self.dv_weight * l_dv
        parts = {
            "loss_dis": float(l_dis.detach()),
            "loss_ds": float(l_ds.detach()),
            "loss_dv": float(l_dv.detach()),
            "denoise": float(denoise),
        }
        return total, parts

    def attention(self, emb: Tensor, lengths: Tensor) -> Tensor:
        """Bottom-up attention (B, T); ActivityNet's rescaling 2·b / max b over valid rows."""
        b = bottom_up_attention(emb, self.prototype)
        if self.rescale_attention:
            valid = torch.arange(b.shape[1], device=b.device)[None, :] < lengths[:, None]
            top = b.masked_fill(~valid, float("-inf")).max(dim=1, keepdim=True).values
            b = b * 2 / top
        return b

    @torch.no_grad()
    def infer(self, x: Tensor, mask: Tensor | None = None) -> Inference:
        out = self.forward(x, mask)
        att = self.attention(out["embedding"], out["lengths"])
        cas = out["cas"] * att[..., None]
        scores = []
        for i in range(cas.shape[0]):
            n = int(out["lengths"][i])
            k = max(1, n // self.eval_topk_ratio)
            scores.append(torch.topk(cas[i, :n], k, dim=0).values.mean(0))
        return Inference(class_scores=torch.stack(scores), cas=cas, attention=att)


@register_head("d2net")
def create_d2net(
    *,
    in_dim: int = 2048,
    num_classes: int = 20,
    kernel: int = 3,
    dilation: int = 1,
    classifier_kernel: int = 1,
    classifier_dilation: int = 1,
    dropout: float = 0.7,
    topk_ratio: int = 8,
    eval_topk_ratio: int = 8,
    fg_threshold: float = 0.5,
    bg_threshold: float = 0.5,
    ds_bg_threshold: float = 0.5,
    gamma: float = 0.01,
    ds_weight: float = 0.1,
    dv_weight: float = 0.1,
    denoise_after: int = 1000,
    denoise_every: int = 2,
    prototype_momentum: float = 0.9,
    rescale_attention: bool = False,
) -> D2Net:
    """D2-Net with its THUMOS14 defaults; ActivityNet 1.2 sets kernel 5, dilation 2, the
    classifier k5 d2, top-k ratios 4, bg_threshold 0.8, ds_bg_threshold 0.3 and
    rescale_attention (see configs/train/d2net_activitynet12.yaml)."""
    return D2Net(
        in_dim=in_dim,
        num_classes=num_classes,
        kernel=kernel,
        dilation=dilation,
        classifier_kernel=classifier_kernel,
        classifier_dilation=classifier_dilation,
        dropout=dropout,
        topk_ratio=topk_ratio,
        eval_topk_ratio=eval_topk_ratio,
        fg_threshold=fg_threshold,
        bg_threshold=bg_threshold,
        ds_bg_threshold=ds_bg_threshold,
        gamma=gamma,
        ds_weight=ds_weight,
        dv_weight=dv_weight,
        denoise_after=denoise_after,
        denoise_every=denoise_every,
        prototype_momentum=prototype_momentum,
        rescale_attention=rescale_attention,
    )
