"""Moved to :mod:`talkit.wtal_heads.evaluation.postprocess`; this name keeps old imports working."""

from talkit.wtal_heads.evaluation.postprocess import (
    PRESETS,
    PostprocessConfig,
    VideoCAS,
    cas_to_detections,
    cell_edges,
    detect_videos,
    get_preset,
    merge_detections,
    minmax_normalize,
    select_classes,
    topk_mean,
    upsample,
)

__all__ = [
    "PRESETS",
    "PostprocessConfig",
    "VideoCAS",
    "cas_to_detections",
    "cell_edges",
    "detect_videos",
    "get_preset",
    "merge_detections",
    "minmax_normalize",
    "select_classes",
    "topk_mean",
    "upsample",
]
