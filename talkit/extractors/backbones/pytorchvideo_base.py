"""What SlowFast and CSN share: pytorchvideo's model builders, its checkpoint layout, rgb.

pytorchvideo's ``.pyth`` checkpoints hold the network's state dict under
``checkpoint["model_state"]`` with the builder's own key names (``blocks.0`` ...
``blocks.N.proj``); talkit's networks keep exactly those names (``self.blocks`` is the
builder's ``ModuleList``), so the files load with ``strict=True`` and no conversion. Only
``pytorchvideo.models`` is used: its ``transforms`` need a torchvision module that no
longer exists, and talkit does the preprocessing itself (resize, crop, normalisation from
the spec).
"""

from __future__ import annotations

import math
import warnings
import zlib
from types import ModuleType

import torch
from torch import nn

from talkit.errors import InputError
from talkit.extractors.registry import BackboneSpec, NetworkBackbone, Normalisation

# Kinetics models of pytorchvideo: frames / 255, then mean 0.45 and std 0.225 per channel.
KINETICS_NORMALISATION = Normalisation(
    mean=(0.45, 0.45, 0.45), std=(0.225, 0.225, 0.225), value_range=255.0
)
MODEL_ZOO = "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics"
LICENCE = "Apache-2.0 (facebookresearch/pytorchvideo model zoo)"


def hub() -> ModuleType:
    """``pytorchvideo.models.hub``, imported without its ``torch.jit.script`` deprecation
    warning (raised inside pytorchvideo at import, nothing a user can act on)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*torch.jit.script")
        try:
            from pytorchvideo.models import hub as module
        except ImportError as exc:
            raise InputError(
                f"SlowFast and CSN-R101 need pytorchvideo, which is not importable here ({exc})",
                hint='install the backbones extra: pip install "talkit[backbones]"',
            ) from exc
    return module


def init_random_(model: nn.Module, seed: int) -> None:
    """Seeded He-normal convolutions and linears, identity BatchNorm, zero biases."""
    gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + zlib.crc32(b"pytorchvideo"))
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv3d | nn.Linear):
                weight = module.weight
                fan_in = weight[0].numel()
                weight.normal_(0.0, math.sqrt(2.0 / fan_in), generator=gen)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.BatchNorm3d):
                module.reset_parameters()  # weight 1, bias 0, mean 0, var 1


class PytorchvideoBackbone(NetworkBackbone):
    """A single-stream ("rgb") pytorchvideo network; subclasses set ``layout`` and
    ``family`` (as :func:`~talkit.extractors.checkpoints.identify_layout` names it)."""

    family: str = ""

    def __init__(self, spec: BackboneSpec, network: nn.Module) -> None:
        super().__init__(spec)
        self.network = network

    def _load_state(self, stream: str, state: dict[str, torch.Tensor], source: str) -> None:
        hint = self._weights_hint(f"a {self.layout} file")
        looks = self._refuse_another_layout(state, source, hint)

        def describe(st: object) -> str | None:
            return f"this looks like {looks}" if looks else None

        self._load_strict(state, source, hint, describe=describe)

    def _init_random(self, seed: int) -> None:
        init_random_(self.network, seed)
