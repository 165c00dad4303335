"""`talkit train` and `talkit predict` on a feature store on S3 (moto's server).

Training reads the store from its URL in the main process and in a DataLoader worker
process, which reopens it from the URL; the run directory records the URL, and
`predict` reopens it from there. The results must equal those of the same run on a local
copy of the features.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from cli_helpers import run_cli
from train_helpers import tiny_config

from talkit.datasets import Dataset, Segment, Video, write_activitynet_json
from talkit.datasets.synthetic.features import write_features_to_store
from talkit.wtal_heads.train import train

pytestmark = pytest.mark.slow

CLASSES = ["Jump", "Throw", "Swim"]


def _dataset() -> Dataset:
    """8 training and 6 test videos of 30-40 s, one action instance each (3 classes)."""
    videos = {}
    for i in range(14):
        subset = "train" if i < 8 else "test"
        start = 4.0 + 2 * (i % 5)
        videos[f"video_{subset}_{i:02d}"] = Video(
            id=f"video_{subset}_{i:02d}",
            subset=subset,
            duration_s=30.0 + i % 3 * 5,
            annotations=[Segment(label=CLASSES[i % 3], start_s=start, end_s=start + 8.0)],
        )
    return Dataset(name="thumos14", classes=CLASSES, videos=videos)


def _run(store: str, gt: Path, out: Path, workers: int) -> dict[str, Any]:
    cfg = tiny_config("lgbm", **{"data.num_workers": workers})
    result = train(cfg, store=store, annotations=gt, out=out, show_progress=False)
    weights = torch.load(out / "checkpoints" / "last.pt", weights_only=True)["model"]
    return {
        "report": result.report,
        "detections": json.loads((out / "detections_test.json").read_text()),
        "weights": {k: v.numpy().tobytes() for k, v in weights.items()},
    }


def test_train_and_predict_from_an_s3_store_equal_a_local_store(
    s3: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = s3.url("train/feats")
    local = str(tmp_path / "feats.store")
    for store in (url, local):
        filled, _ = write_features_to_store(
            store, _dataset(), dataset_name="thumos14", feature_set="i3d", dim=64, seed=0
        )
    gt = tmp_path / "gt.json"
    write_activitynet_json(filled, gt)

    remote = _run(url, gt, tmp_path / "run_s3", workers=1)  # a worker reopens it by URL
    on_disk = _run(local, gt, tmp_path / "run_local", workers=0)
    assert remote == on_disk
    info = json.loads((tmp_path / "run_s3" / "run.json").read_text())
    assert info["store"] == url

    (tmp_path / "run_s3" / "detections_test.json").unlink()
    code, out, err = run_cli(capsys, "predict", "--run", str(tmp_path / "run_s3"))
    assert code == 0, err
    assert "average mAP" in out or "mAP" in out
    again = json.loads((tmp_path / "run_s3" / "detections_test.json").read_text())
    assert again == remote["detections"]
