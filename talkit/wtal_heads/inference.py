"""A trained head on a split: CAS per video, detections with its preset, and their mAP.

    videos of a split ─► SnippetDataset (uniform / full) ─► head.infer ─► VideoCAS
      ─► post-processing preset (BaSNet threshold sweep, LGBM-Net watershed, ...) ─► detections
      ─► evaluate

Shared by the training loop (validation) and by prediction; it imports neither.
"""

from __future__ import annotations

from typing import Any

import torch

from talkit.datasets.model import Dataset
from talkit.datasets.store_dataset import FeatureSource, SnippetDataset, collate_items
from talkit.wtal_heads.config import RunConfig
from talkit.wtal_heads.data import PreparedData
from talkit.wtal_heads.evaluation import EvalResult, evaluate, threshold_preset
from talkit.wtal_heads.evaluation.detections import DetectionSet
from talkit.wtal_heads.evaluation.postprocess import VideoCAS, detect_videos, get_preset
from talkit.wtal_heads.evaluation.postprocess_config import PostprocessConfig
from talkit.wtal_heads.head import Inference, WTALHead


def selection_metric(config: RunConfig) -> str:
    """Which average mAP picks the best checkpoint (the threshold preset's first)."""
    if config.eval.select_metric:
        return config.eval.select_metric
    thr = config.eval.thresholds
    if isinstance(thr, str):
        return next(iter(threshold_preset(thr).averages))
    return f"{min(thr):g}:{max(thr):g}"


def _np(t: torch.Tensor | None, i: int) -> Any:
    return None if t is None else t[i].float().cpu().numpy()


def _video_cas(inf: Inference, i: int, vid: str, times: Any, ambiguous: Any) -> VideoCAS:
    """Row ``i`` of a batched head output as one video's :class:`VideoCAS`."""
    return VideoCAS(
        video_id=vid,
        class_scores=_np(inf.class_scores, i),
        cas=_np(inf.cas, i),
        times=times,
        attention=_np(inf.attention, i),
        threshold_cas=_np(inf.threshold_cas, i),
        ambiguous=ambiguous,
    )


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
) -> list[VideoCAS]:
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
    outputs: list[VideoCAS] = []
    for start in range(0, len(ds), bs):
        batch = collate_items([ds[i] for i in range(start, min(start + bs, len(ds)))])
        x = batch["features"].to(device)
        inf = model.infer(x, None)
        for i, vid in enumerate(batch["video_ids"]):
            ambiguous = annotations.videos[vid].ambiguous if vid in annotations.videos else ()
            video = _video_cas(inf, i, vid, batch["times"][i], ambiguous)
            if inf.streams:
                video.streams = {
                    name: _video_cas(s, i, vid, batch["times"][i], ambiguous)
                    for name, s in inf.streams.items()
                }
            outputs.append(video)
    return outputs


def postprocess_preset(config: RunConfig, head: WTALHead | None = None) -> PostprocessConfig:
    """The post-processing recipe a run uses: the config's, else the head's own."""
    name = config.eval.postprocess or (head.postprocess if head is not None else "basnet")
    return get_preset(name, **config.eval.postprocess_params)


def detect(
    outputs: list[VideoCAS], classes: list[str], config: RunConfig, head: WTALHead | None = None
) -> DetectionSet:
    """Detections from CAS with the method's post-processing preset."""
    return detect_videos(outputs, classes, postprocess_preset(config, head))


def score(config: RunConfig, gt: Dataset, detections: DetectionSet) -> EvalResult:
    """mAP of detections with the run's thresholds and excluded videos."""
    return evaluate(
        gt, detections, thresholds=config.eval.thresholds, exclude_videos=config.eval.exclude_videos
    )


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
