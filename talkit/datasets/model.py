"""The one annotation model every format is parsed into and written from.

Dataset -> videos -> (id, subset, duration, fps, annotations), plus the class list and
the problems found while reading. Times are seconds, as floats.
"""

from __future__ import annotations

from collections import Counter
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

CanonicalSplit = Literal["train", "val", "test", "unknown"]
EvalPreset = Literal["thumos14", "activitynet", "hacs"]
EVAL_PRESETS: tuple[str, ...] = ("thumos14", "activitynet", "hacs")

# How subset names as written in the files map to the canonical train/val/test roles.
# THUMOS14 trains on its *validation* videos and tests on its test videos; ActivityNet
# and HACS train on "training" and report on "validation" (their "testing" has no labels).
SUBSET_CANONICAL: dict[str, CanonicalSplit] = {
    "train": "train",
    "training": "train",
    "validation": "train",  # THUMOS14 / W-TALC naming: the validation videos train
    "val": "train",
    "test": "test",
    "testing": "test",
}
# THUMOS14 in any of its layouts (gt.json "train"/"test", W-TALC "validation"/"test",
# per-class files "val"/"test"): the validation videos train, the test videos test.
THUMOS14_SUBSET_CANONICAL: dict[str, CanonicalSplit] = {
    "train": "train",
    "validation": "train",
    "val": "train",
    "test": "test",
}
ACTIVITYNET_SUBSET_CANONICAL: dict[str, CanonicalSplit] = {
    "training": "train",
    "train": "train",
    "validation": "val",
    "val": "val",
    "testing": "test",
    "test": "test",
}


class Segment(BaseModel):
    """One action instance: a label and its [start_s, end_s] interval in seconds."""

    model_config = ConfigDict(frozen=True)

    label: str
    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


class Video(BaseModel):
    """One video and its ground truth. ``subset`` is kept exactly as the file wrote it."""

    id: str
    subset: str
    duration_s: float | None = None
    fps: float | None = None
    annotations: list[Segment] = Field(default_factory=list)
    url: str | None = None
    # THUMOS14 "Ambiguous" intervals (start_s, end_s): neither action nor background;
    # evaluators may ignore detections inside them. Never counted as annotations.
    ambiguous: list[tuple[float, float]] = Field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        """Distinct labels of this video, in first-seen order."""
        return list(dict.fromkeys(seg.label for seg in self.annotations))


class Problem(BaseModel):
    """A defect found in a real file: reported, not crashed on (unless strict)."""

    kind: Literal[
        "start_not_before_end",
        "negative_time",
        "segment_beyond_duration",
        "unknown_label",
        "duplicate_video",
        "malformed_segment",
        "other",
    ]
    video_id: str | None = None
    message: str


class Dataset(BaseModel):
    """A parsed annotation set.

    ``classes`` is the class list in its documented order (the format's own order where
    it has one, e.g. W-TALC classlist.npy; otherwise sorted by name). Label indices used
    anywhere in talkit are positions in this list.
    """

    name: str = "dataset"
    source_format: str = "unknown"
    classes: list[str]
    videos: dict[str, Video]
    problems: list[Problem] = Field(default_factory=list)
    subset_canonical: dict[str, CanonicalSplit] = Field(
        default_factory=lambda: dict(SUBSET_CANONICAL)
    )
    # How results on this dataset are scored by convention: the tIoU threshold preset
    # (thumos14, activitynet, hacs) its papers report, when the file or its layout says
    # so. ``talkit eval --preset auto`` reads it.
    eval_preset: EvalPreset | None = None

    def class_index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.classes)}

    def canonical_split(self, subset: str) -> CanonicalSplit:
        return self.subset_canonical.get(subset, "unknown")

    def subset(self, *subsets: str) -> Dataset:
        """The videos whose written subset or canonical split is one of ``subsets``."""
        wanted = set(subsets)
        keep = {
            vid: v
            for vid, v in self.videos.items()
            if v.subset in wanted or self.canonical_split(v.subset) in wanted
        }
        return self.model_copy(update={"videos": keep})

    @property
    def num_instances(self) -> int:
        return sum(len(v.annotations) for v in self.videos.values())

    def subset_counts(self) -> dict[str, dict[str, int]]:
        """Subset (as written) -> {videos, instances}."""
        videos: Counter[str] = Counter()
        instances: Counter[str] = Counter()
        for v in self.videos.values():
            videos[v.subset] += 1
            instances[v.subset] += len(v.annotations)
        return {s: {"videos": videos[s], "instances": instances[s]} for s in sorted(videos)}
