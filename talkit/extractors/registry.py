"""The backbone registry: ``get("i3d")`` returns a ready-to-configure feature extractor.

timm-style: each backbone family registers a factory with ``@register_backbone``. What a
backbone needs at its input (fps, clip length, stride, resize/crop, normalisation,
streams, flow) is data in its :class:`BackboneSpec`; the same spec drives the snippet
sampler, the transform and the store's record, so the three never disagree.

A backbone maps preprocessed snippets to features, one array per stream::

    batch = {"rgb": (N, 3, T, H, W) float32, "flow": (N, 2, T, H, W) float32}
    backbone.extract(batch) -> {"rgb": (N, 1024) float32, "flow": (N, 1024) float32}

Single-stream backbones (SlowFast, CSN, TDN, ViViT) use one stream name, e.g. "rgb".
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from talkit.errors import CheckpointError, InputError
from talkit.extractors.flow import FlowSpec
from talkit.extractors.video import FRAME_COLOURS


class Normalisation(BaseModel):
    """Pixel normalisation: ``(x / value_range - mean) / std`` per channel.

    I3D's ``(x / 255) * 2 - 1`` is mean 0.5, std 0.5 (identical in float arithmetic);
    pytorchvideo's SlowFast is mean 0.45, std 0.225.
    """

    model_config = ConfigDict(frozen=True)

    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.5, 0.5, 0.5)
    value_range: float = 255.0


class BackboneSpec(BaseModel):
    """Everything that determines a backbone's features; stored with them.

    ``weights`` says per stream where its weights came from: ``sha256:<hex>`` of a
    checkpoint file, ``random:<seed>`` for seeded random weights (never real features),
    or ``unset`` before either happened.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    fps: float = Field(gt=0)
    clip_len: int = Field(gt=0)
    stride: int = Field(gt=0)
    input_size: int = Field(gt=0)
    resize_short: int | None = 256
    crop: Literal["center", "none"] = "center"
    normalisation: Normalisation = Normalisation()
    streams: dict[str, int]
    input_channels: dict[str, int]
    flow: FlowSpec | None = None
    weights: dict[str, str] = {}
    feature: str = ""
    dtype: str = "float32"

    @property
    def is_random(self) -> bool:
        """True when any stream runs on random weights: features are not real ones."""
        return any(w.startswith("random:") for w in self.weights.values())

    def to_store_spec(self, *, tail: str = "drop") -> Any:
        """The store's ``FeatureSetSpec`` for features made with this spec: the one conversion.

        Named fields map across; the rest (resize, crop, normalisation, input channels,
        feature definition, tail policy, flow method and parameters, the frames' colour
        conversion) goes into ``params``.
        Checkpoints are the bare sha256 hex of the file, or ``random:<seed>``; random
        weights are also flagged in ``params`` (``random_weights``, ``warning``) so nobody
        mistakes them for real features. The pipeline and the Python API both write this,
        so a feature set written by either resumes with the other.
        """
        from talkit.store.spec import FeatureSetSpec

        params: dict[str, Any] = {
            "input_size": self.input_size,
            "resize_short": self.resize_short,
            "crop": self.crop,
            "normalisation": self.normalisation.model_dump(mode="json"),
            "input_channels": dict(self.input_channels),
            "feature": self.feature,
            "tail": tail,
            "random_weights": self.is_random,
            "frames": FRAME_COLOURS,
        }
        if self.flow is not None:
            params["flow"] = self.flow.model_dump(mode="json")
        if self.is_random:
            params["warning"] = "random weights: for tests and demos, not real features"
        checkpoints = {
            stream: None if w == "unset" else w.removeprefix("sha256:")
            for stream, w in self.weights.items()
        }
        return FeatureSetSpec(
            backbone=self.name,
            streams=dict(self.streams),
            dtype=self.dtype if self.dtype in ("float32", "float16") else "float32",  # type: ignore[arg-type]
            fps=float(self.fps),
            clip_len=self.clip_len,
            stride=self.stride,
            params=params,
            checkpoints=checkpoints,
        )


