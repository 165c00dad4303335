"""What a run's numbers mean: the whole-video baseline, and why a run gave no detection."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from talkit.wtal_heads.evaluation.detections import DetectionSet
from talkit.wtal_heads.evaluation.postprocess import VideoCAS
from talkit.wtal_heads.evaluation.postprocess_config import PostprocessConfig


def whole_video_baseline(
    videos: Sequence[VideoCAS], classes: Sequence[str], *, class_threshold: float = 0.25
) -> DetectionSet:
    """One detection per predicted class spanning the whole video, scored by the class score.

    Classes are those at or above ``class_threshold``, or the top one if none is. A model
    that does not clearly beat this has not learned to localize, whatever its mAP.
    """
    records = []
    for v in videos:
        picked = np.flatnonzero(v.class_scores >= class_threshold)
        if len(picked) == 0:
            picked = np.array([int(np.argmax(v.class_scores))])
        start, end = float(v.times[0, 0]), float(v.times[-1, 1])
        records.extend(
            {
                "video": v.video_id,
                "label": classes[c],
                "segment": [start, end],
                "score": float(v.class_scores[c]),
            }
            for c in picked
        )
    return DetectionSet.from_records(records, source="whole-video baseline")


def no_detection_reason(videos: Sequence[VideoCAS], preset: PostprocessConfig) -> str:
    """Why post-processing gave no detection at all, in terms a user can act on."""
    best = max((float(np.max(v.class_scores)) for v in videos if v.class_scores.size), default=0.0)
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
