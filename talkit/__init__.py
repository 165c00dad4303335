"""talkit: snippet features for temporal action localization.

Extraction into versioned zarr stores, every annotation format, and WS-TAL
training and evaluation on those stores. See README.md.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("talkit")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
