"""Annotation formats parsed into one model, class lists and splits, synthetic data."""

from talkit.datasets.model import Dataset, Problem, Segment, Video

__all__ = ["Dataset", "Problem", "Segment", "Video"]
