"""Readers and writers for every annotation format, one module per format.

- :mod:`~talkit.datasets.formats.activitynet`: ActivityNet 1.2/1.3, HACS, THUMOS14 gt.json
- :mod:`~talkit.datasets.formats.thumos_text`: THUMOS14 per-class text files, Ambiguous list
- :mod:`~talkit.datasets.formats.wtalc`: the W-TALC ``.npy`` set
- :mod:`~talkit.datasets.formats.safe_npy`: the restricted unpickler for W-TALC object arrays
- :mod:`~talkit.datasets.formats.assemble`: problem checks shared by every reader
- :mod:`~talkit.datasets.formats.detect`: format detection and :func:`load_annotations`
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from talkit.datasets.formats.activitynet import write_activitynet_json
    from talkit.datasets.formats.detect import detect_format, load_annotations
    from talkit.datasets.formats.safe_npy import UnsafePickleError, load_wtalc_npy
    from talkit.datasets.formats.thumos_text import load_ambiguous
    from talkit.datasets.formats.wtalc import write_wtalc

# The names `--format` accepts. Defined here, not in detect, so that the CLI can list them
# in its help without importing the readers (NumPy, pydantic).
FORMATS = ("activitynet", "thumos_txt", "wtalc", "ambiguous")

# Lazy, for the same reason: the readers load on first use.
_EXPORTS = {
    "write_activitynet_json": "talkit.datasets.formats.activitynet",
    "detect_format": "talkit.datasets.formats.detect",
    "load_annotations": "talkit.datasets.formats.detect",
    "UnsafePickleError": "talkit.datasets.formats.safe_npy",
    "load_wtalc_npy": "talkit.datasets.formats.safe_npy",
    "load_ambiguous": "talkit.datasets.formats.thumos_text",
    "write_wtalc": "talkit.datasets.formats.wtalc",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'talkit.datasets.formats' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = [
    "FORMATS",
    "UnsafePickleError",
    "detect_format",
    "load_ambiguous",
    "load_annotations",
    "load_wtalc_npy",
    "write_activitynet_json",
    "write_wtalc",
]
