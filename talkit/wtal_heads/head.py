"""What every WS-TAL head offers the training loop, and the registry of heads by name.

A head is an ``nn.Module`` with three calls: ``forward`` (everything the loss needs),
``loss`` (a scalar plus named parts for the log) and ``infer`` (class scores, the CAS
that detection reads, and the attention if there is one). The loop, the predictor and
the post-processing only use these, so D2-Net or DGAM can join by registering a builder.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from talkit.errors import ConfigError


@dataclass
class Inference:
    """A head's test-time output for a batch.

    ``class_scores`` (B, C): video-level probabilities used to pick the classes to
    localize. ``cas`` (B, T, C): the activation sequence detection thresholds (raw, not
    normalised; post-processing normalises as its method says). ``attention`` (B, T) or
    None: the foreground weight, for plots. ``streams``: when given, detection runs on
    each stream's output with that stream's thresholds and merges the lists (NMS).
    """

    class_scores: Tensor
    cas: Tensor
    attention: Tensor | None = None
    # (B, T, C) or None: the signal thresholding reads when it is not ``cas`` (DGAM).
    threshold_cas: Tensor | None = None
    # Per-stream outputs detected one by one and merged (DGAM's RGB and flow models);
    # None when the head gives one output.
    streams: dict[str, Inference] | None = None


class WTALHead(nn.Module):
    """Base class: a head for weakly-supervised temporal action localization.

    ``postprocess`` names the detection preset (``talkit.wtal_heads.evaluation.postprocess_presets``) the
    method's authors used on this head's CAS.
    """

    postprocess: str = "basnet"
    # True: the loop skips (counts and logs) a step whose loss is not finite instead of
    # stopping the run, as D2-Net's authors do.
    skip_nonfinite: bool = False
    num_classes: int
    in_dim: int

    def init_input_stats(self, in_dim: int) -> None:
        """Per-dim input mean and std as buffers (identity until set): they travel with
        the weights, so prediction standardizes exactly as training did."""
        self.register_buffer("input_mean", torch.zeros(in_dim))
        self.register_buffer("input_std", torch.ones(in_dim))

    def set_input_stats(self, mean: Tensor, std: Tensor) -> None:
        self.input_mean.copy_(mean)
        self.input_std.copy_(std)

    def standardize(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        x = (x - self.input_mean) / self.input_std
        return x if mask is None else x * mask[..., None].to(x.dtype)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        raise NotImplementedError

    def loss(self, out: dict[str, Tensor], labels: Tensor) -> tuple[Tensor, dict[str, float]]:
        raise NotImplementedError

    def infer(self, x: Tensor, mask: Tensor | None = None) -> Inference:
        raise NotImplementedError


HeadBuilder = Callable[..., WTALHead]
_HEADS: dict[str, HeadBuilder] = {}


def register_head(name: str) -> Callable[[HeadBuilder], HeadBuilder]:
    """Decorator: make a builder ``f(*, in_dim, num_classes, **params)`` available by name."""

    def deco(fn: HeadBuilder) -> HeadBuilder:
        if name in _HEADS and _HEADS[name] is not fn:
            raise ValueError(f"head {name!r} is registered twice")
        _HEADS[name] = fn
        return fn

    return deco


def head_names() -> list[str]:
    _import_builtin_heads()
    return sorted(_HEADS)


def build_head(name: str, *, in_dim: int, num_classes: int, params: dict[str, Any]) -> WTALHead:
    """Build a registered head; unknown names and bad parameters are config errors."""
    _import_builtin_heads()
    if name not in _HEADS:
        raise ConfigError(
            f"unknown head {name!r}", hint=f"model.head must be one of {', '.join(sorted(_HEADS))}"
        )
    builder = _HEADS[name]
    signature = inspect.signature(builder)
    try:
        signature.bind(in_dim=in_dim, num_classes=num_classes, **params)
    except TypeError as exc:
        accepted = [p for p in signature.parameters if p not in ("in_dim", "num_classes")]
        raise ConfigError(
            f"model.params do not fit head {name!r}: {exc}",
            hint=f"its keyword arguments are: {', '.join(accepted)}",
        ) from exc
    try:
        return builder(in_dim=in_dim, num_classes=num_classes, **params)
    except ValueError as exc:  # builders refuse bad values with ValueError
        raise ConfigError(f"model.params of head {name!r}: {exc}") from exc


def _import_builtin_heads() -> None:
    # Registration happens on import; importing here keeps the registry complete.
    from talkit.wtal_heads import basnet, d2net, dgam, lgbm  # noqa: F401
