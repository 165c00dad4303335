"""Frames to flow input and flow to network input: greyscale, clipping, the 8-bit path.

The I3D convention (Carreira & Zisserman; public WS-TAL features): greyscale frames, flow
clipped to [-20, 20] and rescaled to [-1, 1], two channels (dx, dy). Many public
features stored flow as 8-bit JPEG first: ``p = round(255 * (f + 20) / 40)`` then
``(p / 255) * 2 - 1``; ``quantize_8bit`` reproduces that bit for bit (round half to
even, the rule of numpy and Python).
"""

from __future__ import annotations

import cv2
import numpy as np

from talkit.errors import InputError
from talkit.extractors.flow.spec import DEFAULT_BOUND


def to_grey(frames: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB -> (N, H, W) uint8 greyscale (OpenCV's BT.601 weights)."""
    frames = np.asarray(frames)
    if frames.ndim == 3:
        return np.ascontiguousarray(frames, dtype=np.uint8)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise InputError(f"expected frames (N, H, W, 3) or (N, H, W); got {frames.shape}")
    return np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames])


def normalise_flow(
    flow: np.ndarray, *, bound: float = DEFAULT_BOUND, quantize_8bit: bool = False
) -> np.ndarray:
    """Raw flow in pixels -> network input in [-1, 1] (float32).

    Clip to [-bound, bound] and divide by bound; or, with ``quantize_8bit``, go through
    the 8-bit JPEG encoding of public features: ``p = round(255 (f + b) / 2b)``, then
    ``(p / 255) * 2 - 1``.
    """
    if quantize_8bit:
        return dequantize_flow(quantize_flow(flow, bound=bound))
    clipped = np.clip(np.asarray(flow, dtype=np.float32), -bound, bound)
    return (clipped / np.float32(bound)).astype(np.float32)


def quantize_flow(flow: np.ndarray, *, bound: float = DEFAULT_BOUND) -> np.ndarray:
    """Flow in pixels -> uint8 ``round(255 * (f + bound) / (2 * bound))`` after clipping."""
    f = np.clip(np.asarray(flow, dtype=np.float64), -bound, bound)
    return np.rint(255.0 * (f + bound) / (2.0 * bound)).astype(np.uint8)


_DEQUANT = ((np.arange(256, dtype=np.float64) / 255.0) * 2.0 - 1.0).astype(np.float32)


def dequantize_flow(p: np.ndarray) -> np.ndarray:
    """uint8 codes -> float32 ``(p / 255) * 2 - 1`` (computed in float64, then rounded once)."""
    return _DEQUANT[np.asarray(p, dtype=np.uint8)]
