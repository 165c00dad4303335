"""DGAM learns to localize on a THUMOS-shaped synthetic feature store (CPU, opt-in).

The store holds every third THUMOS14 video of the real gt.json (67 training, 70 test videos
with their real timelines) with synthetic two-stream features (``talkit synth features``'s
generator at its default difficulty, seeds 0–2), written through the store API and read
back by the training loop. The features are 256-d (128 per stream; the generator's latent
has 96 dims, so nothing is lost against 2048), as D2-Net's quality test, to fit a CPU test.

The authors' setting otherwise (the ``dgam_thumos14`` preset): batch 32, 400 stratified
snippets per video and uniform 400 at test, Adam lr 1e-3 betas (0.8, 0.999), one CVAE
pass then one model pass per epoch, every loss term and weight of the preset, the ramp
r = min(epoch, 300)/300, and a validation every 10 epochs as the reference's
TEST_EVERY_EPOCH. What differs from the preset, and why:

- ``stage_iterations`` 1: a stage is one pass over the training videos; here 60 training
  videos (67 less the 7 held out for validation) make ⌊60 / 32⌋ = 1 batch of 32 per epoch,
  as the reference's drop_last loader would, where the preset's 6 is THUMOS14's 200 / 32.
  So ``eval_every`` 20 is the reference's 10 epochs.
- 400 iterations (200 epochs; the preset: 72000 = 6000 epochs) so that seed 0 fits CI's
  quality step. The validation mAP peaked at epoch 80 (seed 0) and 60 (seed 2), then fell
  as the classifiers fit the 60 videos (with or without L_recon), so the rest of the
  schedule would not change the selected checkpoint.
- ``data.standardize``: on the raw synthetic features DGAM did not move off chance in 600
  iterations (seed 0: best validation average mAP 0.78, test 0.44, under the whole-video
  baseline with the ground-truth classes, 0.66), the classifier's loss still falling
  slowly; standardized, it learns within 200.

The checkpoint is chosen on validation videos carved from training, never the test set.
The bar is 3x the larger whole-video baseline: one whole-video detection per class the
model predicts (the report's ``baseline_whole_video``), or per ground-truth class, score 1
(as BaSNet's and LGBM-Net's quality test).
One torch thread: DGAM's layers are small, and a second thread on a shared 2-core machine
only oversubscribes it.

Measured when written: see docs/dgam.md (mean ± std over seeds 0–2).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from train_helpers import make_store, oracle_whole_video, thumos_every

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
        "dgam_thumos14",
        {
            "model.in_dim": DIM,
            "model.params.stage_iterations": 1,
            "data.standardize": True,
            "data.num_workers": 0,
            "train.iterations": 400,
            "train.eval_every": 20,
            "train.device": "cpu",
            "train.seed": seed,
        },
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_dgam_beats_the_whole_video_baseline(tmp_path: Path, real_data: Path, seed: int) -> None:
    url, gt, _ = make_store(tmp_path, thumos_every(real_data, 3), dim=DIM, seed=seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = train(
            quality_config(seed),
            store=url,
            annotations=gt,
            out=tmp_path / "run",
            show_progress=False,
        )
    finally:
        torch.set_num_threads(threads)
    got = result.report["result"]["average_mAP"][AVERAGE] * 100
    base = result.report["baseline_whole_video"]["average_mAP"][AVERAGE] * 100
    oracle = oracle_whole_video(gt, AVERAGE) * 100
    print(
        f"dgam seed {seed}: average mAP {AVERAGE} {got:.2f}; whole-video {base:.2f} "
        f"(with the ground-truth classes {oracle:.2f})"
    )
    trivial = max(base, oracle)
    assert trivial > 0  # the baseline is scored, not assumed
    assert got >= 3 * trivial, (seed, got, base, oracle)
