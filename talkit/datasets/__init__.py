"""Annotation formats parsed into one model, class lists and splits, synthetic data."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# Lazy: the readers bring NumPy and pydantic, which `talkit --help` and the store
# commands (which import talkit.datasets.cli to register it) do not need.
_EXPORTS = {
    "Dataset": "talkit.datasets.model",
    "Problem": "talkit.datasets.model",
    "Segment": "talkit.datasets.model",
    "Video": "talkit.datasets.model",
    "UnsafePickleError": "talkit.datasets.formats",
    "detect_format": "talkit.datasets.formats",
    "load_ambiguous": "talkit.datasets.formats",
    "load_annotations": "talkit.datasets.formats",
    "load_wtalc_npy": "talkit.datasets.formats",
    "write_activitynet_json": "talkit.datasets.formats",
    "write_wtalc": "talkit.datasets.formats",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'talkit.datasets' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


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
