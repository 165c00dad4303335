"""A run's verdict on one split: detections, the mAP report (with a trivial baseline), plots.

    for each model (one, or one per feature set when ensembling):
        best.pt ─► infer ─► CAS per video
    combine (ensemble: merged detections + NMS, or averaged CAS) ─► detections
    ─► evaluate, and the whole-video baseline ─► detections_<split>.json, report_<split>.*

Used at the end of training and by ``talkit predict``; it imports neither.
"""

from __future__ import annotations

import json
from typing import Any

import torch

from talkit.datasets.store_dataset import FeatureSource
from talkit.errors import InputError
from talkit.wtal_heads.config import RunConfig
from talkit.wtal_heads.data import PreparedData, store_source
from talkit.wtal_heads.device import resolve_device
from talkit.wtal_heads.evaluation import EvalResult
from talkit.wtal_heads.evaluation.detections import DetectionSet, write_detections
from talkit.wtal_heads.evaluation.diagnostics import no_detection_reason, whole_video_baseline
from talkit.wtal_heads.evaluation.ensemble import average_outputs, merge_detection_sets
from talkit.wtal_heads.evaluation.postprocess import VideoCAS, detect_videos
from talkit.wtal_heads.evaluation.postprocess_config import PostprocessConfig
from talkit.wtal_heads.head import WTALHead, build_head
from talkit.wtal_heads.inference import infer_videos, postprocess_preset, score
from talkit.wtal_heads.rundir import RunDir, load_checkpoint_file


def load_member(
    rundir: RunDir,
    classes: list[str],
    in_dim: int,
    which: str,
    device: torch.device,
) -> WTALHead:
    """The head saved as ``which`` (best / last) in ``rundir``, checked against the data."""
    ckpt = load_checkpoint_file(rundir.checkpoint(which))
    if list(ckpt["classes"]) != classes:
        raise InputError(
            f"{rundir.checkpoint(which)} was trained on other classes than the annotations give",
            hint="predict with the annotation file the run was trained with",
        )
    if int(ckpt["in_dim"]) != in_dim:
        raise InputError(
            f"{rundir.checkpoint(which)} expects {ckpt['in_dim']}-d features; the store gives {in_dim}",
            hint="predict on the feature set the run was trained on",
        )
    model = build_head(
        ckpt["head"],
        in_dim=int(ckpt["in_dim"]),
        num_classes=len(classes),
        params=dict(ckpt["head_params"]),
    )
    model.load_state_dict(ckpt["model"])
    return model.to(device)


def combine(
    outputs: list[list[VideoCAS]],
    presets: list[PostprocessConfig],
    classes: list[str],
    *,
    mode: str,
    nms_iou: float,
) -> DetectionSet:
    """One detection set from one or several members' outputs on the same videos."""
    if len(outputs) == 1:
        return detect_videos(outputs[0], classes, presets[0])
    if mode == "average":
        return detect_videos(average_outputs(outputs), classes, presets[0])
    sets = [detect_videos(o, classes, p) for o, p in zip(outputs, presets, strict=True)]
    return merge_detection_sets(sets, iou=nms_iou)


def report_md(title: str, split: str, result: EvalResult, baseline: EvalResult) -> str:
    """The mAP table of a split as Markdown, with the whole-video baseline beside it."""
    gt = result.gt_summary
    lines = [
        f"# {title}: {split} split",
        "",
        f"Ground truth: {gt.get('videos')} videos, {gt.get('instances')} instances, "
        f"{gt.get('classes')} classes.",
        "",
    ]
    lines.append("| tIoU | " + " | ".join(f"{t:g}" for t in result.thresholds) + " |")
    lines.append("|---|" + "---|" * len(result.thresholds))
    lines.append("| mAP (%) | " + " | ".join(f"{m * 100:.2f}" for m in result.map) + " |")
    lines.append(
        "| whole-video baseline | " + " | ".join(f"{m * 100:.2f}" for m in baseline.map) + " |"
    )
    lines.append("")
    for name, value in result.averages.items():
        lines.append(
            f"- average mAP {name}: {value * 100:.2f} (baseline {baseline.averages.get(name, 0) * 100:.2f})"
        )
    return "\n".join(lines) + "\n"


def map_table(result: EvalResult) -> dict[str, float]:
    """mAP per threshold as ``{"0.1": ...}`` (the report's layout)."""
    return {f"{t:g}": float(m) for t, m in zip(result.thresholds, result.map, strict=True)}


def predict_prepared(
    rundir: RunDir,
    config: RunConfig,
    data: PreparedData,
    *,
    split: str,
    store: str | FeatureSource,
    checkpoint: str = "best",
    device: str = "auto",
) -> dict[str, Any]:
    """Detections and mAP report for ``split``, written into the run directory."""
    from talkit.wtal_heads.run_plots import plot_run

    dev = resolve_device(device if device != "auto" else config.train.device)
    ids = data.split_ids(split)
    if not ids:
        raise InputError(f"split {split!r} has no video to predict")
    all_outputs: list[list[VideoCAS]] = []
    presets: list[PostprocessConfig] = []
    for member in config.members():
        if config.ensemble:
            source = store_source(store, member.data) if isinstance(store, str) else store
            mdir = rundir.member(member.name)
        else:
            source, mdir = data.source, rundir
        model = load_member(mdir, data.classes, source.dim, checkpoint, dev)
        all_outputs.append(
            infer_videos(model, member, source, data.annotations, ids, data.classes, dev)
        )
        presets.append(postprocess_preset(member, model))
    dets = combine(
        all_outputs,
        presets,
        data.classes,
        mode=config.eval.ensemble_mode,
        nms_iou=config.eval.ensemble_nms,
    )
    # Baseline from the (first) model's class scores: the same predicted classes.
    baseline = whole_video_baseline(all_outputs[0], data.classes)
    gt = data.ground_truth(ids)
    result = score(config, gt, dets)
    base_result = score(config, gt, baseline)
    write_detections(
        rundir.detections(split),
        dets,
        external_data={
            "used": True,
            "details": f"talkit {config.name}: {', '.join(config.data.feature_sets)}",
        },
    )
    warnings = []
    if len(dets) == 0:
        why = no_detection_reason([o for outs in all_outputs for o in outs], presets[0])
        warnings.append(f"0 detections on the {split} split, so every AP is 0: {why}")
    report = {
        "split": split,
        "videos": len(ids),
        "checkpoint": checkpoint,
        "warnings": warnings,
        "result": result.to_dict(),
        "baseline_whole_video": {
            "average_mAP": base_result.averages,
            "mAP": map_table(base_result),
        },
    }
    rundir.report(split).write_text(json.dumps(report, indent=2))
    rundir.report(split, "md").write_text(report_md(config.name, split, result, base_result))
    plot_run(rundir, config, split, result)
    return report
