"""D2-Net's loss terms (Narayan et al., ICCV 2021), as its authors' code computes them.

Every function takes one batch of *kept* videos (the head drops videos shorter than 5
snippets first, as the reference does) and plain tensors, so each term can be checked
on a few numbers:

- :func:`attention_embeddings`: top-down attention a_fg = max_c CAS (zeroed below 0.5)
  and a_bg = 1 − max_c CAS (zeroed below 0.5; 0.8 on ActivityNet), and the attention-
  weighted foreground and background embedding of each video;
- :func:`pair_weights`: w0 = 1 − cos(fg_i, fg_j), w1 = 1 − cos(bg_i, bg_k),
  w2 = max(0, cos(fg_i, bg_l)) against other videos of the batch (random pairings);
- :func:`discriminative_loss`: L_dis, the focal-style BCE with those weights and the
  per-class weight W_c = C for positive classes;
- :func:`singular_ratio`: log(σ_max / σ_min) of a matrix's singular values, the
  denoising measure (a well-conditioned joint matrix = high mutual information);
- :func:`intra_video_loss` (L_DS) and :func:`inter_video_loss` (L_DV);
- :func:`update_prototype`: the running background prototype μ ← 0.9 μ + 0.1 · mean.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

PROB_CLAMP = 1e-3  # video scores are clamped to [1e-3, 1 - 1e-3] before the logs
SINGULAR_EPS = 1e-5  # L_DV ignores singular values at or below this
MATRIX_FLOOR = 1e-10  # L_DS clamps the 2x2 joint matrix at this before the SVD


def valid_mask(lengths: Tensor, t: int) -> Tensor:
    """(B, T) True on each video's first ``lengths[i]`` rows."""
    return torch.arange(t, device=lengths.device)[None, :] < lengths[:, None]


def topk_scores(cas: Tensor, lengths: Tensor, ratio: int) -> Tensor:
    """(B, C) video scores: the mean of the top ``ceil(L_i / ratio)`` CAS values per class.

    ``lengths`` (B,) are the valid snippet counts; padded rows never enter the top-k.
    """
    valid = valid_mask(lengths, cas.shape[1])[..., None]
    ranked = cas.masked_fill(~valid, float("-inf")).sort(dim=1, descending=True).values
    k = torch.clamp(torch.ceil(lengths.to(cas.dtype) / ratio), min=1)
    take = torch.arange(cas.shape[1], device=cas.device)[None, :, None] < k[:, None, None]
    return torch.where(take, ranked, torch.zeros_like(ranked)).sum(1) / k[:, None]


