"""Evaluation as its own room: detections, post-processing presets, NMS, matching, mAP, plots.

Nothing here imports the training side of talkit (configs, heads, the loop, torch), so
scoring anyone's detections, or turning anyone's CAS into detections, needs only numpy,
scipy and the annotation model. The modules:

    detections          ActivityNet result JSON <-> DetectionSet (columns)
    tiou                the one temporal IoU (evaluator and NMS)
    matching, mean_ap   greedy ActivityNet matching, AP, mAP: ``evaluate``
    proposals, nms      runs / watershed, outer-inner contrast; hard and soft NMS
    postprocess*        CAS -> detections, one pipeline, each method's recipe a preset
    ensemble            merging members' detections (NMS) or averaging their CAS
    diagnostics         the whole-video baseline, why a run gave no detection
    plots               PNG timelines, PR curves, mAP by threshold (matplotlib, lazily)

``from talkit.wtal_heads.evaluation import evaluate`` keeps working: the mAP API is
re-exported here.
"""

from talkit.wtal_heads.evaluation.mean_ap import (
    THRESHOLD_PRESETS,
    THUMOS14_BAD_VIDEOS,
    TIE_RULE,
    EvalResult,
    GroundTruthTable,
    ThresholdPreset,
    average_precision,
    evaluate,
    interpolated_ap,
    match_predictions,
    segment_tiou,
    threshold_preset,
)

__all__ = [
    "THRESHOLD_PRESETS",
    "THUMOS14_BAD_VIDEOS",
    "TIE_RULE",
    "EvalResult",
    "GroundTruthTable",
    "ThresholdPreset",
    "average_precision",
    "evaluate",
    "interpolated_ap",
    "match_predictions",
    "segment_tiou",
    "threshold_preset",
]
