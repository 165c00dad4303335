"""talkit: snippet features for temporal action localization.

Extraction into versioned zarr stores, every annotation format, and WS-TAL
training and evaluation on those stores. See README.md.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("talkit")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["VideoFeatures", "__version__", "extract_video"]


def __getattr__(name: str) -> Any:
    # Lazy, so that `import talkit` (and the CLI's start-up) does not import torch.
    if name in ("extract_video", "VideoFeatures"):
        from talkit.extractors import extract

        return getattr(extract, name)
    raise AttributeError(f"module 'talkit' has no attribute {name!r}")
