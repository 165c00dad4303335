"""From trained weights to detections and an mAP report.

    videos of a split ─► SnippetDataset (uniform / full) ─► head.infer ─► class scores, CAS
      ─► post-processing preset (BaSNet threshold sweep, LGBM-Net watershed, ...) ─► detections
      ─► (ensemble: every member's detections merged, per-class NMS) ─► evaluate ─► report

The report also scores a trivial baseline on the same videos: one detection per predicted
class spanning the whole video. A model that does not beat it clearly has not learned to
localize, whatever its mAP.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from talkit.datasets.model import Dataset
from talkit.datasets.store_dataset import (
    FeatureSource,
    SnippetDataset,
    collate_items,
)
from talkit.errors import InputError
from talkit.wtal_heads.config import RunConfig
from talkit.wtal_heads.data import (
    PreparedData,
    check_same_classes,
    load_dataset,
    prepare_data,
    store_source,
)
from talkit.wtal_heads.detections import DetectionSet, write_detections
from talkit.wtal_heads.evaluation import EvalResult, evaluate, threshold_preset
from talkit.wtal_heads.head import WTALHead, build_head
from talkit.wtal_heads.rundir import RunDir, load_checkpoint_file

if TYPE_CHECKING:
    from talkit.wtal_heads.postprocess import VideoCAS
    from talkit.wtal_heads.postprocess_config import PostprocessConfig


@dataclass
class VideoOutput:
    """A head's output on one video, in numpy, with the seconds each CAS position covers."""

    video_id: str
    class_scores: np.ndarray  # (C,)
    cas: np.ndarray  # (N, C)
    attention: np.ndarray | None  # (N,)
    times: np.ndarray  # (N, 2) seconds


def selection_metric(config: RunConfig) -> str:
    """Which average mAP picks the best checkpoint (the threshold preset's first)."""
    if config.eval.select_metric:
        return config.eval.select_metric
    thr = config.eval.thresholds
    if isinstance(thr, str):
        return next(iter(threshold_preset(thr).averages))
    return f"{min(thr):g}:{max(thr):g}"


@torch.no_grad()
def infer_videos(
    model: WTALHead,
    config: RunConfig,
    source: FeatureSource,
    annotations: Dataset,
    video_ids: list[str],
    classes: list[str],
    device: torch.device,
    *,
    batch_size: int = 16,
) -> list[VideoOutput]:
    """Run the head on every video, sampled as the config's eval sampling says."""
    ds = SnippetDataset(
        source,
        annotations,
        video_ids,
        classes=classes,
        sampling=config.data.eval_sampling,
        num_segments=config.data.eval_num_segments,
    )
    # Uniform sampling gives every video the same length, so videos batch without padding.
    bs = batch_size if config.data.eval_sampling == "uniform" else 1
    model.eval()
    outputs: list[VideoOutput] = []
    for start in range(0, len(ds), bs):
        batch = collate_items([ds[i] for i in range(start, min(start + bs, len(ds)))])
        x = batch["features"].to(device)
        inf = model.infer(x, None)
        scores = inf.class_scores.float().cpu().numpy()
        cas = inf.cas.float().cpu().numpy()
        att = inf.attention.float().cpu().numpy() if inf.attention is not None else None
        for i, vid in enumerate(batch["video_ids"]):
            outputs.append(
                VideoOutput(
                    vid, scores[i], cas[i], None if att is None else att[i], batch["times"][i]
                )
            )
    return outputs


def _as_video_cas(out: VideoOutput) -> VideoCAS:
    from talkit.wtal_heads.postprocess import VideoCAS

    return VideoCAS(
        video_id=out.video_id,
        class_scores=out.class_scores,
        cas=out.cas,
        times=out.times,
        attention=out.attention,
    )


def postprocess_preset(config: RunConfig, head: WTALHead | None = None) -> PostprocessConfig:
    """The post-processing recipe a run uses: the config's, else the head's own."""
    from talkit.wtal_heads.postprocess import get_preset

    name = config.eval.postprocess or (head.postprocess if head is not None else "basnet")
    return get_preset(name, **config.eval.postprocess_params)


def detect(
    outputs: list[VideoOutput], classes: list[str], config: RunConfig, head: WTALHead | None = None
) -> DetectionSet:
    """Detections from CAS with the method's post-processing preset."""
    from talkit.wtal_heads.postprocess import detect_videos

    preset = postprocess_preset(config, head)
    return detect_videos([_as_video_cas(o) for o in outputs], classes, preset)


def no_detection_reason(outputs: list[VideoOutput], preset: PostprocessConfig) -> str:
    """Why post-processing gave no detection at all, in terms a user can act on."""
    best = max((float(np.max(o.class_scores)) for o in outputs if o.class_scores.size), default=0.0)
    value = preset.class_value
    if preset.class_rule == "threshold" and not preset.class_fallback_argmax:
        passed = best >= value if preset.class_inclusive else best > value
        if not passed:
            return (
                f"no class passed the class-score threshold {value:g} of post-processing "
                f"preset {preset.name!r} (the highest video-level class score was {best:.3g}); "
                "train longer, or lower it with --set eval.postprocess_params.class_value=X"
            )
    return (
        f"no proposal survived post-processing preset {preset.name!r} (class selection "
        f"{preset.class_rule} {value:g}, highest video-level class score {best:.3g}; proposal "
        f"thresholds {', '.join(f'{t:g}' for t in preset.thresholds)})"
    )


