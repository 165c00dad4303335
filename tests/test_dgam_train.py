"""DGAM through the shared loop: `talkit train/predict/eval` end to end on a small store,
the CVAE and model stages alternating in the metrics log, and exact resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from train_helpers import (
    make_store,
    predict_and_eval_from_cli,
    thumos_few_classes,
    train_from_cli,
)

from talkit.wtal_heads.config import load_config
from talkit.wtal_heads.train import train

TINY = {
    "model.in_dim": 64,
    "data.num_segments": 24,
    "data.eval_num_segments": 24,
    "data.num_workers": 0,
    "data.val_fraction": 0.25,
    "train.batch_size": 4,
    "train.iterations": 6,
    "train.eval_every": 3,
    "train.log_every": 1,
    "train.device": "cpu",
    "model.params.stage_iterations": 1,  # CVAE, model, CVAE, ... one step each
    "model.params.ramp_epochs": 2,  # r = 0, 0.5, 1 over the 3 epochs
}


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory, real_data: Path) -> tuple[str, Path]:
    """6 training and 6 test THUMOS14 timelines (3 classes), 64-d synthetic features."""
    root = tmp_path_factory.mktemp("dgam_small")
    url, gt, _ = make_store(root, thumos_few_classes(real_data), dim=64)
    return url, gt


def test_cli_trains_predicts_and_evaluates_dgam(
    small, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, gt = small
    run = tmp_path / "run"
    train_records = train_from_cli(capsys, "dgam_thumos14", url, gt, run, TINY)
    config = (run / "config.yaml").read_text()
    assert "head: dgam" in config and "postprocess: dgam" in config
    assert [r["iteration"] for r in train_records] == [1, 2, 3, 4, 5, 6]
    assert [r["stage_cvae"] for r in train_records] == [1, 0, 1, 0, 1, 0]
    assert [r["ramp"] for r in train_records] == [0, 0, 0.5, 0.5, 1, 1]
    # The CVAE steps log the CVAE terms, the model steps the four losses of each stream.
    assert "cvae_kl_flow" in train_records[0] and "loss_guide_rgb" not in train_records[0]
    assert "loss_recon_flow" in train_records[1] and "cvae_kl_rgb" not in train_records[1]
    best = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    assert best["head"] == "dgam"
    assert best["model"]["cvaes.flow.decoder.4.weight"].shape == (32, 128)  # the CVAEs travel

    report = predict_and_eval_from_cli(capsys, run, gt)
    assert report["gt"]["videos"] == 6


def test_an_interrupted_and_resumed_run_ends_with_the_same_weights(small, tmp_path: Path) -> None:
    url, gt = small
    cfg = load_config("dgam_thumos14", {**TINY, "eval.predict_split": None})
    train(cfg, store=url, annotations=gt, out=tmp_path / "straight", show_progress=False)
    train(cfg, store=url, annotations=gt, out=tmp_path / "cut", show_progress=False, stop_after=3)
    train(cfg, store=url, annotations=gt, out=tmp_path / "cut", show_progress=False, resume=True)
    a = torch.load(tmp_path / "straight" / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=True)
    assert a["model"].keys() == b["model"].keys() and int(a["model"]["step"]) == 6
    for k in a["model"]:  # the stage (step), both CVAEs and both stream models
        assert torch.equal(a["model"][k], b["model"][k]), k
