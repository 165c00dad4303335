"""Each method's published inference recipe as a named :class:`PostprocessConfig`.

Constants and steps come from the authors' code as summarised in
shared/reference/methods.md and read in Pilhyeon/BaSNet-pytorch (test.py, utils.py,
config.py):

- ``basnet``, step by step as BaSNet's ``test.py``:

  1. classes whose suppressed-branch softmax score is >= 0.25;
  2. the CAS min-max normalised over time with the min and the max clamped at 0
     (``utils.minmax_norm``);
  3. ×24 by linear interpolation at positions k/24, extrapolated past the last snippet
     (``utils.upgrade_resolution``);
  4. at each threshold of ``np.arange(0, 0.25, 0.025)``, samples ``>= t`` and ``> 0`` are
     active, the rest of the CAS is zeroed, and each run of active samples is a proposal;
  5. score = mean inside − mean of the outer samples (left window ceil(len/4), right
     floor(len/4), clipped at the ends), on the zeroed CAS, + 0.2 (the class score is
     binarised before it is added, so every selected class adds 0.2);
  6. per class, NMS at tIoU 0.7 with lengths counted as ``end − start + 1`` seconds.

  Deliberate departures (docs/evaluation.md measures them): a video whose only selected
  class has index 0 still gets proposals (``pred.any()`` in the reference skips it); a
  selected class without any active sample gets none (the reference code raises
  IndexError); equal scores enter NMS in input order.
- ``lgbm``: ``basnet`` with the watershed on the suppressed-branch CAS in place of the
  connected runs (the report's one change at inference). Not in the report, so talkit's
  choices: the sweep values become the watershed's flooding levels, and a peak must rise
  0.1 above its saddle (prominence) to seed its own basin.
- ``dgam``: classes with p > 0.1, else the arg-max; ×20 (linear, read at k/20 and
  extrapolated: utils.upgrade_resolution); threshold
  0.8·wtCAS + 0.2·λ² > 0.03 (RGB) / 0.08 (flow) via ``stream=``; score =
  inner − 0.3·(left + right) with len//4 + 1 windows on the fused CAS; merge the streams
  with :func:`~talkit.wtal_heads.evaluation.postprocess.merge_detections` (NMS 0.5).
- ``dgam_activitynet``: DGAM with a Gaussian (σ = 25 samples) before a 0.01 threshold.
- ``d2net``, step by step as D2-Net's ``detectionMAP.getDetections`` (THUMOS14), on the
  CAS the head already multiplied by its bottom-up attention, with the head's video
  scores (mean of the top ⌊T/8⌋ of that CAS):

  1. classes scoring > max/2 and > 0;
  2. at each threshold k/40, k = 1 … 19, the runs of samples > threshold of at least 2
     snippets (no upsampling);
  3. score = inner mean − outer, the outer term the mean of the non-empty side means over
     max(1, ⌊len/4⌋) snippets each side (inner alone when both sides are empty); kept if
     (outer − inner + 1)/2 <= 0.7, i.e. score >= −0.4;
  4. per class, NMS at tIoU 0.3 (a proposal is dropped at tIoU >= 0.3), then drop scores
     under 0.1 × the best (all of them when the best is negative, as in the reference);
  5. drop detections that overlap one of the video's Ambiguous intervals.

  Deliberate departures: tIoU and the ambiguous overlap are computed on seconds (the
  reference counts snippet indices, rounding the Ambiguous times to 16-frame snippets at
  25 fps); equal scores enter NMS in input order.
- ``d2net_activitynet``: the same with ActivityNet's class rule: at most the two best
  classes, each above max(floor, the third-best score) where floor is 1 if any score
  exceeds 1, else 0.5 (the head's video score is the top ⌊T/4⌋ mean of a CAS whose
  attention is rescaled to 2·b/max b); no Ambiguous intervals. The reference's attempt
  to zero the other classes' CAS writes into a copy and changes nothing; the class rule
  already keeps at most two, so talkit does not zero them either.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from talkit.errors import ConfigError
from talkit.wtal_heads.evaluation.postprocess_config import PostprocessConfig

# The values np.arange(0.0, 0.25, 0.025) gives (0.07500000000000001, ...), as BaSNet's
# config.py builds them, so a sample equal to a rounded threshold is classed alike.
_BASNET_THRESHOLDS = tuple(0.025 * k for k in range(10))

PRESETS: dict[str, PostprocessConfig] = {
    "basnet": PostprocessConfig(
        name="basnet",
        description="BaSNet (Lee et al., AAAI 2020) inference recipe",
        class_rule="threshold",
        class_value=0.25,
        class_inclusive=True,
        normalize=True,
        normalize_clamp=True,
        upsample=24,
        upsample_mode="linear_start",
        thresholds=_BASNET_THRESHOLDS,
        threshold_inclusive=True,
        require_positive=True,
        outer_ratio=0.25,
        outer_left_ceil=True,
        outer_mode="pooled",
        class_score_weight=0.2,
        class_score_binary=True,
        score_on_thresholded=True,
        nms="hard",
        nms_iou=0.7,
        nms_length_offset=1.0,
    ),
    "dgam": PostprocessConfig(
        name="dgam",
        description="DGAM (Shi et al., CVPR 2020) THUMOS14 inference recipe",
        class_rule="threshold",
        class_value=0.1,
        class_inclusive=False,
        class_fallback_argmax=True,
        upsample=20,
        # utils.upgrade_resolution: interp1d at k/20, extrapolated past the last snippet
        upsample_mode="linear_start",
        threshold_mix=(0.8, 0.2),
        thresholds=(0.03,),
        stream_thresholds={"rgb": (0.03,), "flow": (0.08,)},
        threshold_inclusive=False,
        outer_ratio=0.25,
        outer_extra=1,
        outer_mode="sum",
        outer_weight=0.3,
        nms="hard",
        nms_iou=0.5,
    ),
    "d2net": PostprocessConfig(
        name="d2net",
        description="D2-Net (Narayan et al., ICCV 2021) THUMOS14 inference recipe",
        class_rule="relative",
        class_value=0.5,
        class_inclusive=False,
        thresholds=tuple(k / 40 for k in range(1, 20)),
        threshold_inclusive=False,
        min_length=2,
        outer_ratio=0.25,
        outer_min=1,
        outer_mode="mean_of_sides",
        min_score=-0.4,
        nms="hard",
        nms_iou=0.3,
        relative_keep=0.1,
        drop_ambiguous=True,
    ),
}
PRESETS["d2net_activitynet"] = PRESETS["d2net"].model_copy(
    update={
        "name": "d2net_activitynet",
        "description": "D2-Net ActivityNet 1.2 recipe: at most two classes above a floor",
        "class_rule": "topk_floor",
        "class_value": 0.5,
        "class_topk": 2,
        "class_floor_high": 1.0,
        "drop_ambiguous": False,
    }
)
PRESETS["lgbm"] = PRESETS["basnet"].model_copy(
    update={
        "name": "lgbm",
        "description": "LGBM-Net (Wang et al., HACS 2021 report): BaSNet recipe with the watershed",
        "generator": "watershed",
        # talkit's choice (the report gives none): how far a peak must rise above its
        # saddle to seed its own basin.
        "watershed_min_dynamic": 0.1,
    }
)
PRESETS["dgam_activitynet"] = PRESETS["dgam"].model_copy(
    update={
        "name": "dgam_activitynet",
        "description": "DGAM ActivityNet 1.2 recipe: Gaussian σ=25 then threshold 0.01",
        "smooth_sigma": 25.0,
        "thresholds": (0.01,),
        "stream_thresholds": {"rgb": (0.01,), "flow": (0.01,)},
    }
)


def get_preset(name: str, **overrides: Any) -> PostprocessConfig:
    """The named recipe (``basnet``, ``lgbm``, ``dgam``, ``dgam_activitynet``, ``d2net``,
    ``d2net_activitynet``),
    with any field replaced by ``overrides`` (validated)."""
    try:
        base = PRESETS[name.lower()]
    except KeyError:
        raise ConfigError(
            f"unknown post-processing preset {name!r}",
            hint=f"use one of {', '.join(sorted(PRESETS))}",
        ) from None
    if not overrides:
        return base
    try:
        return PostprocessConfig.model_validate({**base.model_dump(), **overrides})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise ConfigError(
            f"post-processing preset {name!r}: bad override {where}: {first['msg']}",
            hint=f"fields: {', '.join(PostprocessConfig.model_fields)}",
        ) from None
