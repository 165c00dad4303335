"""D2-Net learns to localize on a THUMOS-shaped synthetic feature store (CPU, opt-in).

The store holds every third THUMOS14 video of the real gt.json (67 training, 70 test videos
with their real timelines) with synthetic two-stream features (``talkit synth features``'s
generator at its default difficulty, seeds 0–2), written through the store API and read
back by the training loop. D2-Net's width is the feature width (residual convs), so the
features are 256-d (128 per stream; the generator's latent has 96 dims, so nothing is
lost against 2048) to fit a CPU test. The authors' setting otherwise: batch 20, random
crops of at most T snippets (T = 256 here), the whole video at test, every loss term and
weight of the preset; shortened to 300 iterations at lr 1e-3 with the denoising terms on
from iteration 100 (the preset: 20000 at 1e-4, from 1000), features standardized. The
checkpoint is chosen on validation videos carved from training, never the test set.

Measured when written: see docs/d2net.md (mean ± std over seeds 0–2).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from train_helpers import make_store, thumos_every

from talkit.wtal_heads.config import RunConfig, load_config
from talkit.wtal_heads.train import train

pytestmark = [pytest.mark.slow, pytest.mark.quality, pytest.mark.timeout(3600)]
# Seed 0 runs in CI's quality step; seeds 1 and 2 complete the README's mean +- std and
# are opt-in on top (`-m seeds`).
SEEDS = [0, pytest.param(1, marks=pytest.mark.seeds), pytest.param(2, marks=pytest.mark.seeds)]

AVERAGE = "0.1:0.7"
DIM = 256


def quality_config(seed: int) -> RunConfig:
    return load_config(
        "d2net_thumos14",
        {
            "model.in_dim": DIM,
            "data.num_segments": 256,
            "data.standardize": True,
            "data.num_workers": 0,
            "train.batch_size": 20,
            "train.iterations": 300,
            "train.eval_every": 100,
            "train.device": "cpu",
            "train.seed": seed,
            "optim.lr": 1e-3,
            "model.params.denoise_after": 100,
        },
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_d2net_beats_the_whole_video_baseline(tmp_path: Path, real_data: Path, seed: int) -> None:
    url, gt, _ = make_store(tmp_path, thumos_every(real_data, 3), dim=DIM, seed=seed)
    torch.set_num_threads(2)
    result = train(
        quality_config(seed), store=url, annotations=gt, out=tmp_path / "run", show_progress=False
    )
    got = result.report["result"]["average_mAP"][AVERAGE] * 100
    base = result.report["baseline_whole_video"]["average_mAP"][AVERAGE] * 100
    print(f"d2net seed {seed}: average mAP {AVERAGE} {got:.2f}; whole-video {base:.2f}")
    assert base > 0  # the baseline is scored, not assumed
    assert got >= 3 * base, (seed, got, base)