def attention_embeddings(
    cas: Tensor, emb: Tensor, lengths: Tensor, *, fg_threshold: float, bg_threshold: float
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Per video: fg embedding, bg embedding, has-fg, has-bg, and the most-background snippet.

    ``cas`` (B, T, C) in [0, 1], ``emb`` (B, T, E). A video whose zeroed attention sums to
    0 has no fg (or bg) embedding (its row is zeros and its flag False). The last output
    (B, E) is the embedding at arg-max of 1 − max_c CAS (the μ update reads it, detached).
    """
    valid = valid_mask(lengths, cas.shape[1])
    a = cas.max(dim=2).values
    b = 1 - a
    zero = torch.zeros_like(a)
    a_fg = torch.where((a < fg_threshold) | ~valid, zero, a)
    a_bg = torch.where((b < bg_threshold) | ~valid, zero, b)
    out = []
    for att in (a_fg, a_bg):
        total = att.sum(1)
        has = total > 0
        pooled = torch.einsum("bt,bte->be", att, emb) / torch.where(has, total, 1.0)[:, None]
        out.append((pooled, has))
    idx = b.detach().masked_fill(~valid, float("-inf")).argmax(dim=1)
    most_bg = emb.detach()[torch.arange(emb.shape[0], device=emb.device), idx]
    (fg, has_fg), (bg, has_bg) = out
    return fg, bg, has_fg, has_bg, most_bg


def pair_weights(
    fg: Tensor,
    bg: Tensor,
    has_fg: Tensor,
    has_bg: Tensor,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """(B, 3) weights [w0, w1, w2] from random pairings within the batch.

    - w0 (compactness of foregrounds): each video with a fg embedding against the fg of
      a random video of the same set (a random permutation; it may draw itself, w0 = 0);
    - w1 (compactness of backgrounds): the same over bg embeddings;
    - w2 (separation): min(#fg, #bg) random fg videos, each against a distinct random bg
      embedding: max(0, cos(fg_i, bg_j)).

    Videos without the embedding a weight needs get 0 there. Gradients flow through the
    weights into the embeddings, as in the reference.
    """
    b = fg.shape[0]
    fg_idx = torch.nonzero(has_fg).flatten()
    bg_idx = torch.nonzero(has_bg).flatten()
    cols: list[Tensor] = []
    for idx, feats in ((fg_idx, fg), (bg_idx, bg)):
        col = fg.new_zeros(b)
        if len(idx):
            perm = idx[torch.randperm(len(idx), generator=generator).to(idx.device)]
            col = col.index_put((idx,), 1 - F.cosine_similarity(feats[idx], feats[perm], dim=1))
        cols.append(col)
    col = fg.new_zeros(b)
    m = min(len(fg_idx), len(bg_idx))
    if m:
        pick_fg = fg_idx[torch.randperm(len(fg_idx), generator=generator)[:m].to(fg_idx.device)]
        pick_bg = bg_idx[torch.randperm(len(bg_idx), generator=generator)[:m].to(bg_idx.device)]
        sep = F.cosine_similarity(fg[pick_fg], bg[pick_bg], dim=1).clamp(min=0)
        col = col.index_put((pick_fg,), sep)
    cols.append(col)
    return torch.stack(cols, dim=1)


def discriminative_loss(p: Tensor, labels: Tensor, weights: Tensor, *, gamma: float) -> Tensor:
    """L_dis: mean over videos and classes of W_c · focal BCE with the pair weights.

    ``p`` (B, C) video scores (clamped here to [1e-3, 1 − 1e-3]), ``labels`` (B, C)
    multi-hot, ``weights`` (B, 3) = [w0, w1, w2]. Positive term
    (1 − p + w2 + γ·w0)² · y · log p, negative term (p + w2 + γ·w1)² · (1 − y) · log(1 − p);
    W_c = C where y = 1, else 1.
    """
    p = p.clamp(PROB_CLAMP, 1 - PROB_CLAMP)
    w0, w1, w2 = weights[:, :1], weights[:, 1:2], weights[:, 2:3]
    pos = (1 - p + w2 + gamma * w0).pow(2) * labels * torch.log(p)
    neg = (p + w2 + gamma * w1).pow(2) * (1 - labels) * torch.log(1 - p)
    class_weight = torch.where(labels > 0, float(labels.shape[1]), 1.0)
    return (-(pos + neg) * class_weight).mean()


def singular_ratio(matrix: Tensor, *, eps: float | None = None) -> Tensor:
    """log(σ_max / σ_min) of ``matrix``; with ``eps``, over singular values > eps only."""
    s = torch.linalg.svdvals(matrix)
    if eps is not None:
        s = s[s > eps]
        if len(s) == 0:
            return matrix.new_zeros(())
    return torch.log(s.max() / s.min())


def inter_video_loss(p: Tensor, labels: Tensor) -> Tensor:
    """L_DV: the C×C joint of labels and peaked video scores, log σ_max/σ_min.

    Per video q = p · [p > 0.2 max p], normalised to sum 1 (p clamped as in L_dis). The
    labels are normalised per class over the batch (a class no video has stays 0), and
    M = Yᵀ Q; singular values <= 1e-5 are ignored. Non-finite results count 0.
    """
    p = p.clamp(PROB_CLAMP, 1 - PROB_CLAMP)
    q = p * (p > 0.2 * p.max(dim=1, keepdim=True).values).to(p.dtype)
    q = q / q.sum(dim=1, keepdim=True)
    y = labels.t() / labels.sum(0).clamp(min=1)[:, None]
    loss = singular_ratio(y @ q, eps=SINGULAR_EPS)
    return loss if bool(torch.isfinite(loss)) else loss.new_zeros(())


def bottom_up_attention(emb: Tensor, prototype: Tensor) -> Tensor:
    """(1 − cos(x_t, μ)) / 2 per snippet: how unlike the background prototype x_t is."""
    return (1 - F.cosine_similarity(emb, prototype.expand_as(emb), dim=-1)) / 2


def intra_video_loss(
    cas: Tensor,
    emb: Tensor,
    labels: Tensor,
    lengths: Tensor,
    prototype: Tensor,
    *,
    bg_threshold: float,
) -> Tensor:
    """L_DS: per video, the 2×2 joint of bottom-up groups and top-down confidences.

    Snippets with b > 0.5 are foreground, b < ``bg_threshold`` background (0.5; 0.3 on
    ActivityNet). s = max CAS over the video's labelled classes on foreground snippets,
    over all classes on background ones. M = [[mean_fg s, mean_fg 1−s], [mean_bg s,
    mean_bg 1−s]] (clamped at 1e-10); loss log σ_max/σ_min, averaged over the videos
    that have both groups. 0 while μ is all zeros; non-finite results count 0.
    """
    if not bool(prototype.abs().sum() > 0):
        return cas.new_zeros(())
    valid = valid_mask(lengths, cas.shape[1])
    b = bottom_up_attention(emb, prototype.detach())  # (B, T)
    fg = ((b > 0.5) & valid).to(cas.dtype)
    bg = ((b < bg_threshold) & valid).to(cas.dtype)
    n_fg, n_bg = fg.sum(1), bg.sum(1)
    both = (n_fg > 0) & (n_bg > 0)
    if not bool(both.any()):
        return cas.new_zeros(())
    s_fg = cas.masked_fill(labels[:, None, :] <= 0, float("-inf")).max(dim=2).values
    s_fg = torch.where(fg > 0, s_fg, torch.zeros_like(s_fg))  # no -inf off the group
    s_bg = cas.max(dim=2).values
    mean_fg = (s_fg * fg).sum(1) / n_fg.clamp(min=1)
    mean_bg = (s_bg * bg).sum(1) / n_bg.clamp(min=1)
    m = torch.stack(
        [torch.stack([mean_fg, 1 - mean_fg], 1), torch.stack([mean_bg, 1 - mean_bg], 1)], 1
    )[both].clamp(min=MATRIX_FLOOR)  # (N, 2, 2)
    s = torch.linalg.svdvals(m)
    loss = torch.log(s.max(dim=1).values / s.min(dim=1).values).mean()
    return loss if bool(torch.isfinite(loss)) else loss.new_zeros(())


@torch.no_grad()
def update_prototype(prototype: Tensor, background: Tensor, *, momentum: float = 0.9) -> Tensor:
    """μ ← momentum · μ + (1 − momentum) · mean of ``background`` (rows: one per video).

    Returns μ unchanged when there is no row or the mean is not finite (a diverging step
    must not poison the prototype every later step reads).
    """
    if background.shape[0] == 0:
        return prototype
    batch = background.mean(0, keepdim=True)
    if not bool(torch.isfinite(batch).all()):
        return prototype
    return momentum * prototype + (1 - momentum) * batch
