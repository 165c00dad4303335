"""Moved to :mod:`talkit.wtal_heads.evaluation.detections`; this name keeps old imports working."""

from talkit.wtal_heads.evaluation.detections import (
    DetectionFormatError,
    DetectionSet,
    read_detections,
    write_detections,
)

__all__ = ["DetectionFormatError", "DetectionSet", "read_detections", "write_detections"]
