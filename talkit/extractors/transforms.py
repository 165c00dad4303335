"""Batch transforms for backbone input: resize, crop, normalise, greyscale.

Why our own: pytorchvideo's transforms import a torchvision module that no longer
exists, and per-frame PIL pipelines are slow. Spatial steps run with OpenCV on uint8
frames (fast, and done once per decoded frame by the sampler, before snippets are
assembled, so only small frames are buffered); normalisation runs in torch on whole
batches.

Conventions (see ../shared/reference/features.md):

- I3D RGB: bilinear resize so the short side is 256, centre crop 224, (x / 255) * 2 - 1.
- Kinetics (pytorchvideo SlowFast, CSN): short side 256, centre crop 256 or 224,
  mean 0.45, std 0.225. ImageNet mean/std for TDN.
- Flow input: greyscale frames (ITU-R BT.601 luma, as OpenCV's RGB2GRAY).
- New size for "short side s": the short side becomes s, the long side floor(long * s /
  short) (torchvision and pytorchvideo agree). Centre crop offsets are
  round((size - crop) / 2), as torchvision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np

from talkit.errors import InputError

KINETICS_MEAN = (0.45, 0.45, 0.45)
KINETICS_STD = (0.225, 0.225, 0.225)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_INTERP = {
    "bilinear": cv2.INTER_LINEAR,
    "area": cv2.INTER_AREA,
    "bicubic": cv2.INTER_CUBIC,
    "nearest": cv2.INTER_NEAREST,
}
Interpolation = Literal["bilinear", "area", "bicubic", "nearest"]
Normalize = Literal["i3d", "kinetics", "imagenet", "none"]
Layout = Literal["BCTHW", "BTCHW", "BTHWC"]


def _resize_all(frames: np.ndarray, width: int, height: int, interpolation: str) -> np.ndarray:
    n, h, w = frames.shape[:3]
    if (h, w) == (height, width):
        return frames
    flag = _INTERP[interpolation]
    out = np.empty((n, height, width, *frames.shape[3:]), dtype=frames.dtype)
    for i in range(n):
        resized = cv2.resize(frames[i], (width, height), interpolation=flag)
        out[i] = resized.reshape(out.shape[1:])
    return out


def short_side_size(height: int, width: int, size: int) -> tuple[int, int]:
    """(new_height, new_width) so that the short side is ``size``."""
    if height <= width:
        return size, max(1, (width * size) // height)
    return max(1, (height * size) // width), size


def resize_short_side(
    frames: np.ndarray, size: int, interpolation: Interpolation = "bilinear"
) -> np.ndarray:
    """(N, H, W[, C]) uint8 -> short side ``size``, aspect ratio kept."""
    new_h, new_w = short_side_size(frames.shape[1], frames.shape[2], size)
    return _resize_all(frames, new_w, new_h, interpolation)


def resize_square(
    frames: np.ndarray, size: int, interpolation: Interpolation = "bilinear"
) -> np.ndarray:
    """(N, H, W[, C]) -> (N, size, size[, C]), ignoring the aspect ratio."""
    return _resize_all(frames, size, size, interpolation)


def crop_origin(shape: tuple[int, ...], size: int | tuple[int, int]) -> tuple[int, int]:
    """(top, left) of the centre (h, w) crop of (H, W) frames; ``size`` is s or (h, w)."""
    ch, cw = (size, size) if isinstance(size, int) else size
    h, w = shape[:2]
    if ch > h or cw > w:
        raise InputError(
            f"cannot centre-crop {ch}x{cw} from {h}x{w} frames",
            hint="resize the short side to at least the crop size first",
        )
    return round((h - ch) / 2.0), round((w - cw) / 2.0)


def center_crop(frames: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """(N, H, W[, C]) -> centre (N, h, w[, C]) crop; ``size`` is s or (h, w)."""
    ch, cw = (size, size) if isinstance(size, int) else size
    top, left = crop_origin(frames.shape[1:3], (ch, cw))
    return np.ascontiguousarray(frames[:, top : top + ch, left : left + cw])


def to_grey(frames: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) RGB uint8 -> (N, H, W) uint8 luma (0.299 R + 0.587 G + 0.114 B)."""
    out = np.empty(frames.shape[:3], dtype=np.uint8)
    for i in range(frames.shape[0]):
        out[i] = cv2.cvtColor(frames[i], cv2.COLOR_RGB2GRAY)
    return out