def nms_merge(sets: list[DetectionSet], iou: float) -> DetectionSet:
    """Merge detection sets (ensemble members) and run hard NMS per video and class."""
    from talkit.wtal_heads.nms import nms

    video = np.concatenate([s.video for s in sets])
    label = np.concatenate([s.label for s in sets])
    segments = np.concatenate([s.segments for s in sets])
    scores = np.concatenate([s.score for s in sets])
    groups: dict[tuple[str, str], list[int]] = {}
    for i, key in enumerate(zip(video.tolist(), label.tolist(), strict=True)):
        groups.setdefault(key, []).append(i)
    records = []
    for (vid, lab), idx in groups.items():
        rows = np.asarray(idx)
        keep, kept_scores = nms(segments[rows], scores[rows], iou=iou, kind="hard")
        records.extend(
            {"video": vid, "label": lab, "segment": segments[rows[k]].tolist(), "score": float(sc)}
            for k, sc in zip(keep, kept_scores, strict=True)
        )
    return DetectionSet.from_records(records, source="ensemble")


def whole_video_baseline(
    outputs: list[VideoOutput], classes: list[str], *, class_threshold: float = 0.25
) -> DetectionSet:
    """One detection per predicted class spanning the whole video, scored by the class score.

    Classes are those at or above ``class_threshold``, or the top one if none is.
    """
    records = []
    for out in outputs:
        picked = np.flatnonzero(out.class_scores >= class_threshold)
        if len(picked) == 0:
            picked = np.array([int(np.argmax(out.class_scores))])
        start, end = float(out.times[0, 0]), float(out.times[-1, 1])
        for c in picked:
            records.append(
                {
                    "video": out.video_id,
                    "label": classes[c],
                    "segment": [start, end],
                    "score": float(out.class_scores[c]),
                }
            )
    return DetectionSet.from_records(records, source="whole-video baseline")


def score(config: RunConfig, gt: Dataset, detections: DetectionSet) -> EvalResult:
    return evaluate(
        gt, detections, thresholds=config.eval.thresholds, exclude_videos=config.eval.exclude_videos
    )


def _load_member(
    rundir: RunDir,
    config: RunConfig,
    data: PreparedData,
    source: FeatureSource,
    which: str,
    device: torch.device,
) -> WTALHead:
    ckpt = load_checkpoint_file(rundir.checkpoint(which))
    if list(ckpt["classes"]) != data.classes:
        raise InputError(
            f"{rundir.checkpoint(which)} was trained on other classes than the annotations give",
            hint="predict with the annotation file the run was trained with",
        )
    if int(ckpt["in_dim"]) != source.dim:
        raise InputError(
            f"{rundir.checkpoint(which)} expects {ckpt['in_dim']}-d features; the store gives {source.dim}",
            hint="predict on the feature set the run was trained on",
        )
    model = build_head(
        ckpt["head"],
        in_dim=int(ckpt["in_dim"]),
        num_classes=len(data.classes),
        params=dict(ckpt["head_params"]),
    )
    model.load_state_dict(ckpt["model"])
    return model.to(device)


def evaluate_model(
    model: WTALHead,
    config: RunConfig,
    data: PreparedData,
    source: FeatureSource,
    split: str,
    device: torch.device,
) -> EvalResult:
    """mAP of a model on a split (the loop's validation)."""
    ids = data.split_ids(split)
    outputs = infer_videos(model, config, source, data.annotations, ids, data.classes, device)
    return score(config, data.ground_truth(ids), detect(outputs, data.classes, config, model))


def _report_md(config: RunConfig, split: str, result: EvalResult, baseline: EvalResult) -> str:
    gt = result.gt_summary
    lines = [
        f"# {config.name}: {split} split",
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
    from talkit.wtal_heads.train import resolve_device

    dev = resolve_device(device if device != "auto" else config.train.device)
    ids = data.split_ids(split)
    if not ids:
        raise InputError(f"split {split!r} has no video to predict")
    members = config.members()
    sets, all_outputs, presets = [], [], []
    for member in members:
        if config.ensemble:
            source = store_source(store, member.data) if isinstance(store, str) else store
            mdir = rundir.member(member.name)
        else:
            source, mdir = data.source, rundir
        model = _load_member(mdir, member, data, source, checkpoint, dev)
        outputs = infer_videos(model, member, source, data.annotations, ids, data.classes, dev)
        sets.append(detect(outputs, data.classes, member, model))
        all_outputs.append(outputs)
        presets.append(postprocess_preset(member, model))
    dets = sets[0] if len(sets) == 1 else nms_merge(sets, config.eval.ensemble_nms)
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
            "mAP": {
                f"{t:g}": float(m)
                for t, m in zip(base_result.thresholds, base_result.map, strict=True)
            },
        },
    }
    rundir.report(split).write_text(json.dumps(report, indent=2))
    rundir.report(split, "md").write_text(_report_md(config, split, result, base_result))
    plot_run(rundir, config, split, result)
    return report


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
