"""D2-Net through the shared loop: `talkit train/predict/eval` end to end on a small store,
and a step whose loss is not finite being skipped, counted and logged."""

from __future__ import annotations

import json
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
from talkit.wtal_heads.d2net import D2Net
from talkit.wtal_heads.head import register_head
from talkit.wtal_heads.train import train

TINY = {
    "model.in_dim": 64,
    "data.num_segments": 24,
    "data.num_workers": 0,
    "data.val_fraction": 0.25,
    "train.batch_size": 4,
    "train.iterations": 6,
    "train.eval_every": 3,
    "train.log_every": 1,
    "train.device": "cpu",
    "model.params.denoise_after": 1,
    "optim.lr": 1e-3,
}


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory, real_data: Path) -> tuple[str, Path]:
    """6 training and 6 test THUMOS14 timelines (3 classes), 64-d synthetic features."""
    root = tmp_path_factory.mktemp("d2net_small")
    url, gt, _ = make_store(root, thumos_few_classes(real_data), dim=64)
    return url, gt


def test_cli_trains_predicts_and_evaluates_d2net(
    small, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, gt = small
    run = tmp_path / "run"
    train_records = train_from_cli(capsys, "d2net_thumos14", url, gt, run, TINY)
    config = (run / "config.yaml").read_text()
    assert "head: d2net" in config and "postprocess: d2net" in config
    assert [r["iteration"] for r in train_records] == [1, 2, 3, 4, 5, 6]
    # The denoising terms are on at 0-based iterations 2 and 4 (> 1 and even).
    assert [r["denoise"] for r in train_records] == [0, 0, 1, 0, 1, 0]
    assert all(r["skipped_steps"] == 0 for r in train_records)
    best = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    assert best["head"] == "d2net" and best["model"]["prototype"].shape == (1, 32)  # μ travels

    report = predict_and_eval_from_cli(capsys, run, gt)
    print(json.dumps(report)[:600])
    assert report["gt"]["videos"] == 6


class _NonFiniteOnce(D2Net):
    """D2-Net whose loss is NaN at its third step: what a diverging batch looks like."""

    def loss(self, out, labels):
        step = int(self.step)
        total, parts = super().loss(out, labels)
        return (total * float("nan") if step == 2 else total), parts


@register_head("test_d2net_nonfinite_once")
def _nonfinite_once(*, in_dim: int, num_classes: int, **params) -> _NonFiniteOnce:
    return _NonFiniteOnce(in_dim=in_dim, num_classes=num_classes, **params)


def test_a_step_whose_loss_is_not_finite_is_skipped_counted_and_logged(
    small, tmp_path: Path
) -> None:
    url, gt = small
    cfg = load_config("d2net_thumos14", {**TINY, "model.head": "test_d2net_nonfinite_once"})
    run = tmp_path / "run"
    seen: dict[int, dict[str, torch.Tensor]] = {}
    result = train(cfg, store=url, annotations=gt, out=run, show_progress=False, stop_after=2)
    seen[2] = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model"]
    skipping = train(
        cfg, store=url, annotations=gt, out=run, show_progress=False, stop_after=3, resume=True
    )
    seen[3] = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model"]
    result = train(cfg, store=url, annotations=gt, out=run, show_progress=False, resume=True)
    assert result.members[0].iterations_done == 6 and not result.interrupted
    # The skipped step changed no weight (μ still moves: it is not a gradient step).
    for k, v in seen[2].items():
        if k not in ("prototype", "step"):
            assert torch.equal(v, seen[3][k]), k
    records = [
        json.loads(line)
        for line in (run / "metrics.jsonl").read_text().splitlines()
        if '"train"' in line
    ]
    by_it = {r["iteration"]: r for r in records}
    assert by_it[3]["loss"] is None and by_it[3]["skipped_steps"] == 1
    assert by_it[2]["skipped_steps"] == 0 and by_it[6]["skipped_steps"] == 1  # kept on resume
    assert all(isinstance(by_it[i]["loss"], float) for i in (1, 2, 4, 5, 6))
    assert any("iteration 3; step skipped (1 so far)" in n for n in skipping.notes)


def test_an_interrupted_and_resumed_run_ends_with_the_same_weights_and_prototype(
    small, tmp_path: Path
) -> None:
    url, gt = small
    cfg = load_config("d2net_thumos14", {**TINY, "eval.predict_split": None})
    train(cfg, store=url, annotations=gt, out=tmp_path / "straight", show_progress=False)
    train(cfg, store=url, annotations=gt, out=tmp_path / "cut", show_progress=False, stop_after=4)
    train(cfg, store=url, annotations=gt, out=tmp_path / "cut", show_progress=False, resume=True)
    a = torch.load(tmp_path / "straight" / "checkpoints" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert a.keys() == b.keys() and int(a["step"]) == 6
    for k in a:  # the denoising switch (step), μ and the random pairings all resume exactly
        assert torch.equal(a[k], b[k]), k
