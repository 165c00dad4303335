"""Optical flow for the I3D flow stream: OpenCV's TV-L1 (the convention), talkit's
batched torch TV-L1 (CPU or CUDA), and two fast OpenCV stand-ins.

Public names (every import path of the former ``talkit.extractors.flow`` module works)::

    flow_spec(method="tvl1", *, bound, quantize_8bit, region, device, batch, compile,
              **params) -> FlowSpec
    FlowComputer(spec, workers=1).pairs(firsts, seconds) -> (P, H, W, 2) raw flow
    to_grey, normalise_flow, quantize_flow, dequantize_flow
    TVL1 (talkit.extractors.flow.tvl1_torch): the torch engine on tensors

This package imports neither torch nor the rest of talkit (the torch TV-L1 loads on first
use), so spawned OpenCV workers start fast.
"""

from __future__ import annotations

from talkit.extractors.flow.computer import FlowComputer
from talkit.extractors.flow.encoding import (
    dequantize_flow,
    normalise_flow,
    quantize_flow,
    to_grey,
)
from talkit.extractors.flow.opencv import OpenCVFlow
from talkit.extractors.flow.spec import (
    DEFAULT_BOUND,
    FAST_PRESET,
    FLOW_DEVICES,
    FLOW_METHODS,
    TORCH_METHODS,
    FlowMethod,
    FlowSpec,
    flow_spec,
)

__all__ = [
    "DEFAULT_BOUND",
    "FAST_PRESET",
    "FLOW_DEVICES",
    "FLOW_METHODS",
    "TORCH_METHODS",
    "FlowComputer",
    "FlowMethod",
    "FlowSpec",
    "OpenCVFlow",
    "dequantize_flow",
    "flow_spec",
    "normalise_flow",
    "quantize_flow",
    "to_grey",
]
