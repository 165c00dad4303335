"""talkit: snippet features for temporal action localization.

Extraction into versioned zarr stores, every annotation format, and WS-TAL
training and evaluation on those stores. See README.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from talkit.extractors.extract import VideoFeatures, extract_video

    __version__: str

__all__ = ["VideoFeatures", "__version__", "extract_video"]


def _installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("talkit")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0+unknown"


def __getattr__(name: str) -> Any:
    # Lazy, so that `import talkit` (and the CLI's start-up) imports neither torch nor
    # importlib.metadata (~20 ms) until a name is used.
    if name == "__version__":
        value = globals()["__version__"] = _installed_version()
        return value
    if name in ("extract_video", "VideoFeatures"):
        from talkit.extractors import extract

        return getattr(extract, name)
    raise AttributeError(f"module 'talkit' has no attribute {name!r}")
