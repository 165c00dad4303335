"""Readers and writers for every annotation format, one module per format.

- :mod:`~talkit.datasets.formats.activitynet`: ActivityNet 1.2/1.3, HACS, THUMOS14 gt.json
- :mod:`~talkit.datasets.formats.thumos_text`: THUMOS14 per-class text files, Ambiguous list
- :mod:`~talkit.datasets.formats.wtalc`: the W-TALC ``.npy`` set
- :mod:`~talkit.datasets.formats.safe_npy`: the restricted unpickler for W-TALC object arrays
- :mod:`~talkit.datasets.formats.assemble`: problem checks shared by every reader
- :mod:`~talkit.datasets.formats.detect`: format detection and :func:`load_annotations`
"""

from talkit.datasets.formats.activitynet import write_activitynet_json
from talkit.datasets.formats.detect import FORMATS, detect_format, load_annotations
from talkit.datasets.formats.safe_npy import UnsafePickleError, load_wtalc_npy
from talkit.datasets.formats.thumos_text import load_ambiguous
from talkit.datasets.formats.wtalc import write_wtalc

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
