"""TDN-R50 (Wang, Tong, Ji, Wu, *Temporal Difference Networks*, CVPR 2021) in MCG-NJU/TDN's
checkpoint layout; registered as the ``tdn_r50`` backbone.

Written for talkit from the behaviour of MCG-NJU/TDN's ``ops/tdn_net.py`` (``TDN_Net``, the
short-term TDM), ``ops/base_module.py`` (``FBResNet``, ``mSEModule``: the long-term TDM,
``ShiftModule``) and ``ops/models.py`` (``TSN``: dropout + ``new_fc`` head, average
consensus over segments). Module and parameter names are the official ones under a
top-level ``module`` (the ``DataParallel`` wrapper the published files were saved from),
so ``torch.load(f)["state_dict"]`` (keys ``module.base_model.*``, ``module.new_fc.*``)
loads with ``strict=True`` as it is: no key is renamed. ``tests/data/tdn_r50_k400.keys.json``
lists every key and shape of the Kinetics-400 ResNet-50 8-segment checkpoint.

Data path of one segment (5 consecutive frames, 224 px; a window has 8 segments, run as
8 images through 2-D convolutions; the long-term modules mix the 8 segments of a window)::

    frames f0..f4 (each 3 x 224 x 224), centre f2
    short-term TDM (side branch):
      [f1-f0, f2-f1, f3-f2, f4-f3]            12 x 224 x 224
      avg_diff: 2x2 average pool, stride 2     12 x 112 x 112
      conv1_5: 7x7 conv s2 (no bias), BN, ReLU 64 x 56 x 56
      maxpool_diff: 3x3 max s2                 64 x 28 x 28   = d1
      resnext_layer1: 3 bottlenecks            256 x 28 x 28  = d2
    main path (ResNet-50 on f2):
      conv1 7x7 s2 (bias), bn1, ReLU, maxpool  64 x 56 x 56
      x = 0.5 x + 0.5 nearest(d1)              (alpha/beta 0.5/0.5 for 8 segments)
      layer1_bak: 3 bottlenecks                256 x 56 x 56
      x = 0.5 x + 0.5 nearest(d2)
      layer2_bak .. layer4_bak: 4, 6, 3 bottlenecks with the long-term TDM
                                               2048 x 7 x 7
      global average                           2048
    window feature = mean of the 8 segments' 2048-d vectors (TSN's average consensus
    happens after ``new_fc``; averaging before the linear layer gives the same logits)

Bottlenecks: every conv carries a bias (FBResNet); BatchNorm eps 1e-5 (PyTorch's default).
In layers 2-4 (``BottleneckShift``) the first 1x1 conv's output goes through ``mse`` (the
long-term TDM) and ``shift`` (a learned depthwise temporal conv, kernel 3 over the 8
segments) before the 3x3 conv. ``mse``: ``b = bn1(conv1(x))`` (channels / 16), ``c =
conv2(b)`` (3x3 depthwise); forward difference ``c[t+1] - b[t]`` (zero for the last
segment), backward difference ``c[t-1] - b[t]`` (zero for the first); each difference
``d`` becomes ``bn3(conv3((d + up(bn3_smallscale2(conv3_smallscale2(avgpool2(d)))) +
bn3_smallscale4(conv3_smallscale4(d))) / 3))``, and ``x + x * (0.5 (sigmoid(fwd) - 0.5)
+ 0.5 (sigmoid(bwd) - 0.5))`` is the output. The official code's first release fed the
forward branch's ``smallscale4`` result to the backward one (MCG-NJU/TDN issue #6, fixed
later); ``legacy_backward_smallscale4=True`` reproduces that release.

Snippet (the factory's defaults, talkit's choice): frames at 30 fps; a window (snippet) of
``clip_len`` 64 frames (2.13 s) is cut into 8 segments and each segment contributes 5
consecutive frames at TDN's test-time positions (``ops/dataset.py``
``_get_test_indices``: ``tick = (64 - 5 + 1) / 8``, segment k starts at ``int(tick / 2 +
tick * k)``): frames 3-7, 11-15, 18-22, 26-30, 33-37, 41-45, 48-52, 56-60 of the window.
The reader hands the network all 64 frames and ``forward_features`` picks these 40 by
index, so a feature's timestamps are the window's own: snippet i covers ``[16 i / 30,
(16 i + 64) / 30)`` s (the frames used lie 3 frames inside either end). Windows start 16
frames (0.53 s) apart, the grid of talkit's SlowFast and CSN features. Short side 256 ->
centre crop 224, ImageNet mean/std on 0-1 RGB (``TSN.input_mean``/``input_std``).

Batches: any number N of windows; the network reshapes them into N * 8 segment images
and back, so the official "batch must be a multiple of the segment count" never reaches
the user, and a window's feature does not depend on what else is in its batch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from talkit.errors import InputError
from talkit.extractors.registry import (
    BackboneSpec,
    NetworkBackbone,
    Normalisation,
    build_unset,
    register_backbone,
    rgb_spec,
)
from talkit.extractors.weights import Weights

NUM_SEGMENTS = 8
NEW_LENGTH = 5  # consecutive frames per segment
CENTRE = NEW_LENGTH // 2
CLIP_LEN = 64
FEATURE_DIM = 2048
NUM_CLASSES = 400
STAGE_BLOCKS = (3, 4, 6, 3)  # ResNet-50
REDUCTION = 16  # mSEModule's channel reduction
IMAGENET_NORMALISATION = Normalisation(
    mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), value_range=255.0
)
LAYOUT = (
    "MCG-NJU/TDN ResNet-50 state dict under 'state_dict', keys prefixed 'module.' as "
    "saved from DataParallel (.pth.tar; module.base_model.conv1 ... layer4_bak, "
    "module.new_fc)"
)
FEATURE_DESCRIPTION = (
    "TDN layer4_bak output averaged over space per segment (the pooled 2048-d vector "
    "before the dropout and new_fc), averaged over the window's 8 segments"
)


def segment_frame_indices(
    clip_len: int = CLIP_LEN, segments: int = NUM_SEGMENTS, new_length: int = NEW_LENGTH
) -> list[int]:
    """The window's frames the network takes, segment by segment: TDN's test-time
    positions (``_get_test_indices``) on a ``clip_len``-frame window, ``new_length``
    consecutive frames from each segment's start."""
    if clip_len < segments + new_length:
        raise InputError(
            f"tdn: a window of {clip_len} frames is too short for {segments} segments of "
            f"{new_length} frames",
            hint=f"use clip_len >= {segments + new_length}",
        )
    tick = (clip_len - new_length + 1) / float(segments)
    starts = [int(tick / 2.0 + tick * k) for k in range(segments)]
    return [s + j for s in starts for j in range(new_length)]