def normalize(frames: Any, kind: Normalize) -> Any:
    """uint8 array/tensor -> float32 torch tensor: i3d [-1, 1], or (x/255 - mean) / std.

    Channels are last. ``none`` returns the input unchanged.
    """
    if kind == "none":
        return frames
    import torch

    x = torch.as_tensor(frames).to(torch.float32)
    if kind == "i3d":
        return x.mul_(2.0 / 255.0).sub_(1.0)
    mean, std = (
        (KINETICS_MEAN, KINETICS_STD) if kind == "kinetics" else (IMAGENET_MEAN, IMAGENET_STD)
    )
    channels = x.shape[-1]
    m = torch.tensor(mean[:channels] if channels > 1 else mean[:1], dtype=torch.float32)
    s = torch.tensor(std[:channels] if channels > 1 else std[:1], dtype=torch.float32)
    return x.div_(255.0).sub_(m).div_(s)


@dataclass(frozen=True)
class BatchTransform:
    """A backbone's input transform, applied in two stages by the snippet sampler.

    ``spatial`` (per decoded frame, uint8 -> uint8): short-side resize then centre crop,
    or a straight resize to a square; then greyscale if ``grey``. ``finish`` (per batch
    of snippets (B, T, h, w, C) uint8): normalise in torch and lay out the axes.
    With ``normalize="none"`` the batch stays a uint8 NumPy array (B, T, h, w[, 1]).
    """

    resize_short: int | None = 256
    crop: int | tuple[int, int] | None = 224
    square: int | None = None
    normalize: Normalize = "i3d"
    grey: bool = False
    layout: Layout = "BCTHW"
    interpolation: Interpolation = "bilinear"

    def __post_init__(self) -> None:
        if self.square is not None and (self.resize_short is not None or self.crop is not None):
            raise InputError("BatchTransform: use either square= or resize_short=/crop=, not both")

    def spatial(self, frames: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 RGB -> (N, h, w, C) uint8, C = 1 if grey else 3."""
        out = frames
        if self.square is not None:
            out = resize_square(out, self.square, self.interpolation)
        else:
            if self.resize_short is not None:
                out = resize_short_side(out, self.resize_short, self.interpolation)
            if self.crop is not None:
                out = center_crop(out, self.crop)
        if self.grey:
            out = to_grey(out)[..., None]
        return out

    def finish(self, batch: np.ndarray) -> Any:
        """(B, T, h, w, C) uint8 -> normalised tensor in ``layout`` (or uint8 array)."""
        if self.normalize == "none":
            return _permute_np(batch, self.layout)
        x = normalize(batch, self.normalize)
        if self.layout == "BCTHW":
            x = x.permute(0, 4, 1, 2, 3)
        elif self.layout == "BTCHW":
            x = x.permute(0, 1, 4, 2, 3)
        return x.contiguous()

    def __call__(self, batch: np.ndarray) -> Any:
        """Both stages on a (B, T, H, W, 3) uint8 batch."""
        b, t = batch.shape[:2]
        frames = self.spatial(batch.reshape(b * t, *batch.shape[2:]))
        return self.finish(frames.reshape(b, t, *frames.shape[1:]))


def _permute_np(batch: np.ndarray, layout: Layout) -> np.ndarray:
    if layout == "BCTHW":
        return np.ascontiguousarray(batch.transpose(0, 4, 1, 2, 3))
    if layout == "BTCHW":
        return np.ascontiguousarray(batch.transpose(0, 1, 4, 2, 3))
    return batch


# Presets named after the convention they implement.
I3D_RGB = BatchTransform(resize_short=256, crop=224, normalize="i3d")
I3D_RGB_SQUARE = BatchTransform(resize_short=None, crop=None, square=224, normalize="i3d")
FLOW_GREY = BatchTransform(resize_short=256, crop=224, normalize="none", grey=True, layout="BTHWC")
KINETICS_256 = BatchTransform(resize_short=256, crop=256, normalize="kinetics")
KINETICS_224 = BatchTransform(resize_short=256, crop=224, normalize="kinetics")