class Backbone(ABC):
    """A feature extractor: a spec, weights per stream, and a batched ``extract``."""

    spec: BackboneSpec

    def __init__(self, spec: BackboneSpec) -> None:
        self.spec = spec
        self.device = torch.device("cpu")

    @property
    def stream_names(self) -> tuple[str, ...]:
        return tuple(self.spec.streams)

    def _check_stream(self, stream: str) -> None:
        if stream not in self.spec.streams:
            raise InputError(
                f"backbone {self.spec.name!r} has no stream {stream!r} in this configuration",
                hint=f"its streams are: {', '.join(self.spec.streams)}",
            )

    def _set_weights(self, stream: str, provenance: str) -> None:
        self.spec = self.spec.model_copy(
            update={"weights": {**self.spec.weights, stream: provenance}}
        )

    def require_weights(self) -> None:
        """Raise unless every stream has a checkpoint or random weights."""
        unset = [s for s in self.spec.streams if self.spec.weights.get(s, "unset") == "unset"]
        if unset:
            raise CheckpointError(
                f"backbone {self.spec.name!r} has no weights for stream(s) {', '.join(unset)}",
                hint="pass checkpoints={stream: path} or random_weights_seed=<int> (test features only)",
            )

    @abstractmethod
    def load_checkpoint(self, stream: str, path: str | Path) -> str:
        """Load one stream's weights strictly; return the file's sha256."""

    @abstractmethod
    def random_weights(self, seed: int) -> None:
        """Seeded random weights for every stream, recorded as ``random:<seed>``."""

    @abstractmethod
    def extract(self, batch: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
        """Preprocessed snippets per stream -> features per stream, (N, D) float32."""

    def to(self, device: str | torch.device) -> Backbone:
        """Move the networks to ``device`` (e.g. "cuda"); returns self."""
        self.device = torch.device(device)
        return self


@contextmanager
def exact_fp32(device: torch.device) -> Iterator[None]:
    """Run CUDA convolutions and matmuls in true fp32, not TF32 (PyTorch's cuDNN default).

    Measured on an H100 with random I3D weights: TF32 moved features by up to 5e-3 from
    the CPU ones and made them depend on the batch size (2e-3); fp32 gave 2e-5 and
    batch-size invariance. Published features were fp32; reproducing them matters more
    than the speed-up.
    """
    if device.type != "cuda":
        yield
        return
    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


BackboneFactory = Callable[..., Backbone]
_REGISTRY: dict[str, BackboneFactory] = {}
F = TypeVar("F", bound=BackboneFactory)


def register_backbone(name: str) -> Callable[[F], F]:
    """Decorator: make ``get(name, **options)`` call this factory."""

    def decorate(factory: F) -> F:
        if name in _REGISTRY and _REGISTRY[name] is not factory:
            raise ValueError(f"backbone {name!r} is registered twice")
        _REGISTRY[name] = factory
        return factory

    return decorate


def _load_builtin() -> None:
    # Importing the modules runs their @register_backbone decorators.
    from talkit.extractors import i3d  # noqa: F401


def available() -> list[str]:
    """Names ``get`` accepts."""
    _load_builtin()
    return sorted(_REGISTRY)


def get(name: str, **options: object) -> Backbone:
    """A new backbone instance; ``options`` are the factory's keywords (e.g. input_size)."""
    _load_builtin()
    if name not in _REGISTRY:
        raise InputError(
            f"unknown backbone {name!r}", hint=f"available: {', '.join(sorted(_REGISTRY))}"
        )
    factory = _REGISTRY[name]
    try:
        inspect.signature(factory).bind(**options)
    except TypeError as exc:
        raise InputError(
            f"bad options for backbone {name!r}: {exc}",
            hint=f"its options are: {inspect.signature(factory)}",
        ) from exc
    return factory(**options)