def _conv(cin: int, cout: int, k: int, *, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=bias)


class LongTermTDM(nn.Module):
    """``mSEModule``: cross-segment feature differences gate the features (see module doc)."""

    def __init__(
        self, channels: int, num_segments: int = NUM_SEGMENTS, *, legacy: bool = False
    ) -> None:
        super().__init__()
        r = channels // REDUCTION
        self.num_segments = num_segments
        self.legacy = legacy
        self.conv1 = nn.Conv2d(channels, r, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(r)
        self.conv2 = nn.Conv2d(r, r, 3, padding=1, groups=r, bias=False)
        self.conv3 = nn.Conv2d(r, channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels)
        self.conv3_smallscale2 = nn.Conv2d(r, r, 3, padding=1, bias=False)
        self.bn3_smallscale2 = nn.BatchNorm2d(r)
        self.conv3_smallscale4 = nn.Conv2d(r, r, 3, padding=1, bias=False)
        self.bn3_smallscale4 = nn.BatchNorm2d(r)

    def _gate(self, d: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
        coarse = self.bn3_smallscale2(self.conv3_smallscale2(F.avg_pool2d(d, 2)))
        coarse = F.interpolate(coarse, size=d.shape[-2:])
        return torch.sigmoid(self.bn3(self.conv3((d + coarse + fine) / 3.0)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.bn1(self.conv1(x))
        c = self.conv2(b)
        t = self.num_segments
        b5 = b.unflatten(0, (-1, t))
        c5 = c.unflatten(0, (-1, t))
        zero = torch.zeros_like(b5[:, :1])
        fwd = torch.cat([c5[:, 1:] - b5[:, :-1], zero], dim=1).flatten(0, 1)
        bwd = torch.cat([zero, c5[:, :-1] - b5[:, 1:]], dim=1).flatten(0, 1)
        fine_fwd = self.bn3_smallscale4(self.conv3_smallscale4(fwd))
        # The first release convolved the forward branch's result again (issue #6).
        fine_bwd = self.bn3_smallscale4(self.conv3_smallscale4(fine_fwd if self.legacy else bwd))
        y = 0.5 * (self._gate(fwd, fine_fwd) - 0.5) + 0.5 * (self._gate(bwd, fine_bwd) - 0.5)
        return x + x * y


class TemporalShift(nn.Module):
    """``ShiftModule``: per channel, ``w0 x[t-1] + w1 x[t] + w2 x[t+1]`` over the segments
    (zero beyond the window), the weights being its depthwise ``Conv1d``'s."""

    def __init__(self, channels: int, num_segments: int = NUM_SEGMENTS) -> None:
        super().__init__()
        self.num_segments = num_segments
        self.conv = nn.Conv1d(channels, channels, 3, padding=1, groups=channels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x5 = x.unflatten(0, (-1, self.num_segments))  # n, t, c, h, w
        w = self.conv.weight[:, 0].t()[:, None, :, None, None]  # 3, 1, c, 1, 1
        out = x5 * w[1]
        out[:, 1:] += x5[:, :-1] * w[0]
        out[:, :-1] += x5[:, 1:] * w[2]
        return out.flatten(0, 1)


class Bottleneck(nn.Module):
    """FBResNet's bottleneck (convs with biases); with ``temporal`` its ``BottleneckShift``."""

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        *,
        temporal: bool = False,
        num_segments: int = NUM_SEGMENTS,
        legacy: bool = False,
    ) -> None:
        super().__init__()
        self.conv1 = _conv(inplanes, planes, 1)
        self.bn1 = nn.BatchNorm2d(planes)
        if temporal:
            self.mse = LongTermTDM(planes, num_segments, legacy=legacy)
            self.shift = TemporalShift(planes, num_segments)
        self.temporal = temporal
        self.conv2 = _conv(planes, planes, 3, stride=stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv(planes, planes * 4, 1)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = (
            nn.Sequential(_conv(inplanes, planes * 4, 1, stride=stride), nn.BatchNorm2d(planes * 4))
            if stride != 1 or inplanes != planes * 4
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        if self.temporal:
            out = self.shift(self.mse(out))
        out = torch.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return torch.relu_(out + identity)


def _stage(
    inplanes: int,
    planes: int,
    blocks: int,
    stride: int,
    *,
    temporal: bool = False,
    num_segments: int = NUM_SEGMENTS,
    legacy: bool = False,
) -> nn.Sequential:
    """One ResNet stage; its first block strides and projects the shortcut."""
    return nn.Sequential(
        *(
            Bottleneck(
                inplanes if b == 0 else planes * 4,
                planes,
                stride if b == 0 else 1,
                temporal=temporal,
                num_segments=num_segments,
                legacy=legacy,
            )
            for b in range(blocks)
        )
    )


class TDNBase(nn.Module):
    """``TDN_Net`` (``module.base_model``): maps (N*8, 15, H, W) segments to (N*8, 2048)."""

    def __init__(
        self,
        *,
        num_segments: int = NUM_SEGMENTS,
        stage_blocks: tuple[int, int, int, int] = STAGE_BLOCKS,
        alpha: float = 0.5,
        beta: float = 0.5,
        legacy_backward_smallscale4: bool = False,
    ) -> None:
        super().__init__()
        self.alpha, self.beta = alpha, beta
        self.conv1 = _conv(3, 64, 7, stride=2)
        self.bn1 = nn.BatchNorm2d(64)
        # The second ResNet's stem conv: unused by the forward, but in every checkpoint.
        self.conv1_temp = _conv(3, 64, 7, stride=2)
        self.conv1_5 = nn.Sequential(
            _conv(3 * (NEW_LENGTH - 1), 64, 7, stride=2, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
        )
        self.resnext_layer1 = _stage(64, 64, stage_blocks[0], 1)
        self.layer1_bak = _stage(64, 64, stage_blocks[0], 1)
        legacy = legacy_backward_smallscale4
        for i, (cin, width) in enumerate(((256, 128), (512, 256), (1024, 512))):
            stage = _stage(
                cin,
                width,
                stage_blocks[i + 1],
                2,
                temporal=True,
                num_segments=num_segments,
                legacy=legacy,
            )
            self.add_module(f"layer{i + 2}_bak", stage)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = x.unflatten(1, (NEW_LENGTH, 3))  # nt, 5, 3, h, w
        diffs = (frames[:, 1:] - frames[:, :-1]).flatten(1, 2)
        d1 = F.max_pool2d(self.conv1_5(F.avg_pool2d(diffs, 2)), 3, 2, 1)
        d2 = self.resnext_layer1(d1)
        y = torch.relu(self.bn1(self.conv1(frames[:, CENTRE])))
        y = F.max_pool2d(y, 3, 2, 1)
        y = self.alpha * y + self.beta * F.interpolate(d1, size=y.shape[-2:])
        y = self.layer1_bak(y)
        y = self.alpha * y + self.beta * F.interpolate(d2, size=y.shape[-2:])
        for stage in (self.layer2_bak, self.layer3_bak, self.layer4_bak):
            y = stage(y)
        return y.mean(dim=(2, 3))


class TSNHead(nn.Module):
    """``TSN`` (``module``): ``base_model`` and ``new_fc`` (the dropout before it has no
    parameters and is the identity at test time)."""

    def __init__(self, base_model: TDNBase, num_classes: int) -> None:
        super().__init__()
        self.base_model = base_model
        self.new_fc = nn.Linear(FEATURE_DIM, num_classes)


class TDN(nn.Module):
    """The published state dict's owner: ``module`` (DataParallel's attribute name).

    ``forward_features({"rgb": (N, 3, clip_len, H, W)}) -> {"rgb": (N, 2048)}``.
    """

    def __init__(self, module: TSNHead, *, clip_len: int = CLIP_LEN) -> None:
        super().__init__()
        self.module = module
        self.num_segments = NUM_SEGMENTS
        self.clip_len = clip_len
        self.frame_index = segment_frame_indices(clip_len)

    def segments(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, T, H, W) windows -> (N * 8, 15, H, W): each segment's 5 frames stacked
        on channels, frame-major, as TDN's data loader stacks them."""
        n, c, t, h, w = x.shape
        if t != self.clip_len:
            raise InputError(
                f"tdn: a window has {t} frames; this network was built for {self.clip_len}",
                hint="build the backbone with clip_len equal to the snippets' frame count",
            )
        picked = x.index_select(2, torch.tensor(self.frame_index, device=x.device))
        picked = picked.view(n, c, self.num_segments, NEW_LENGTH, h, w)
        return picked.permute(0, 2, 3, 1, 4, 5).reshape(n * self.num_segments, NEW_LENGTH * c, h, w)

    def forward_segments(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, T, H, W) -> (N, 8, 2048): each segment's pooled vector."""
        pooled = self.module.base_model(self.segments(x))
        return pooled.view(x.shape[0], self.num_segments, -1)

    def forward_features(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"rgb": self.forward_segments(inputs["rgb"]).mean(dim=1)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Kinetics logits (TSN's average consensus); there to show that the head loads."""
        return self.module.new_fc(self.forward_segments(x)).mean(dim=1)


def create_tdn(
    *,
    num_classes: int = NUM_CLASSES,
    clip_len: int = CLIP_LEN,
    legacy_backward_smallscale4: bool = False,
) -> TDN:
    """TDN-R50 for 8 segments (blend 0.5/0.5, as ``tdn_net`` sets for 8), eval mode,
    PyTorch's default init: load a checkpoint or call ``init_random_``."""
    base = TDNBase(legacy_backward_smallscale4=legacy_backward_smallscale4)
    return TDN(TSNHead(base, num_classes), clip_len=clip_len).eval()


def init_random_(model: TDN, seed: int) -> None:
    """Seeded random weights with sensible activation scales: He-normal convs, each
    bottleneck's last conv scaled down by the number of bottlenecks, identity BatchNorm,
    small biases, random temporal shift weights, a small random head. Never real features:
    the spec says ``random:<seed>``."""
    gen = torch.Generator().manual_seed(seed)
    blocks = [m for m in model.modules() if isinstance(m, Bottleneck)]
    gains: dict[nn.Module, float] = {b.conv3: 1.0 / len(blocks) for b in blocks}
    for b in blocks:
        if b.downsample is not None:
            gains[b.downsample[0]] = 1.0
    for m in model.modules():
        if isinstance(m, LongTermTDM):
            gains[m.conv1] = gains[m.conv2] = gains[m.conv3] = 1.0
            gains[m.conv3_smallscale2] = gains[m.conv3_smallscale4] = 1.0
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                gain = gains.get(m, 2.0)
                m.weight.normal_(0.0, math.sqrt(gain / m.weight[0].numel()), generator=gen)
                if m.bias is not None:
                    m.bias.normal_(0.0, 0.01, generator=gen)
            elif isinstance(m, nn.Conv1d):
                m.weight.normal_(0.0, math.sqrt(1.0 / 3.0), generator=gen)
            elif isinstance(m, nn.BatchNorm2d):
                m.reset_parameters()
        fc = model.module.new_fc
        fc.weight.normal_(0.0, 0.01, generator=gen)
        fc.bias.zero_()


def _unprefixed(state: Mapping[str, torch.Tensor]) -> str | None:
    """Say so when a TDN state dict was saved without DataParallel (no ``module.``): talkit
    loads the published files as they are and renames nothing."""
    if any(k.startswith("base_model.") for k in state) and not any(
        k.startswith("module.") for k in state
    ):
        return (
            "its keys lack the 'module.' prefix of the published files (saved without "
            "DataParallel); save it as {'state_dict': {'module.' + k: v}}"
        )
    return None


class TDNBackbone(NetworkBackbone):
    """TDN-R50 as a talkit backbone: one "rgb" stream, 2048-d, MCG-NJU/TDN's checkpoints
    read as they are (their ``module.`` prefix is the network's own first name)."""

    layout = LAYOUT
    strip_prefixes = ()

    def __init__(self, spec: BackboneSpec, network: TDN) -> None:
        super().__init__(spec)
        self.network = network

    def _load_state(self, stream: str, state: dict[str, torch.Tensor], source: str) -> None:
        hint = self._weights_hint("an MCG-NJU/TDN ResNet-50 checkpoint")
        self._refuse_another_layout(state, source, hint)
        # Another class count (e.g. Something-Something's 174) gets a head that fits.
        self._load_strict(state, source, hint, head="module.new_fc", describe=_unprefixed)

    def _init_random(self, seed: int) -> None:
        init_random_(self.network, seed)


WEIGHTS = (
    Weights(
        name="tdn_r50.kinetics400",
        backbone="tdn_r50",
        # The README's model zoo row "TDN-ResNet50 8x3x10" (Kinetics-400, top-1 76.6%
        # with 30 views) links this Google Drive folder; the file in it is not named in
        # the repository, so talkit looks for it under the name below (or take any path
        # with --weights tdn_r50.kinetics400=PATH).
        url="https://drive.google.com/drive/folders/1UALrg2ABFq-HGPdy8vgZ9mxqkSkuqWET",
        file_name="tdn_r50_kinetics400_8seg.pth.tar",
        licence=(
            "code Apache-2.0 (MCG-NJU/TDN); the README states no separate terms for the "
            "model zoo weights"
        ),
        layout=LAYOUT,
    ),
)


@register_backbone("tdn_r50", weights=WEIGHTS)
def tdn_r50(
    *,
    fps: float = 30.0,
    clip_len: int = CLIP_LEN,
    stride: int = 16,
    input_size: int = 224,
    resize_short: int | None = 256,
    legacy_backward_smallscale4: bool = False,
) -> TDNBackbone:
    """TDN-R50, 8 segments (Kinetics-400): a window of 64 frames at 30 fps, 5 frames from
    each of its 8 segments, 256 -> 224, ImageNet mean/std, 2048-d; a window every 16
    frames. ``input_size`` at least 33 (layer4's map must be 2 px or more for the
    long-term modules' 2x2 pool); small sizes (64) are for fast tests."""
    if math.ceil(input_size / 32) < 2:
        raise InputError(
            f"tdn_r50: input_size {input_size} is too small: the long-term TDM average-pools "
            "layer4's map (input_size / 32) by 2",
            hint="use input_size >= 33 (224 is the trained size)",
        )
    segment_frame_indices(clip_len)  # a window too short for 8 segments is refused here
    spec = rgb_spec(
        "tdn_r50",
        fps=fps,
        clip_len=clip_len,
        stride=stride,
        sampling_rate=1,
        input_size=input_size,
        resize_short=resize_short,
        normalisation=IMAGENET_NORMALISATION,
        feature_dim=FEATURE_DIM,
        feature=FEATURE_DESCRIPTION,
    )
    network = build_unset(
        lambda: create_tdn(
            clip_len=clip_len, legacy_backward_smallscale4=legacy_backward_smallscale4
        )
    )
    return TDNBackbone(spec, network)
