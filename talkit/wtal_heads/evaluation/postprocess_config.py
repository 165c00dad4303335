"""Every knob of CAS post-processing, typed; method presets are values of this model."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class PostprocessConfig(BaseModel):
    """How :func:`~talkit.wtal_heads.evaluation.postprocess.cas_to_detections` turns a CAS into detections.

    Lengths of outer windows and ``min_length`` count samples after upsampling, except
    ``min_length`` which is given in snippets (rows of the original CAS).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = "custom"
    description: str = ""

    # Class selection
    class_rule: Literal["threshold", "relative", "topk", "topk_floor"] = "threshold"
    class_value: float = 0.25
    class_inclusive: bool = True  # score >= value (True) or > value (False)
    class_fallback_argmax: bool = False
    # topk_floor (D2-Net, ActivityNet): scores above max(floor, the (k+1)-th best), with
    # k = class_topk and floor = class_value, raised to class_floor_high when any score
    # exceeds class_floor_high.
    class_topk: int = Field(2, ge=1)
    class_floor_high: float | None = None

    # Signals
    normalize: bool = False  # per-class min-max over time
    # Clamp the min and the max at 0 before scaling, as BaSNet's code does: a CAS that dips
    # below 0 is divided by its max (its negative part stays negative), one that never
    # rises above 0 is left as it is.
    normalize_clamp: bool = False
    upsample: int = Field(1, ge=1)
    # nearest: each row's value holds over its interval. linear: interpolation between row
    # centres. linear_start: row i's value sits at the start of its interval and sample k
    # reads position k / factor, the last slope extended past the last row (BaSNet's code).
    upsample_mode: Literal["nearest", "linear", "linear_start"] = "nearest"
    threshold_mix: tuple[float, float] = (1.0, 0.0)  # threshold signal = a·CAS + b·attention²
    smooth_sigma: float = Field(0.0, ge=0.0)  # Gaussian on the threshold signal, in samples

    # Proposals
    generator: Literal["threshold", "watershed"] = "threshold"
    thresholds: tuple[float, ...] = (0.5,)
    stream_thresholds: dict[str, tuple[float, ...]] = Field(default_factory=dict)
    threshold_inclusive: bool = True  # active where signal >= thr (True) or > thr (False)
    require_positive: bool = True  # a zero (or negative) signal is never active
    watershed_min_dynamic: float = Field(0.1, ge=0.0)  # how far a peak must rise to seed a basin
    min_length: float = Field(0.0, ge=0.0)  # in snippets

    # Scoring: inner mean minus outer contrast (plus a class-score term)
    outer_ratio: float = Field(0.25, ge=0.0)  # outer window = floor(ratio·len) + extra, >= min
    outer_left_ceil: bool = False  # the left window rounds up: ceil(ratio·len) (BaSNet's code)
    outer_extra: int = Field(0, ge=0)
    outer_min: int = Field(0, ge=0)
    outer_mode: Literal["pooled", "mean_of_sides", "sum"] = "pooled"
    outer_weight: float = 1.0
    class_score_weight: float = 0.0
    # The class-score term counts 1 for every selected class, whatever its score: BaSNet's
    # code binarises the class scores before adding them, so the term is a constant.
    class_score_binary: bool = False
    score_on_thresholded: bool = False  # score on the CAS zeroed where it is below threshold
    min_score: float | None = None

    # Suppression
    nms: Literal["hard", "soft", "linear", "none"] = "hard"
    nms_iou: float = Field(0.5, ge=0.0, le=1.0)
    # Added to lengths and intersections in NMS's tIoU: BaSNet's code uses end − start + 1
    # (a pixel-box convention, applied to seconds).
    nms_length_offset: float = Field(0.0, ge=0.0)
    soft_nms_sigma: float = Field(0.5, gt=0.0)
    soft_nms_min_score: float = 1e-3
    relative_keep: float = Field(0.0, ge=0.0)  # after NMS keep scores >= r · best, per class
    max_detections: int | None = Field(None, ge=1)  # per video, best first
    # THUMOS14 (D2-Net): drop detections that overlap (positive intersection) one of the
    # video's Ambiguous intervals, after NMS.
    drop_ambiguous: bool = False

    @model_validator(mode="after")
    def _has_thresholds(self) -> PostprocessConfig:
        if not self.thresholds:
            raise ValueError("at least one threshold is needed")
        return self
