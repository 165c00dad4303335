"""From a backbone's spec to the feature set's spec the store records.

One spec drives sampling, transforms and the store record, so what a store says about
its features is exactly what made them: backbone, fps, clip length, stride, resize and
crop, normalisation, flow method with every parameter, and where each stream's weights
came from (``sha256`` of the checkpoint file, or ``random:<seed>``). Random weights are
also flagged in ``params["random_weights"]``, so nobody mistakes them for real features.
"""

from __future__ import annotations

from typing import Any

from talkit.store import FeatureSetSpec


def _weights(provenance: str) -> str | None:
    if provenance.startswith("sha256:"):
        return provenance.removeprefix("sha256:")
    if provenance == "unset":
        return None
    return provenance  # "random:<seed>"


def feature_set_spec(backbone_spec: Any, *, tail: str = "drop") -> FeatureSetSpec:
    """The FeatureSetSpec of features made by a backbone with ``backbone_spec``."""
    b = backbone_spec
    params: dict[str, Any] = {
        "input_size": b.input_size,
        "resize_short": b.resize_short,
        "crop": b.crop,
        "normalisation": b.normalisation.model_dump(mode="json"),
        "input_channels": dict(b.input_channels),
        "feature": b.feature,
        "tail": tail,
        "random_weights": bool(b.is_random),
    }
    if b.flow is not None:
        params["flow"] = b.flow.model_dump(mode="json")
    if b.is_random:
        params["warning"] = "random weights: for tests and demos, not real features"
    return FeatureSetSpec(
        backbone=b.name,
        streams=dict(b.streams),
        dtype=b.dtype if b.dtype in ("float32", "float16") else "float32",
        fps=float(b.fps),
        clip_len=b.clip_len,
        stride=b.stride,
        params=params,
        checkpoints={s: _weights(w) for s, w in b.weights.items()},
    )
