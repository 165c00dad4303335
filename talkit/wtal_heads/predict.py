"""``talkit predict``: re-open a trained run's data and write its detections and mAP report.

The work itself (inference, combining ensemble members, the report) is in
:mod:`talkit.wtal_heads.report`, which the training loop also calls at its end.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from talkit.errors import InputError
from talkit.wtal_heads.data import check_same_classes, load_dataset, prepare_data
from talkit.wtal_heads.report import predict_prepared
from talkit.wtal_heads.rundir import RunDir


def predict_run(
    run: str | Path,
    *,
    split: str = "test",
    store: str | None = None,
    annotations: str | Path | None = None,
    checkpoint: str = "best",
    allow_missing: bool = False,
    device: str = "auto",
) -> dict[str, Any]:
    """``talkit predict``: re-open a run's data (or the given store/annotations) and predict."""
    rundir = RunDir(run)
    config = rundir.read_config()
    info = rundir.read_info()
    store = store or info.get("store")
    annotations = annotations or info.get("annotations")
    if not store or not annotations:
        raise InputError(
            f"{rundir.root} does not record its store or annotation file",
            hint="pass --store and --annotations",
        )
    dataset = load_dataset(annotations)
    check_same_classes(info["classes"], dataset, str(annotations))
    config = config.model_copy(
        update={"eval": config.eval.model_copy(update={"predict_split": None})}
    )
    data = prepare_data(config, store=store, annotations=dataset, allow_missing=allow_missing)
    if split == "val" and info.get("val_ids") and info["val_ids"] != data.val_ids:
        raise InputError(
            "the validation split carved now differs from the one the run used",
            hint="predict with the store and annotation file the run was trained with",
        )
    if split == "test" and not data.test_ids:
        raise InputError(f"the test subset {config.data.test_subset!r} has no stored video")
    return predict_prepared(
        rundir, config, data, split=split, store=store, checkpoint=checkpoint, device=device
    )


def load_report(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
