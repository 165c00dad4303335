"""Batch transforms: sizes, crop offsets, normalisation constants, greyscale, layouts."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from talkit.errors import InputError
from talkit.extractors.transforms import (
    FLOW_GREY,
    I3D_RGB,
    I3D_RGB_SQUARE,
    KINETICS_256,
    BatchTransform,
    center_crop,
    normalize,
    resize_short_side,
    short_side_size,
    to_grey,
)


def _frames(n=3, h=240, w=320, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def test_short_side_resize_keeps_aspect_with_floor_rounding():
    assert short_side_size(240, 320, 256) == (256, 341)  # floor(320 * 256 / 240) = 341
    assert short_side_size(720, 1280, 256) == (256, 455)
    assert short_side_size(1280, 720, 256) == (455, 256)  # portrait
    out = resize_short_side(_frames(), 256)
    assert out.shape == (3, 256, 341, 3) and out.dtype == np.uint8
    # Each frame is what cv2's bilinear resize gives on its own.
    f = _frames()[1]
    assert np.array_equal(out[1], cv2.resize(f, (341, 256), interpolation=cv2.INTER_LINEAR))


def test_center_crop_offsets_and_too_small_input():
    x = np.arange(1 * 7 * 9 * 1, dtype=np.uint8).reshape(1, 7, 9, 1)
    crop = center_crop(x, (3, 4))
    assert np.array_equal(crop, x[:, 2:5, 2:6])  # round((7-3)/2)=2, round((9-4)/2)=2
    assert crop.flags["C_CONTIGUOUS"]
    with pytest.raises(InputError, match="crop"):
        center_crop(x, 8)


def test_i3d_normalisation_maps_0_255_to_minus1_plus1():
    x = np.array([[[[0, 255, 51]]]], dtype=np.uint8)
    y = normalize(x, "i3d")
    assert y.dtype == torch.float32
    assert torch.allclose(y, torch.tensor([[[[-1.0, 1.0, 51 / 255 * 2 - 1]]]]))


def test_kinetics_and_imagenet_mean_std():
    x = np.full((1, 1, 1, 3), 115, dtype=np.uint8)  # 115/255 = 0.45098
    y = normalize(x, "kinetics")
    assert torch.allclose(y, torch.full((1, 1, 1, 3), (115 / 255 - 0.45) / 0.225), atol=1e-6)
    z = normalize(x, "imagenet")
    want = (115 / 255 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    assert torch.allclose(z[0, 0, 0], want, atol=1e-6)


def test_grey_matches_opencv_luma():
    f = _frames(2)
    g = to_grey(f)
    assert g.shape == (2, 240, 320)
    assert np.array_equal(g[0], cv2.cvtColor(f[0], cv2.COLOR_RGB2GRAY))
    expected = 0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]
    assert np.abs(g.astype(float) - expected).max() <= 1.0


def test_presets_produce_backbone_shapes_and_layouts():
    batch = _frames(2 * 4).reshape(2, 4, 240, 320, 3)
    assert tuple(I3D_RGB(batch).shape) == (2, 3, 4, 224, 224)
    assert tuple(I3D_RGB_SQUARE(batch).shape) == (2, 3, 4, 224, 224)
    assert tuple(KINETICS_256(batch).shape) == (2, 3, 4, 256, 256)
    grey = FLOW_GREY(batch)
    assert isinstance(grey, np.ndarray) and grey.dtype == np.uint8
    assert grey.shape == (2, 4, 224, 224, 1)
    tchw = BatchTransform(layout="BTCHW")(batch)
    assert tuple(tchw.shape) == (2, 4, 3, 224, 224)
    # BCTHW is a pure permutation of BTCHW: same numbers.
    assert torch.equal(I3D_RGB(batch), tchw.permute(0, 2, 1, 3, 4))


def test_square_and_short_side_options_are_exclusive():
    with pytest.raises(InputError):
        BatchTransform(square=224)  # resize_short/crop default to 256/224
    BatchTransform(square=224, resize_short=None, crop=None)
