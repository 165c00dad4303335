"""Greyscale frame pairs with known optical flow, for measuring flow methods.

Three kinds, each ``(frame0, frame1, flow)`` with uint8 frames (H, W) and the true flow
(H, W, 2) in pixels from frame0 to frame1 (``frame1[y + v, x + u] ~ frame0[y, x]``):

- :func:`translation_pair`: a smooth random texture moved by a sub-pixel (dx, dy);
- :func:`rotation_pair`: the texture rotated about the frame centre;
- :func:`action_pair`: two consecutive 25 fps frames of a synthetic action video
  (:class:`~talkit.datasets.synthetic.render.SceneRenderer`): a coloured shape moving over
  a textured wall. The object's displacement comes from its pixels in both frames, the
  wall's from the best integer shift between them (it drifts by whole pixels); pixels
  the object uncovers keep the wall's motion, so no method scores zero there.

:func:`endpoint_error` is the usual mean EPE, with a margin left out at the borders.
"""

from __future__ import annotations

import cv2
import numpy as np

from talkit.datasets.synthetic.render import SceneRenderer, class_looks, default_class_names
from talkit.datasets.synthetic.timeline import Instance

Pair = tuple[np.ndarray, np.ndarray, np.ndarray]


def _texture(size: int, seed: int, sigma: float = 2.0) -> np.ndarray:
    noise = np.random.default_rng(seed).random((size, size)).astype(np.float32)
    tex = cv2.GaussianBlur(noise, (0, 0), sigma)
    return (tex - tex.min()) / (tex.max() - tex.min()) * 255.0


def translation_pair(dx: float, dy: float, *, size: int = 64, seed: int = 0) -> Pair:
    """A texture and the same texture moved by (dx, dy) pixels (bilinear resampling)."""
    big = _texture(size + 32, seed)
    m0 = np.float32([[1, 0, -16], [0, 1, -16]])
    m1 = np.float32([[1, 0, -16 + dx], [0, 1, -16 + dy]])
    f0 = cv2.warpAffine(big, m0, (size, size), flags=cv2.INTER_LINEAR)
    f1 = cv2.warpAffine(big, m1, (size, size), flags=cv2.INTER_LINEAR)
    flow = np.empty((size, size, 2), np.float32)
    flow[..., 0], flow[..., 1] = dx, dy
    return np.rint(f0).astype(np.uint8), np.rint(f1).astype(np.uint8), flow


def rotation_pair(degrees: float, *, size: int = 64, seed: int = 1) -> Pair:
    """A texture and the same texture rotated by ``degrees`` about the frame centre."""
    margin = 16
    big = _texture(size + 2 * margin, seed)
    centre = (size + 2 * margin - 1) / 2
    m = cv2.getRotationMatrix2D((centre, centre), degrees, 1.0)
    rotated = cv2.warpAffine(big, m, big.shape[::-1], flags=cv2.INTER_LINEAR)
    f0 = big[margin : margin + size, margin : margin + size]
    f1 = rotated[margin : margin + size, margin : margin + size]
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64) + margin
    to_x = m[0, 0] * xs + m[0, 1] * ys + m[0, 2]
    to_y = m[1, 0] * xs + m[1, 1] * ys + m[1, 2]
    flow = np.stack([to_x - xs, to_y - ys], -1).astype(np.float32)
    return np.rint(f0).astype(np.uint8), np.rint(f1).astype(np.uint8), flow


def action_pair(*, size: int = 64, seed: int = 0, time_s: float = 1.0, class_idx: int = 0) -> Pair:
    """Frames at ``time_s`` and ``time_s + 0.04`` of a synthetic action, and their flow."""
    looks = class_looks(default_class_names(6))
    instance = Instance(
        class_idx=class_idx % len(looks),
        start_s=0.0,
        end_s=time_s + 10.0,
        context_before_s=0.0,
        context_after_s=0.0,
        phase=0.0,
    )
    renderer = SceneRenderer(
        width=size, height=size, looks=looks, instances=[instance], rng=np.random.default_rng(seed)
    )
    rgb0, rgb1 = renderer.frame(time_s), renderer.frame(time_s + 0.04)
    # The object is the only saturated thing in the picture (see render.py).
    obj0, obj1 = (cv2.cvtColor(x, cv2.COLOR_RGB2HSV)[..., 1] > 128 for x in (rgb0, rgb1))
    if not obj0.any() or not obj1.any():
        raise ValueError(f"no object visible at {time_s} s; choose another time")
    oy, ox = np.rint(np.argwhere(obj1).mean(0) - np.argwhere(obj0).mean(0))
    g0, g1 = (cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) for x in (rgb0, rgb1))
    wall = ~(obj0 | obj1)[4:-4, 4:-4]
    best = (np.inf, 0, 0)
    for sy in range(-2, 3):
        for sx in range(-2, 3):
            moved = np.roll(g1.astype(np.float64), (-sy, -sx), (0, 1))
            err = float(np.abs(moved - g0)[4:-4, 4:-4][wall].mean())
            best = min(best, (err, sx, sy))
    flow = np.empty((size, size, 2), np.float32)
    flow[..., 0], flow[..., 1] = best[1], best[2]
    flow[obj0] = (ox, oy)
    return g0, g1, flow


def endpoint_error(flow: np.ndarray, truth: np.ndarray, *, margin: int = 4) -> float:
    """Mean Euclidean distance between two flows (H, W, 2), ``margin`` pixels left out."""
    d = (np.asarray(flow, np.float64) - truth)[margin : -margin or None, margin : -margin or None]
    return float(np.sqrt((d**2).sum(-1)).mean())
