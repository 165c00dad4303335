"""What each synthetic action looks like, and the frames of one synthetic video.

Every class has a *look*: a saturated colour, a shape and a motion path. During an
instance the object travels along its path (about one cycle per second), so a single
frame shows only a coloured shape while the action is the motion across frames. Context
shows the class's scene (a tinted floor and the same object) standing still; background
is a grey, textured, slowly drifting and slowly brightening wall. The background is
never saturated, so a colour threshold finds the object and its centroid track tells
action (moving) from context (still) from background (absent).

All drawing is numpy slicing on uint8 arrays: one background crop, one floor blend and
one sprite paste per frame.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import cv2
import numpy as np

from talkit.datasets.synthetic.timeline import Instance

SHAPES = ("disk", "square", "triangle", "diamond", "ring", "cross")
MOTIONS = ("swing", "bounce", "orbit", "diagonal", "eight", "box")
OBJECT_SATURATION = 0.95
OBJECT_VALUE = 0.92
FLOOR_FRACTION = 0.15  # bottom share of the frame that carries the class's scene tint
OBJECT_RADIUS_FRACTION = 0.16  # of min(width, height)
MOTION_PERIOD_S = 1.0


@dataclass(frozen=True)
class ClassLook:
    """The visual signature of one class."""

    name: str
    hue: float  # 0..1
    shape: str
    motion: str

    @property
    def rgb(self) -> tuple[int, int, int]:
        r, g, b = colorsys.hsv_to_rgb(self.hue, OBJECT_SATURATION, OBJECT_VALUE)
        return round(r * 255), round(g * 255), round(b * 255)

    @property
    def floor_rgb(self) -> tuple[int, int, int]:
        r, g, b = colorsys.hsv_to_rgb(self.hue, 0.5, 0.6)
        return round(r * 255), round(g * 255), round(b * 255)

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "hue": round(self.hue, 4),
            "rgb": list(self.rgb),
            "shape": self.shape,
            "motion": self.motion,
            "motion_period_s": MOTION_PERIOD_S,
        }


def class_looks(names: list[str]) -> list[ClassLook]:
    """Give each class a distinct hue, and a (shape, motion) pair distinct for up to 36."""
    n = len(names)
    looks = []
    for k, name in enumerate(names):
        shape = SHAPES[k % len(SHAPES)]
        motion = MOTIONS[(k % len(SHAPES) + k // len(SHAPES)) % len(MOTIONS)]
        looks.append(ClassLook(name=name, hue=(k / n + 0.02) % 1.0, shape=shape, motion=motion))
    return looks


def default_class_names(n: int) -> list[str]:
    """Names that say what the class looks like, e.g. ``DiskSwing``; unique for any n."""
    names = []
    for k in range(n):
        shape = SHAPES[k % len(SHAPES)]
        motion = MOTIONS[(k % len(SHAPES) + k // len(SHAPES)) % len(MOTIONS)]
        base = f"{shape.title()}{motion.title()}"
        names.append(base if k < len(SHAPES) * len(MOTIONS) else f"{base}{k:03d}")
    return names


def shape_mask(shape: str, radius: int) -> np.ndarray:
    """Boolean sprite of side 2*radius+1 for ``shape``."""
    r = float(radius)
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1].astype(np.float32)
    if shape == "disk":
        return xx**2 + yy**2 <= r * r
    if shape == "square":
        return (np.abs(xx) <= 0.8 * r) & (np.abs(yy) <= 0.8 * r)
    if shape == "triangle":
        return (yy <= 0.8 * r) & (yy >= -r) & (np.abs(xx) <= (yy + r) * 0.55)
    if shape == "diamond":
        return np.abs(xx) + np.abs(yy) <= r
    if shape == "ring":
        d2 = xx**2 + yy**2
        return (d2 <= r * r) & (d2 >= (0.5 * r) ** 2)
    if shape == "cross":
        return ((np.abs(xx) <= 0.35 * r) & (np.abs(yy) <= r)) | (
            (np.abs(yy) <= 0.35 * r) & (np.abs(xx) <= r)
        )
    raise ValueError(f"unknown shape {shape!r}")


def _tri(u: float) -> float:
    """Triangle wave in [-1, 1] with period 1: constant speed, so the object never rests."""
    f = u % 1.0
    return 4 * f - 1 if f < 0.5 else 3 - 4 * f


def motion_offset(motion: str, u: float) -> tuple[float, float]:
    """Normalised (x, y) in [-1, 1] of the object at motion phase ``u`` (cycles)."""
    two_pi = 2 * np.pi
    if motion == "swing":
        return _tri(u), 0.0
    if motion == "bounce":
        return 0.0, _tri(u)
    if motion == "orbit":
        return float(np.cos(two_pi * u)), float(np.sin(two_pi * u))
    if motion == "diagonal":
        return _tri(u), -_tri(u)
    if motion == "eight":
        return float(np.sin(two_pi * u)), float(np.sin(2 * two_pi * u))
    if motion == "box":
        f = (u % 1.0) * 4
        side, p = int(f), 2 * (f - int(f)) - 1
        return ((p, -1.0), (1.0, p), (-p, 1.0), (-1.0, -p))[side]
    raise ValueError(f"unknown motion {motion!r}")


def object_radius(width: int, height: int) -> int:
    return max(3, round(OBJECT_RADIUS_FRACTION * min(width, height)))


class SceneRenderer:
    """Draws the frames of one video from its timeline; the frame at time t is a pure
    function of (seed, t), so variable frame rates and re-runs give the same picture."""

    def __init__(
        self,
        *,
        width: int,
        height: int,
        looks: list[ClassLook],
        instances: list[Instance],
        rng: np.random.Generator,
    ) -> None:
        self.w, self.h = width, height
        self.looks = looks
        self.instances = instances
        self.radius = object_radius(width, height)
        self.floor_y = height - max(2, round(FLOOR_FRACTION * height))
        self.sprites = {lk.shape: shape_mask(lk.shape, self.radius) for lk in looks}
        self.pad = max(8, width // 6)
        self._texture = self._make_texture(rng)
        self._drift_period_s = float(rng.uniform(20.0, 40.0))
        self._light_period_s = float(rng.uniform(6.0, 12.0))
        self._light_phase = float(rng.uniform(0, 1))
        # The object's centre moves within the area above the floor.
        self.cx, self.cy = width / 2, self.floor_y / 2
        self.ax = max(1.0, 0.85 * (width / 2 - self.radius - 1))
        self.ay = max(1.0, 0.85 * (self.floor_y / 2 - self.radius - 1))

    def _make_texture(self, rng: np.random.Generator) -> np.ndarray:
        """Grey multi-octave noise (uint8 RGB, H+pad x W+pad) in [70, 180]: visible texture,
        no saturation, so it can never be mistaken for a class colour."""
        th, tw = self.h + self.pad, self.w + self.pad
        tex = np.zeros((th, tw), np.float32)
        for cells, amp in ((4, 1.0), (12, 0.5), (40, 0.25)):
            ch = max(2, cells * th // max(th, tw))
            cw = max(2, cells * tw // max(th, tw))
            small = rng.standard_normal((ch, cw)).astype(np.float32)
            tex += amp * cv2.resize(small, (tw, th), interpolation=cv2.INTER_CUBIC)
        tex -= tex.min()
        tex /= max(float(tex.max()), 1e-6)
        grey = 70.0 + 110.0 * tex
        tint = np.array([1.02, 1.0, 0.96], np.float32)  # a faint warm cast, far from saturated
        return np.clip(grey[..., None] * tint, 0, 255).astype(np.uint8)

    def _event(self, t: float) -> tuple[ClassLook, float, bool] | None:
        """(look, motion phase, moving) of the object visible at time t, or None."""
        for inst in self.instances:
            if inst.block_start_s <= t < inst.block_end_s:
                look = self.looks[inst.class_idx]
                if t < inst.start_s:
                    return look, inst.phase, False
                if t < inst.end_s:
                    return look, inst.phase + (t - inst.start_s) / MOTION_PERIOD_S, True
                end_phase = inst.phase + (inst.end_s - inst.start_s) / MOTION_PERIOD_S
                return look, end_phase, False
        return None

    def _centre(self, look: ClassLook, u: float) -> tuple[int, int]:
        ox, oy = motion_offset(look.motion, u)
        return round(self.cx + ox * self.ax), round(self.cy + oy * self.ay)

    def frame(self, t: float) -> np.ndarray:
        """The RGB frame (H, W, 3) uint8 at time t seconds."""
        drift = _tri(t / self._drift_period_s) * 0.5 + 0.5
        ox = round(drift * self.pad)
        oy = round((1 - drift) * self.pad * 0.5)
        light = 1.0 + 0.08 * np.sin(2 * np.pi * (t / self._light_period_s + self._light_phase))
        lut = np.clip(np.arange(256, dtype=np.float32) * np.float32(light), 0, 255)
        crop = self._texture[oy : oy + self.h, ox : ox + self.w]
        img = cv2.LUT(np.ascontiguousarray(crop), lut.astype(np.uint8))
        ev = self._event(t)
        if ev is None:
            return img
        look, u, _moving = ev
        floor = img[self.floor_y :]
        floor[:] = (floor.astype(np.uint16) + np.array(look.floor_rgb, np.uint16)) // 2
        cx, cy = self._centre(look, u)
        r = self.radius
        sprite = self.sprites[look.shape]
        y0, x0 = cy - r, cx - r
        ys, xs = (
            slice(max(0, y0), min(self.h, y0 + 2 * r + 1)),
            slice(max(0, x0), min(self.w, x0 + 2 * r + 1)),
        )
        sub = sprite[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
        img[ys, xs][sub] = look.rgb
        return img
