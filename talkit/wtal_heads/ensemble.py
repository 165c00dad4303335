"""``talkit ensemble``: combine trained runs (one model per feature set) on one split.

    RUN_DIR ... ─► each run's best.pt on its own store and feature set ─► CAS per video
      ├─ each member's detections and mAP (its own preset)
      └─ merge: all members' detections pooled, per-class NMS   ─► ensemble detections, mAP
         average: class scores, CAS, attention averaged, one preset run

LGBM-Net's report ensembles models over several backbones' features without saying how;
merging detections is the natural reading, averaging is the comparison. A run trained
with ``ensemble: true`` counts as its members.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from talkit.errors import InputError
from talkit.wtal_heads.config import RunConfig
from talkit.wtal_heads.data import check_same_classes, load_dataset, prepare_data, store_source
from talkit.wtal_heads.device import resolve_device
from talkit.wtal_heads.evaluation import EvalResult
from talkit.wtal_heads.evaluation.detections import DetectionSet, write_detections
from talkit.wtal_heads.evaluation.ensemble import ENSEMBLE_MODES
from talkit.wtal_heads.evaluation.postprocess import VideoCAS, detect_videos
from talkit.wtal_heads.inference import infer_videos, postprocess_preset, score
from talkit.wtal_heads.report import combine, load_member, map_table
from talkit.wtal_heads.rundir import RunDir


@dataclass
class Member:
    """One model of the ensemble: where its weights are and what it reads."""

    name: str
    config: RunConfig
    rundir: RunDir
    store: str


def _members(runs: list[Path], store: str | None) -> tuple[list[Member], dict[str, Any]]:
    members: list[Member] = []
    first_info: dict[str, Any] = {}
    for run in runs:
        rundir = RunDir(run)
        config = rundir.read_config()
        info = rundir.read_info()
        first_info = first_info or info
        if info.get("classes") != first_info.get("classes"):
            raise InputError(
                f"{run} was trained on another class list than {runs[0]}",
                hint="ensemble runs trained with the same annotation file",
            )
        url = store or info.get("store")
        if not url:
            raise InputError(f"{run} does not record its store", hint="pass --store")
        base = Path(run).name
        for m in config.members():
            name = f"{base}:{m.name}" if config.ensemble else base
            mdir = rundir.member(m.name) if config.ensemble else rundir
            members.append(Member(name, m, mdir, url))
    names = [m.name for m in members]
    for i, n in enumerate(names):
        if names.count(n) > 1:
            members[i].name = f"{n}#{names[:i].count(n) + 1}"
    return members, first_info


def ensemble_runs(
    runs: list[str | Path],
    *,
    out: str | Path,
    split: str = "test",
    mode: str = "merge",
    nms_iou: float = 0.5,
    store: str | None = None,
    annotations: str | Path | None = None,
    checkpoint: str = "best",
    device: str = "auto",
) -> dict[str, Any]:
    """Score every run and their ensemble on ``split``; write detections and the table to ``out``.

    Returns the report: ``{"members": {name: average mAPs}, "ensemble": ..., ...}``.
    """
    if mode not in ENSEMBLE_MODES:
        raise InputError(f"unknown ensemble mode {mode!r}", hint="merge or average")
    if len(runs) < 1:
        raise InputError("no run directory given", hint="talkit ensemble RUN_DIR RUN_DIR ...")
    members, info = _members([Path(r) for r in runs], store)
    ann_path = annotations or info.get("annotations")
    if not ann_path:
        raise InputError(
            f"{runs[0]} does not record its annotation file", hint="pass --annotations"
        )
    dataset = load_dataset(ann_path)
    check_same_classes(info["classes"], dataset, str(ann_path))
    dev = resolve_device(device)

    outputs: list[list[VideoCAS]] = []
    presets = []
    member_results: dict[str, EvalResult] = {}
    ids: list[str] | None = None
    gt = None
    first: RunConfig | None = None
    for m in members:
        cfg = m.config.model_copy(
            update={"eval": m.config.eval.model_copy(update={"predict_split": None})}
        )
        data = prepare_data(cfg, store=store_source(m.store, cfg.data), annotations=dataset)
        split_ids = data.split_ids(split)
        if ids is None:
            ids, gt, first = split_ids, data.ground_truth(split_ids), cfg
        elif split_ids != ids:
            raise InputError(
                f"member {m.name} has other {split} videos than {members[0].name} "
                f"({len(split_ids)} vs {len(ids)})",
                hint="ensemble runs whose stores hold the same videos",
            )
        model = load_member(m.rundir, data.classes, data.source.dim, checkpoint, dev)
        outs = infer_videos(model, cfg, data.source, dataset, split_ids, data.classes, dev)
        preset = postprocess_preset(cfg, model)
        outputs.append(outs)
        presets.append(preset)
        member_results[m.name] = score(cfg, gt, detect_videos(outs, data.classes, preset))
    assert ids is not None and gt is not None and first is not None
    dets: DetectionSet = combine(
        outputs, presets, list(dataset.classes), mode=mode, nms_iou=nms_iou
    )
    result = score(first, gt, dets)

    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_detections(
        out_dir / f"detections_{split}.json",
        dets,
        external_data={
            "used": True,
            "details": f"talkit ensemble ({mode}) of {', '.join(m.name for m in members)}",
        },
    )
    report = {
        "split": split,
        "videos": len(ids),
        "mode": mode,
        "nms_iou": nms_iou if mode == "merge" else None,
        "members": {
            name: {
                "run": str(m.rundir.root),
                "feature_sets": m.config.data.feature_sets,
                "average_mAP": r.averages,
                "mAP": map_table(r),
            }
            for (name, r), m in zip(member_results.items(), members, strict=True)
        },
        "ensemble": {"average_mAP": result.averages, "mAP": map_table(result)},
        "result": result.to_dict(),
    }
    (out_dir / f"report_{split}.json").write_text(json.dumps(report, indent=2))
    (out_dir / f"report_{split}.md").write_text(table_md(report))
    return report


def table_md(report: dict[str, Any]) -> str:
    """One Markdown table: every member's and the ensemble's mAP per threshold and averages."""
    ens = report["ensemble"]
    thresholds = list(ens["mAP"])
    averages = list(ens["average_mAP"])
    head = ["model", "feature sets", *thresholds, *(f"avg {a}" for a in averages)]
    lines = [
        f"# Ensemble ({report['mode']}) on the {report['split']} split, "
        f"{report['videos']} videos: mAP (%)",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    rows = [(n, ", ".join(m["feature_sets"]), m) for n, m in report["members"].items()]
    rows.append(("ensemble", "", ens))
    for name, sets, r in rows:
        cells = [f"{100 * r['mAP'][t]:.2f}" for t in thresholds]
        cells += [f"{100 * r['average_mAP'].get(a, 0.0):.2f}" for a in averages]
        lines.append("| " + " | ".join([name, sets, *cells]) + " |")
    return "\n".join(lines) + "\n"
