"""SlowFast 8x8 (Feichtenhofer et al., ICCV 2019), R50 and R101, from pytorchvideo's builders.

Snippet (the pytorchvideo/PySlowFast Kinetics 8x8 setting, and its torch.hub inference
example): frames at 30 fps, 32 of them at sampling rate 2 (every 2nd frame: 2.13 s), the
fast pathway takes all 32, the slow pathway 8 (alpha 4) at PySlowFast's
``linspace(0, 31, 8).long()`` indices (0, 4, 8, 13, 17, 22, 26, 31: what the checkpoints
were trained and tested with). Short side 256, centre crop 256 (pytorchvideo's test-time
and hub-example size), ``(x / 255 - 0.45) / 0.225``. Snippet starts 16 frames (0.53 s)
apart, the stride of ActionFormer's SlowFast features.

Feature: the output of the last stage of each pathway, averaged over time and space and
concatenated [slow 2048, fast 256] = 2304-d: what ``blocks.5`` (PoolConcatPathway) hands
the head before ``blocks.6.proj`` when its pool covers the whole map (224 px; the global
average at any input size).
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
ALPHA = 4
FEATURE_DIM = 2304
FEATURE_DESCRIPTION = (
    "blocks.4 outputs (slow, fast) -> global average over time and space -> concat "
    "[2048, 256] (the pooled 2304-d vector before blocks.6.proj)"
)


def slow_indices(clip_len: int, alpha: int = ALPHA) -> torch.Tensor:
    """PySlowFast's slow-pathway frames: ``linspace(0, T - 1, T // alpha).long()``."""
    return torch.linspace(0, clip_len - 1, clip_len // alpha).long()


class SlowFastNetwork(nn.Module):
    """pytorchvideo's SlowFast with its own key names (``blocks.0`` ... ``blocks.6.proj``).

    ``forward_features({"rgb": (N, 3, 32, H, W)}) -> {"rgb": (N, 2304)}``.
    """

    def __init__(self, builder: Callable[[], nn.Module]) -> None:
        super().__init__()
        self.blocks = build_unset(builder).blocks

    def forward_features(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        fast = inputs["rgb"]
        idx = slow_indices(fast.shape[2]).to(fast.device)
        # A new list each call: the fused pathway blocks overwrite the list they are given.
        x: list[torch.Tensor] = [fast.index_select(2, idx), fast]
        for block in self.blocks[:5]:
            x = block(x)
        return {"rgb": torch.cat([p.mean(dim=(2, 3, 4)) for p in x], dim=1)}


class SlowFastBackbone(PytorchvideoBackbone):
    """SlowFast as a talkit backbone: one "rgb" stream, 2304-d."""


def _weights(depth: int) -> Weights:
    name = f"slowfast_r{depth}"
    return Weights(
        name=f"{name}.kinetics400",
        backbone=name,
        url=f"{MODEL_ZOO}/SLOWFAST_8x8_R{depth}.pyth",
        file_name=f"SLOWFAST_8x8_R{depth}.pyth",
        licence=LICENCE,
        layout=_layout(depth),
    )


def _layout(depth: int) -> str:
    return (
        f"pytorchvideo SlowFast-R{depth} 8x8 state dict under 'model_state' "
        "(.pyth; blocks.0 ... blocks.6.proj)"
    )


def _slowfast(
    depth: int,
    *,
    fps: float,
    stride: int,
    sampling_rate: int,
    input_size: int,
    resize_short: int | None,
) -> SlowFastBackbone:
    builder = functools.partial(getattr(hub(), f"slowfast_r{depth}"), pretrained=False)
    spec = rgb_spec(
        f"slowfast_r{depth}",
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
    backbone = SlowFastBackbone(spec, SlowFastNetwork(builder))
    backbone.layout = _layout(depth)
    backbone.family = f"SlowFast-R{depth}"
    return backbone


@register_backbone("slowfast_r50", weights=(_weights(50),))
def slowfast_r50(
    *,
    fps: float = 30.0,
    stride: int = 16,
    sampling_rate: int = 2,
    input_size: int = 256,
    resize_short: int | None = 256,
) -> SlowFastBackbone:
    """SlowFast-R50 8x8 (Kinetics-400): 32 frames at rate 2 from 30 fps, 256 -> 256, 2304-d.

    ``input_size`` 224 is the training crop; small sizes (64) are for fast tests.
    """
    return _slowfast(
        50,
        fps=fps,
        stride=stride,
        sampling_rate=sampling_rate,
        input_size=input_size,
        resize_short=resize_short,
    )


@register_backbone("slowfast_r101", weights=(_weights(101),))
def slowfast_r101(
    *,
    fps: float = 30.0,
    stride: int = 16,
    sampling_rate: int = 2,
    input_size: int = 256,
    resize_short: int | None = 256,
) -> SlowFastBackbone:
    """SlowFast-R101 8x8 (Kinetics-400): same snippet as slowfast_r50, 2304-d."""
    return _slowfast(
        101,
        fps=fps,
        stride=stride,
        sampling_rate=sampling_rate,
        input_size=input_size,
        resize_short=resize_short,
    )
