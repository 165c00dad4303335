"""Annotation formats parsed into one model, class lists and splits, synthetic data."""

from talkit.datasets.formats import (
    UnsafePickleError,
    detect_format,
    load_ambiguous,
    load_annotations,
    load_wtalc_npy,
    write_activitynet_json,
    write_wtalc,
)
from talkit.datasets.model import Dataset, Problem, Segment, Video

__all__ = [
    "Dataset",
    "Problem",
    "Segment",
    "UnsafePickleError",
    "Video",
    "detect_format",
    "load_ambiguous",
    "load_annotations",
    "load_wtalc_npy",
    "write_activitynet_json",
    "write_wtalc",
]
