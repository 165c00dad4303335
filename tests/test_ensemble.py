"""Ensembles of models trained on different feature sets of one store (`talkit ensemble`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import run_cli
from train_helpers import tiny_config

from talkit.datasets import Dataset, Segment, Video, write_activitynet_json
from talkit.datasets.synthetic.features import write_features_to_store
from talkit.wtal_heads.ensemble import ensemble_runs
from talkit.wtal_heads.evaluation.detections import DetectionSet
from talkit.wtal_heads.evaluation.ensemble import average_outputs, merge_detection_sets
from talkit.wtal_heads.evaluation.postprocess import VideoCAS
from talkit.wtal_heads.train import train

CLASSES = ("jump", "swim", "throw", "lift")
AVERAGE = "0.1:0.5"


def _timelines(per_class: int, seed: int = 0) -> Dataset:
    """60-s videos with two 8–16 s instances of one class each, ``per_class`` per class in
    training and half as many in test."""
    rng = np.random.default_rng(seed)
    videos = {}
    for subset, n in (("validation", per_class), ("test", max(2, per_class // 2))):
        for i in range(n * len(CLASSES)):
            label = CLASSES[i % len(CLASSES)]
            a = rng.uniform(4, 18)
            b = rng.uniform(34, 42)
            segs = [
                Segment(label=label, start_s=a, end_s=a + rng.uniform(8, 16)),
                Segment(label=label, start_s=b, end_s=b + rng.uniform(8, 16)),
            ]
            vid = f"video_{subset}_{i:04d}"
            videos[vid] = Video(id=vid, subset=subset, duration_s=60.0, annotations=segs)
    return Dataset(name="thumos14", classes=list(CLASSES), videos=videos)


def _only(ds: Dataset, keep: set[str]) -> Dataset:
    """The same videos (and durations) with the annotations of other classes removed: in
    features written from it, those actions look like background."""
    videos = {
        vid: v.model_copy(update={"annotations": [s for s in v.annotations if s.label in keep]})
        for vid, v in ds.videos.items()
    }
    return ds.model_copy(update={"videos": videos})


@pytest.fixture(scope="module")
def complementary(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """Feature set ``a`` carries the actions of the first two classes only, ``b`` those of
    the last two: each alone can localize half the classes."""
    root = tmp_path_factory.mktemp("complementary")
    ds = _timelines(per_class=8)
    url = str(root / "feats.store")
    halves = {"a": set(CLASSES[:2]), "b": set(CLASSES[2:])}
    for key, keep in halves.items():
        write_features_to_store(
            url, _only(ds, keep), dataset_name="thumos14", feature_set=key, dim=64, seed=0
        )
    gt = root / "gt.json"
    write_activitynet_json(ds, gt)
    return url, gt


def _member(url: str, gt: Path, out: Path, feature_set: str) -> Path:
    cfg = tiny_config(
        "lgbm",
        **{
            "data.feature_sets": [f"thumos14/{feature_set}"],
            "data.standardize": True,
            "data.num_segments": 32,
            "data.eval_num_segments": 32,
            "data.val_fraction": 0.2,
            "model.params.cas_dim": 16,
            "train.batch_size": 8,
            "train.iterations": 150,
            "train.eval_every": 50,
            "optim.lr": 2e-3,
            "eval.predict_split": None,
        },
    )
    torch.set_num_threads(2)
    train(cfg, store=url, annotations=gt, out=out, show_progress=False)
    return out


@pytest.mark.slow
def test_an_ensemble_over_complementary_feature_sets_beats_each_member(
    complementary, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, gt = complementary
    runs = [_member(url, gt, tmp_path / f"lgbm_{k}", k) for k in ("a", "b")]
    report = ensemble_runs(runs, out=tmp_path / "ens", mode="merge")
    members = {n: m["average_mAP"][AVERAGE] for n, m in report["members"].items()}
    ens = report["ensemble"]["average_mAP"][AVERAGE]
    assert set(members) == {"lgbm_a", "lgbm_b"}
    assert ens >= max(members.values()) > 0
    saved = json.loads((tmp_path / "ens" / "report_test.json").read_text())
    assert saved["ensemble"]["average_mAP"][AVERAGE] == ens
    assert (tmp_path / "ens" / "detections_test.json").is_file()

    # The command line: CAS averaging, one table with each member's and the ensemble's mAP.
    code, out, err = run_cli(
        capsys, "ensemble", str(runs[0]), str(runs[1]), "--out", str(tmp_path / "avg"),
        "--mode", "average",
    )  # fmt: skip
    assert code == 0, err
    assert "lgbm_a" in out and "lgbm_b" in out and "ensemble" in out
    table = (tmp_path / "avg" / "report_test.md").read_text()
    assert table.count("\n| lgbm_") == 2 and "| ensemble |" in table


def test_merging_keeps_the_best_of_overlapping_member_detections() -> None:
    a = DetectionSet.from_records(
        [
            {"video": "v", "label": "x", "segment": [0.0, 10.0], "score": 0.9},
            {"video": "v", "label": "y", "segment": [0.0, 10.0], "score": 0.5},
        ]
    )
    b = DetectionSet.from_records(
        [
            {"video": "v", "label": "x", "segment": [1.0, 10.0], "score": 0.95},  # tIoU 0.9
            {"video": "v", "label": "x", "segment": [30.0, 40.0], "score": 0.4},
        ]
    )
    merged = merge_detection_sets([a, b], iou=0.5)
    got = sorted(zip(merged.label, merged.segments[:, 0], merged.score, strict=True))
    assert got == [("x", 1.0, 0.95), ("x", 30.0, 0.4), ("y", 0.0, 0.5)]


def test_cas_averaging_resamples_a_member_on_another_time_grid() -> None:
    times_a = np.stack([np.arange(4.0), np.arange(4.0) + 1], axis=1)  # centres 0.5 .. 3.5
    times_b = np.stack([np.arange(2.0) * 2, np.arange(2.0) * 2 + 2], axis=1)  # centres 1, 3
    a = VideoCAS("v", np.array([0.2, 0.8]), np.zeros((4, 2)), times_a, np.ones(4))
    b = VideoCAS("v", np.array([0.6, 0.0]), np.array([[1.0, 0.0], [3.0, 2.0]]), times_b, None)
    (avg,) = average_outputs([[a], [b]])
    np.testing.assert_allclose(avg.class_scores, [0.4, 0.4])
    # b (values at centres 1 and 3) read at a's centres 0.5 .. 3.5, ends held, then
    # averaged with a's zeros
    np.testing.assert_allclose(avg.cas[:, 0], np.array([1.0, 1.5, 2.5, 3.0]) / 2)
    np.testing.assert_allclose(avg.cas[:, 1], np.array([0.0, 0.5, 1.5, 2.0]) / 2)
    assert avg.attention is None  # one member has none
    np.testing.assert_array_equal(avg.times, times_a)
