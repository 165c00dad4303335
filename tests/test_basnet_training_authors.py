"""talkit's BaSNet training step against a restatement of its authors' training code.

Restated here from Pilhyeon/BaSNet-pytorch (model.py, train.py, main.py,
thumos_features.py), written for the test and independent of talkit's fused modules:
Conv1d layers in channel-first layout, each branch its own call of the CAS module, top-k
by sorting, ``nn.BCELoss`` (mean over batch x (C+1)), the filter's L1 term
``mean_b ||w_b||_1`` over time, ``Adam(betas=(0.9, 0.999), weight_decay=5e-4)``, PyTorch's
default initialisation (the authors' code applies none of its own), and the training
sampler ``random_perturb``. Same seed, same batch: talkit must start from the same
weights, compute the same scores and loss, and take the same optimiser step.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from talkit.datasets.store_dataset import stratified_indices, uniform_indices
from talkit.wtal_heads.basnet import create_basnet
from talkit.wtal_heads.config import OptimConfig
from talkit.wtal_heads.train import build_optimizer


class AuthorsBaSNet(nn.Module):
    """The authors' layer list, in their creation order (filter first, then the CAS)."""

    def __init__(self, dim: int, num_classes: int, num_segments: int, f: int, h: int) -> None:
        super().__init__()  # the authors' widths are f = 512, h = 2048
        self.f1 = nn.Conv1d(dim, f, 1)
        self.f2 = nn.Conv1d(f, 1, 1)
        self.c1 = nn.Conv1d(dim, h, 3, padding=1)
        self.c2 = nn.Conv1d(h, h, 3, padding=1)
        self.c3 = nn.Conv1d(h, num_classes + 1, 1, bias=False)
        self.drop = nn.Dropout(0.7)
        self.k = num_segments // 8

    def cas(self, x: Tensor) -> Tensor:
        h = nn.functional.leaky_relu(self.c1(x.transpose(1, 2)))
        h = self.drop(nn.functional.leaky_relu(self.c2(h)))
        return self.c3(h).transpose(1, 2)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        w = torch.sigmoid(self.f2(nn.functional.leaky_relu(self.f1(x.transpose(1, 2)))))
        w = w.transpose(1, 2)  # (B, T, 1)
        cas_base, cas_supp = self.cas(x), self.cas(w * x)
        score_base = cas_base.sort(dim=1, descending=True)[0][:, : self.k].mean(1)
        score_supp = cas_supp.sort(dim=1, descending=True)[0][:, : self.k].mean(1)
        return score_base.softmax(1), cas_base, score_supp.softmax(1), cas_supp, w


def authors_loss(score_base: Tensor, score_supp: Tensor, w: Tensor, label: Tensor) -> Tensor:
    ones = torch.ones(label.shape[0], 1)
    base = torch.cat([label, ones], 1)
    supp = torch.cat([label, 0 * ones], 1)
    base = base / base.sum(1, keepdim=True)
    supp = supp / supp.sum(1, keepdim=True)
    bce = nn.BCELoss()
    return bce(score_base, base) + bce(score_supp, supp) + 1e-4 * torch.norm(w, p=1, dim=1).mean()


def authors_random_perturb_candidates(length: int, num: int) -> list[set[int]]:
    """For each output position, the snippets ``random_perturb`` can pick (np.random.choice)."""
    if length == num:
        return [{i} for i in range(num)]
    s = np.arange(num) * length / num
    out = []
    for i in range(num):
        if i < num - 1:
            a, b = int(s[i]), int(s[i + 1])
            out.append(set(range(a, b + 1)) if a != b else {a})
        else:
            a = int(s[i])
            out.append(set(range(a, length)) if a < length - 1 else {a})
    return out


@pytest.mark.parametrize(("length", "num"), [(1000, 100), (757, 64), (10, 64), (64, 64), (65, 64)])
def test_stratified_sampling_picks_from_the_authors_candidates_uniformly(length, num) -> None:
    rng = np.random.default_rng(0)
    draws = np.stack([stratified_indices(length, num, rng) for _ in range(400)])
    for i, cand in enumerate(authors_random_perturb_candidates(length, num)):
        assert set(draws[:, i].tolist()) == cand, i  # every candidate drawn, no other
        counts = np.array([(draws[:, i] == c).sum() for c in sorted(cand)])
        assert counts.min() >= 400 / len(cand) * 0.5  # roughly uniform, as np.random.choice


def test_uniform_sampling_is_the_authors_test_sampling() -> None:
    for length, num in [(1000, 750), (300, 750), (750, 750)]:
        expected = np.floor(np.arange(num) * length / num).astype(int)
        assert np.array_equal(uniform_indices(length, num), expected)


def test_basnet_step_matches_the_authors_init_scores_loss_and_adam() -> None:
    dim, classes, t, b = 96, 5, 24, 3
    torch.manual_seed(7)
    ours = create_basnet(in_dim=dim, num_classes=classes, filter_dim=64, cas_dim=256)
    torch.manual_seed(7)
    theirs = AuthorsBaSNet(dim, classes, t, 64, 256)
    pairs = list(zip(ours.parameters(), theirs.parameters(), strict=True))
    for p, q in pairs:  # same seed, same default init, same creation order
        assert torch.equal(p, q.view_as(p))

    gen = torch.Generator().manual_seed(1)
    x = torch.relu(torch.randn(b, t, dim, generator=gen) + 0.3)  # raw, non-negative
    label = torch.tensor([[1.0, 0, 0, 0, 0], [0, 1, 0, 1, 0], [0, 0, 0, 0, 1]])
    ours.eval()  # no dropout: the two draw their masks in a different order
    theirs.eval()
    out = ours(x)
    sb, cb, ss, cs, w = theirs(x)
    torch.testing.assert_close(out["cas_base"], cb, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out["cas_supp"], cs, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out["score_supp"], ss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["attention"], w[..., 0], rtol=1e-5, atol=1e-6)
    loss, _ = ours.loss(out, label)
    ref = authors_loss(sb, ss, w, label)
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-6)

    opt_ours = build_optimizer(ours.parameters(), OptimConfig(name="adam", lr=1e-4))
    opt_theirs = torch.optim.Adam(
        theirs.parameters(), lr=1e-4, betas=(0.9, 0.999), weight_decay=0.0005
    )
    for _ in range(2):
        opt_ours.zero_grad()
        ours.loss(ours(x), label)[0].backward()
        opt_ours.step()
        opt_theirs.zero_grad()
        sb, _, ss, _, w = theirs(x)
        authors_loss(sb, ss, w, label).backward()
        opt_theirs.step()
    for p, q in pairs:
        torch.testing.assert_close(p, q.view_as(p), rtol=1e-4, atol=1e-6)


def test_dropout_masks_of_the_two_branches_are_independent_as_in_two_calls() -> None:
    torch.manual_seed(0)
    model = create_basnet(in_dim=16, num_classes=3, filter_dim=8, cas_dim=64)
    model.train()
    x = torch.rand(1, 32, 16)
    with torch.no_grad():
        model.attention.head[-1].bias.fill_(30.0)  # w = 1: both branches see the same input
        out = model(x)
    # Same input to both branches; only their dropout masks can make them differ.
    assert not torch.allclose(out["cas_base"], out["cas_supp"])
