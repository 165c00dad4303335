"""The backbone registry: ``get("i3d")`` returns a ready-to-configure feature extractor.

timm-style: each backbone family registers a factory with ``@register_backbone``. What a
backbone needs at its input (fps, clip length, stride, resize/crop, normalisation,
streams, flow) is data in its :class:`BackboneSpec`; the same spec drives the snippet
sampler, the transform and the store's record, so the three never disagree.

A backbone maps preprocessed snippets to features, one array per stream::

    batch = {"rgb": (N, 3, T, H, W) float32, "flow": (N, 2, T, H, W) float32}
    backbone.extract(batch) -> {"rgb": (N, 1024) float32, "flow": (N, 1024) float32}

Single-stream backbones (SlowFast, CSN, TDN, ViViT) use one stream name, "rgb". The
networks themselves live in ``talkit/extractors/backbones/`` (one module per family):
each is a ``torch.nn.Module`` whose ``forward_features`` takes and returns the same
``{stream: tensor}`` mappings (see :class:`NetworkBackbone`). Each family's known public
checkpoints are data next to its architecture (:mod:`talkit.extractors.weights`).
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from torch import nn

from talkit.errors import CheckpointError, InputError
from talkit.extractors.flow import FlowSpec
from talkit.extractors.sampling import SnippetSpec
from talkit.extractors.video import FRAME_COLOURS
from talkit.extractors.weights import Weights


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

    The snippet definition: frames are taken from the video at ``fps`` (by timestamp),
    a snippet is ``clip_len`` network frames taken every ``sampling_rate``-th of those
    frames, and snippet starts are ``stride`` frames (at ``fps``) apart. I3D: 25 fps, 16
    frames at rate 1, stride 16. SlowFast 8x8: 30 fps, 32 frames at rate 2 (2.13 s),
    stride 16. :meth:`snippet_spec` turns this into what the sampler reads (frames at
    ``fps / sampling_rate``), the one place the two are related.

    ``weights`` says per stream where its weights came from: ``sha256:<hex>`` of a
    checkpoint file, ``random:<seed>`` for seeded random weights (never real features),
    or ``unset`` before either happened.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    fps: float = Field(gt=0)
    clip_len: int = Field(gt=0)
    stride: int = Field(gt=0)
    sampling_rate: int = Field(default=1, gt=0)
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

    @model_validator(mode="after")
    def _stride_on_the_sampling_grid(self) -> BackboneSpec:
        if self.stride % self.sampling_rate:
            raise ValueError(
                f"{self.name}: stride {self.stride} is not a multiple of the sampling rate "
                f"{self.sampling_rate}; snippets must start on sampled frames"
            )
        return self

    def snippet_spec(self, tail: str = "drop", *, extra_frames: int = 0) -> SnippetSpec:
        """What the sampler reads: frames at ``fps / sampling_rate``, ``clip_len`` (+
        ``extra_frames``, e.g. one more for flow) per snippet, starts ``stride /
        sampling_rate`` of them apart. Snippet i then covers ``[i * stride / fps,
        (i * stride + clip_len * sampling_rate) / fps)`` seconds."""
        from talkit.extractors.resample import to_fraction

        fps = to_fraction(self.fps) / self.sampling_rate if self.sampling_rate > 1 else self.fps
        return SnippetSpec(
            fps,
            self.clip_len + extra_frames,
            self.stride // self.sampling_rate,
            tail,  # type: ignore[arg-type]
        )

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
        if self.sampling_rate != 1:  # the named fields below are those of the read frames
            params["sampling_rate"] = self.sampling_rate
            params["base_fps"] = float(self.fps)
        if self.is_random:
            params["warning"] = "random weights: for tests and demos, not real features"
        checkpoints = {
            stream: None if w == "unset" else w.removeprefix("sha256:")
            for stream, w in self.weights.items()
        }
        read = self.snippet_spec()
        return FeatureSetSpec(
            backbone=self.name,
            streams=dict(self.streams),
            dtype=self.dtype if self.dtype in ("float32", "float16") else "float32",  # type: ignore[arg-type]
            fps=float(read.fps),
            clip_len=read.clip_len,
            stride=read.stride,
            params=params,
            checkpoints=checkpoints,
        )


def rgb_spec(
    name: str,
    *,
    fps: float,
    clip_len: int,
    stride: int,
    sampling_rate: int,
    input_size: int,
    resize_short: int | None,
    normalisation: Normalisation,
    feature_dim: int,
    feature: str,
) -> BackboneSpec:
    """The spec of a single-stream ("rgb") backbone: short-side resize then a centre crop
    (or, with ``resize_short`` None, a square resize to the input size)."""
    if resize_short is not None and resize_short < input_size:
        raise InputError(
            f"{name}: resize_short {resize_short} is smaller than the crop size {input_size}",
            hint="use resize_short >= input_size, or None to resize straight to the input size",
        )
    return BackboneSpec(
        name=name,
        fps=fps,
        clip_len=clip_len,
        stride=stride,
        sampling_rate=sampling_rate,
        input_size=input_size,
        resize_short=resize_short,
        crop="center" if resize_short is not None else "none",
        normalisation=normalisation,
        streams={"rgb": feature_dim},
        input_channels={"rgb": 3},
        weights={"rgb": "unset"},
        feature=feature,
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


def build_unset(builder: Callable[[], nn.Module], device: str = "cpu") -> nn.Module:
    """Build a network without paying for its random init, in eval mode.

    The weights come from a checkpoint or a seed (``Backbone.require_weights`` guards
    ``extract``), so the default init would be thrown away. The module is built on the
    ``meta`` device and each tensor is then allocated with ``torch.empty``: not
    ``Module.to_empty``, whose ``empty_like`` runs a Python reference that imports sympy
    (0.3 s on the path to a worker's first video).
    """
    with torch.device("meta"):
        module = builder()

    def allocate(t: torch.Tensor) -> torch.Tensor:
        return torch.empty(t.shape, dtype=t.dtype, device=device)

    return module._apply(allocate).eval()


class NetworkBackbone(Backbone):
    """A backbone around one ``nn.Module`` (``self.network``) with timm's ``forward_features``.

    The network's ``forward_features`` takes ``{stream: (N, C, T, H, W)}`` and returns
    ``{stream: (N, D)}``: one contract for two-stream I3D (one sub-network per stream) and
    single-stream SlowFast/CSN (``{"rgb": ...}``). A family implements ``_load_state``
    (strict loading of its public layout into one stream) and ``_init_random``.
    """

    network: nn.Module
    layout: str = ""  # the checkpoint layout this backbone loads, for error messages
    # Key prefixes the reader strips (DataParallel's); a family whose network owns the
    # prefix (TDN's published files keep "module.") reads its files as they are.
    strip_prefixes: tuple[str, ...] = ("module.",)

    @abstractmethod
    def _load_state(self, stream: str, state: dict[str, torch.Tensor], source: str) -> None:
        """Load a state dict into ``stream``'s weights strictly (CheckpointError if not)."""

    @abstractmethod
    def _init_random(self, seed: int) -> None:
        """Seeded random weights for every stream."""

    def _weights_hint(self, what: str) -> str:
        """The hint of every refused file: "give NAME WHAT, e.g. --weights KNOWN"."""
        name = self.spec.name
        known = [w.name for w in weights_tables().values() if w.backbone == name]
        return f"give {name} {what}" + (f", e.g. --weights {' or '.join(known)}" if known else "")

    def _refuse_another_layout(
        self, state: Mapping[str, torch.Tensor], source: str, hint: str
    ) -> str | None:
        """Raise when the file is recognisably another backbone's (or another depth's),
        naming both layouts without listing hundreds of keys; else return what the file
        looks like (None when unrecognised)."""
        from talkit.extractors.checkpoints import identify_layout

        looks = identify_layout(state)
        if looks is not None and looks != identify_layout(self.network.state_dict()):
            raise CheckpointError(
                f"checkpoint {source} does not fit the {self.spec.name} network (expected "
                f"layout: {self.layout}); this looks like {looks}",
                hint=hint,
            )
        return looks

    def _load_strict(
        self,
        state: Mapping[str, torch.Tensor],
        source: str,
        hint: str,
        *,
        head: str | None = None,
        describe: Callable[[Mapping[str, torch.Tensor]], str | None] | None = None,
    ) -> None:
        """Strict loading into the network, with a diagnosis naming the expected layout.

        A classifier ``head`` (a module path, e.g. ``cls_head.fc_cls``) fine-tuned for
        another class count is rebuilt to fit the file, as the feature does not use it;
        a refused file leaves the network as it was."""
        from talkit.extractors.checkpoints import load_strict

        def load() -> None:
            load_strict(
                self.network,
                state,
                source=source,
                target=f"{self.spec.name} network (expected layout: {self.layout})",
                describe=describe,
                hint=hint,
            )

        if head is None:
            load()
            return
        parent_path, _, attr = head.rpartition(".")
        parent = self.network.get_submodule(parent_path) if parent_path else self.network
        old = getattr(parent, attr)
        bias = state.get(f"{head}.bias")
        if bias is not None and bias.ndim == 1 and bias.shape[0] != old.out_features:
            setattr(parent, attr, nn.Linear(old.in_features, int(bias.shape[0])))
        try:
            load()
        except CheckpointError:
            setattr(parent, attr, old)
            raise

    def load_checkpoint(self, stream: str, path: str | Path) -> str:
        from talkit.extractors.checkpoints import file_sha256, read_state_dict

        self._check_stream(stream)
        path = Path(path)
        state = read_state_dict(path, strip_prefixes=self.strip_prefixes)
        self._load_state(stream, state, str(path))
        self.network.to(self.device).eval()
        digest = file_sha256(path)
        self._set_weights(stream, f"sha256:{digest}")
        return digest

    def random_weights(self, seed: int) -> None:
        self._init_random(int(seed))
        self.network.to(self.device).eval()
        for stream in self.spec.streams:
            self._set_weights(stream, f"random:{int(seed)}")

    def to(self, device: str | torch.device) -> NetworkBackbone:
        super().to(device)
        self.network.to(self.device)
        return self

    def extract(self, batch: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
        name = self.spec.name
        missing = [s for s in self.spec.streams if s not in batch]
        if missing:
            raise InputError(
                f"{name} extract: batch lacks stream(s) {', '.join(missing)}",
                hint=f"give a tensor for each of {', '.join(self.spec.streams)}",
            )
        self.require_weights()
        inputs: dict[str, torch.Tensor] = {}
        n = 0
        for stream in self.spec.streams:
            x = torch.as_tensor(batch[stream])
            c = self.spec.input_channels[stream]
            if x.ndim != 5 or x.shape[1] != c:
                raise InputError(
                    f"{name} {stream} stream expects (N, {c}, T, H, W) float tensors; got "
                    f"{tuple(x.shape)}"
                )
            x = x.to(self.device, torch.float32)
            n = x.shape[0]
            if n == 1:
                # oneDNN picks another 3-D convolution kernel for a batch of one, whose
                # sums round differently; running a lone snippet as a pair keeps features
                # independent of the batch size (bit-identical for sizes >= 2).
                x = x.expand(2, *x.shape[1:])
            inputs[stream] = x
        with torch.inference_mode(), exact_fp32(self.device):
            feats = self.network.forward_features(inputs)
        return {s: feats[s][:n].float().cpu().numpy() for s in self.spec.streams}


BackboneFactory = Callable[..., Backbone]
_REGISTRY: dict[str, BackboneFactory] = {}
_WEIGHTS: dict[str, Weights] = {}
F = TypeVar("F", bound=BackboneFactory)


def register_backbone(name: str, *, weights: Sequence[Weights] = ()) -> Callable[[F], F]:
    """Decorator: make ``get(name, **options)`` call this factory; ``weights`` is its
    table of known public checkpoints (:class:`talkit.extractors.weights.Weights`)."""

    def decorate(factory: F) -> F:
        if name in _REGISTRY and _REGISTRY[name] is not factory:
            raise ValueError(f"backbone {name!r} is registered twice")
        _REGISTRY[name] = factory
        for entry in weights:
            if entry.backbone != name:
                raise ValueError(
                    f"weights {entry.name!r} belong to {entry.backbone!r}, not {name!r}"
                )
            _WEIGHTS[entry.name] = entry
        return factory

    return decorate


def _load_builtin() -> None:
    # Importing the package imports every family module, which runs their decorators.
    import talkit.extractors.backbones  # noqa: F401


def available() -> list[str]:
    """Names ``get`` accepts."""
    _load_builtin()
    return sorted(_REGISTRY)


def weights_tables() -> dict[str, Weights]:
    """Every known public checkpoint by name (``slowfast_r50.kinetics400``, ...)."""
    _load_builtin()
    return dict(_WEIGHTS)


def _factory(name: str) -> BackboneFactory:
    _load_builtin()
    if name not in _REGISTRY:
        raise InputError(
            f"unknown backbone {name!r}", hint=f"available: {', '.join(sorted(_REGISTRY))}"
        )
    return _REGISTRY[name]


def default_options(name: str) -> dict[str, Any]:
    """The backbone's options and their defaults: its factory's keywords, the one source."""
    return {
        p.name: p.default
        for p in inspect.signature(_factory(name)).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def get(name: str, **options: object) -> Backbone:
    """A new backbone instance; ``options`` are the factory's keywords (e.g. input_size)."""
    factory = _factory(name)
    try:
        inspect.signature(factory).bind(**options)
    except TypeError as exc:
        raise InputError(
            f"bad options for backbone {name!r}: {exc}",
            hint=f"its options are: {', '.join(default_options(name)) or 'none'}",
        ) from exc
    try:
        return factory(**options)
    except ValidationError as exc:  # a spec the options make impossible
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise InputError(
            f"bad options for backbone {name!r}: "
            + (f"{where}: " if where else "")
            + str(first["msg"]).removeprefix("Value error, "),
            hint=f"its defaults are: {default_options(name)}",
        ) from None
