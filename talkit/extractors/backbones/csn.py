"""CSN-R101 (ir-CSN, Tran et al., ICCV 2019), pytorchvideo's Kinetics-400 32x2 model.

Snippet (pytorchvideo's CSN_32x2_R101 Kinetics setting): frames at 30 fps, 32 at sampling
rate 2 (2.13 s), short side 256, centre crop 256 (the test-time size), ``(x / 255 - 0.45)
/ 0.225``; snippet starts 16 frames (0.53 s) apart, as for SlowFast.

Feature: the ``blocks.4`` output (2048 x T/8 x H/32 x W/32) averaged over time and space:
the pooled 2048-d vector before ``blocks.5.proj`` (the head's own pool covers the whole
map at 224 px). ir-CSN-152 in the mmaction2 layout is another module (``ircsn``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

import torch
from torch import nn

from talkit.extractors.backbones.pytorchvideo_base import (
    KINETICS_NORMALISATION,
    LICENCE,
    MODEL_ZOO,
    PytorchvideoBackbone,
    hub,
)
from talkit.extractors.registry import build_unset, register_backbone, rgb_spec
from talkit.extractors.weights import Weights

CLIP_LEN = 32
FEATURE_DIM = 2048
FEATURE_DESCRIPTION = (
    "blocks.4 output -> global average over time and space (the pooled 2048-d vector "
    "before blocks.5.proj)"
)
LAYOUT = "pytorchvideo CSN-R101 state dict under 'model_state' (.pyth; blocks.0 ... blocks.5.proj)"


class CSNNetwork(nn.Module):
    """pytorchvideo's CSN with its own key names; ``{"rgb": (N, 3, T, H, W)} -> {"rgb": (N, 2048)}``."""

    def __init__(self, builder: Callable[[], nn.Module]) -> None:
        super().__init__()
        self.blocks = build_unset(builder).blocks

    def forward_features(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = inputs["rgb"]
        for block in self.blocks[:5]:
            x = block(x)
        return {"rgb": x.mean(dim=(2, 3, 4))}


class CSNBackbone(PytorchvideoBackbone):
    """CSN as a talkit backbone: one "rgb" stream, 2048-d."""

    layout = LAYOUT
    family = "CSN-R101"


WEIGHTS = (
    Weights(
        name="csn_r101.kinetics400",
        backbone="csn_r101",
        url=f"{MODEL_ZOO}/CSN_32x2_R101.pyth",
        file_name="CSN_32x2_R101.pyth",
        licence=LICENCE,
        layout=LAYOUT,
    ),
)


@register_backbone("csn_r101", weights=WEIGHTS)
def csn_r101(
    *,
    fps: float = 30.0,
    stride: int = 16,
    sampling_rate: int = 2,
    input_size: int = 256,
    resize_short: int | None = 256,
) -> CSNBackbone:
    """CSN-R101 32x2 (Kinetics-400): 32 frames at rate 2 from 30 fps, 256 -> 256, 2048-d."""
    spec = rgb_spec(
        "csn_r101",
        fps=fps,
        clip_len=CLIP_LEN,
        stride=stride,
        sampling_rate=sampling_rate,
        input_size=input_size,
        resize_short=resize_short,
        normalisation=KINETICS_NORMALISATION,
        feature_dim=FEATURE_DIM,
        feature=FEATURE_DESCRIPTION,
    )
    return CSNBackbone(spec, CSNNetwork(functools.partial(hub().csn_r101, pretrained=False)))
