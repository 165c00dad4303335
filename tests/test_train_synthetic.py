"""BaSNet and LGBM-Net learn to localize on a THUMOS-shaped synthetic feature store (CPU).

The store holds every third THUMOS14 video of the real gt.json (67 training, 70 test
videos with their real timelines), with synthetic 2048-d two-stream features at the
generator's default difficulty (seed 0), written through the store API and read back by
the training loop. The models are the authors' architectures, narrowed (CAS width 32,
attention/filter width 16) and sampled to T = 64, trained for 300 iterations of batch 16
at lr 1e-3 so that they fit a CPU test; features are standardized (``data.standardize``),
without which neither head moves off chance in this budget. The checkpoint is chosen on
the validation videos carved from training (never the test set).

Measured when written (seed 0, 2 CPU threads), average mAP over tIoU 0.1:0.7 on the 70
test videos (the in-memory loop gave the same numbers):

- BaSNet 5.15, LGBM-Net 13.23;
- whole-video baseline from each model's own predicted classes: 0.62 / 0.85;
- whole-video baseline with the ground-truth classes (score 1): 0.66.

So BaSNet is at 6.1x and LGBM-Net at 15.6x the largest trivial baseline (0.85). Seeds 1
and 2 (in-memory, same settings) gave BaSNet 6.38 / 3.97 and LGBM-Net 12.85 / 9.01,
against baselines of at most 0.86. Those numbers are for synthetic generator v1; with v2
(average-pooled ReLU outputs) BaSNet seed 0 gave 7.57 against a whole-video baseline of
0.84 (9.0x); LGBM-Net was not re-measured on v2.

Without ``data.standardize`` (v2), as the presets and the authors' code train, BaSNet's
foreground weights collapse to ~0 for the first ~200 iterations, as the authors' code does
on raw non-negative features; at 600 iterations no validation video passes the class
threshold yet (selected checkpoint: 0.00). At 1000 iterations seeds 0 / 1 / 2 gave
3.95 / 7.56 / 3.62 (5.04 +- 2.19) against whole-video baselines of 0.51 / 0.85 / 0.63 and
0.66 with ground-truth classes: 6.0x / 8.9x / 5.5x. LGBM-Net on raw features at lr 1e-3,
1000 iterations: 3.03 / 6.84 / 0.65 (unstable; seed 2 under 3x); at the authors' lr 1e-4,
1600 iterations, one thread: 4.10 / 6.87 / 8.62 (6.53 +- 2.28) against best baselines of
0.66 / 0.76 / 0.77 (6.2x / 9.0x / 11.2x). On v2 standardized, seed 0: 12.02 against 0.82
(14.7x). With 2 threads on a 2-core machine that
other processes load, a step runs up to 9x slower than quiet (thread oversubscription). See docs/training.md#measured.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from train_helpers import make_store, thumos_every

from talkit.datasets import load_annotations
from talkit.wtal_heads.config import RunConfig, load_config
from talkit.wtal_heads.evaluation import evaluate
from talkit.wtal_heads.evaluation.detections import DetectionSet
from talkit.wtal_heads.train import train

# Minutes of CPU training: opt-in (`pytest -m quality`), and run by CI as its own step.
# LGBM-Net's LSTMs take about 1.5 min quiet, and over 10 on a 2-core machine under load.
pytestmark = [pytest.mark.slow, pytest.mark.quality, pytest.mark.timeout(1800)]
# Seed 0 runs in CI's quality step; seeds 1 and 2 complete the README's mean +- std and
# are opt-in on top (`-m seeds`).
SEEDS = [0, pytest.param(1, marks=pytest.mark.seeds), pytest.param(2, marks=pytest.mark.seeds)]

AVERAGE = "0.1:0.7"


@pytest.fixture(scope="module")
def thumos_shaped(tmp_path_factory: pytest.TempPathFactory, real_data: Path) -> tuple[str, Path]:
    root = tmp_path_factory.mktemp("thumos_shaped")
    url, gt, _ = make_store(root, thumos_every(real_data, 3), dim=2048, seed=0)
    return url, gt


def _config(head: str, **more: object) -> RunConfig:
    overrides: dict[str, object] = {
        "data.num_segments": 64,
        "data.eval_num_segments": 64,
        "data.standardize": True,
        "data.num_workers": 0,
        "model.params.cas_dim": 32,
        "train.batch_size": 16,
        "train.iterations": 300,
        "train.eval_every": 100,
        "train.device": "cpu",
        "train.seed": 0,
        "optim.lr": 1e-3,
    }
    overrides["model.params.filter_dim" if head == "basnet" else "model.params.attention_dim"] = 16
    return load_config(f"{head}_thumos14", {**overrides, **more})


def _oracle_whole_video(gt_path: Path) -> float:
    """One whole-video detection per ground-truth class of each test video, score 1."""
    ds = load_annotations(gt_path).subset("test")
    records = [
        {
            "video": vid,
            "label": label,
            "score": 1.0,
            "segment": [0.0, float(v.duration_s or max(s.end_s for s in v.annotations))],
        }
        for vid, v in ds.videos.items()
        for label in v.labels
    ]
    return evaluate(ds, DetectionSet.from_records(records), thresholds="thumos14").averages[AVERAGE]


def _train_and_compare(
    url: str, gt: Path, out: Path, config: RunConfig, *, threads: int = 2
) -> None:
    torch.set_num_threads(threads)
    result = train(config, store=url, annotations=gt, out=out, show_progress=False)
    assert json.loads((out / "report_test.json").read_text()) == result.report
    got = result.report["result"]["average_mAP"][AVERAGE] * 100
    base = result.report["baseline_whole_video"]["average_mAP"][AVERAGE] * 100
    oracle = _oracle_whole_video(gt) * 100
    name = f"{config.model.head} seed {config.train.seed}"
    print(f"{name}: average mAP {AVERAGE} {got:.2f}; whole-video {base:.2f}; oracle {oracle:.2f}")

    trivial = max(base, oracle)
    assert trivial > 0  # the baseline is scored, not assumed
    assert got >= 3 * trivial, (name, got, base, oracle)


@pytest.mark.parametrize("head", ["basnet", "lgbm"])
def test_each_head_beats_the_whole_video_baseline(thumos_shaped, tmp_path: Path, head: str) -> None:
    url, gt = thumos_shaped
    _train_and_compare(url, gt, tmp_path / head, _config(head))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("head", ["basnet", "lgbm"])
def test_each_head_learns_raw_features(thumos_shaped, tmp_path: Path, head: str, seed: int) -> None:
    """Without ``data.standardize``, as the presets and the authors' code: the foreground
    weights first collapse (~200 iterations), so BaSNet needs 1000 iterations, not 300.

    LGBM-Net trains at the authors' lr 1e-4 (the preset's) for 1600 iterations, with one
    thread: at this file's lr 1e-3 it over-fits the video classes and is unstable across
    seeds (3.03 / 6.84 / 0.65 at 1000 iterations; seed 2 gave detections of the wrong class
    in 42 of 58 test videos).
    """
    url, gt = thumos_shaped
    more: dict[str, object] = {"data.standardize": False, "train.iterations": 1000}
    if head == "lgbm":
        more.update({"optim.lr": 1e-4, "train.iterations": 1600})
    config = _config(head, **more, **{"train.seed": seed})
    out = tmp_path / f"raw_{head}_{seed}"
    _train_and_compare(url, gt, out, config, threads=1 if head == "lgbm" else 2)
