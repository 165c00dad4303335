"""ir-CSN-152 (Tran, Wang, Torresani, Feiszli, ICCV 2019) in the mmaction2 checkpoint layout.

The CSN of ActivityNet/HACS challenge features (and of LGBM-Net's ensemble) is
interaction-reduced CSN-152, pretrained on IG-65M and fine-tuned on Kinetics-400 by
mmaction2; registered as the ``ircsn_152`` backbone. Written for talkit: module and
parameter names follow mmaction2's
``Recognizer3D(ResNet3dCSN, I3DHead)`` state dict exactly (``backbone.conv1.conv.weight``,
``backbone.layer3.35.conv2.0.bn.running_var``, ``cls_head.fc_cls.bias``, ...), so the
public ``.pth`` files (``torch.load(f)["state_dict"]``, next to ``meta``) load with
``strict=True`` and no conversion. ``tests/data/ircsn152_keys.json`` lists every key and
shape, and ``tests/data/make_ircsn152_keys.py`` says which mmaction2 lines each comes from.

What mmaction2 builds (``ResNet3dCSN(depth=152, bottleneck_mode='ir', with_pool2=False)``
with its defaults, ``resnet3d.py`` and ``resnet3d_csn.py``):

- every conv is a ``ConvModule``: bias-free ``conv`` -> ``bn`` (BatchNorm3d, eps 1e-3,
  momentum 0.1) -> ReLU unless stated otherwise;
- "pytorch" style: a stage's first block strides in its depthwise conv2, not in conv1;
- the shortcut projection (``downsample``: 1x1x1 conv + bn, no ReLU) exists in the first
  block of every stage, with the block's temporal and spatial stride;
- ReLU after the residual sum.

Data path (N x 3 x 32 x 224 x 224, the snippet below)::

    backbone.conv1    3x7x7 conv, stride (1,2,2), pad (1,3,3), 64 ch   -> 64 x 32x112x112
    backbone.maxpool  1x3x3 max, stride (1,2,2), pad (0,1,1)           -> 64 x 32x56x56
    backbone.layer1   3 blocks, stride t1 s1                           -> 256 x 32x56x56
    backbone.layer2   8 blocks, stride t2 s2                           -> 512 x 16x28x28
    backbone.layer3  36 blocks, stride t2 s2                           -> 1024 x 8x14x14
    backbone.layer4   3 blocks, stride t2 s2                           -> 2048 x 4x7x7
    cls_head.avg_pool global average over (T, H, W)                    -> 2048 = the feature
    cls_head.fc_cls   linear to the 400 Kinetics classes (kept so checkpoints load)

    a block (ir bottleneck, width w = 64 * 2**stage, out 4w):
      x -> conv1: 1x1x1 conv to w, bn, relu
        -> conv2.0: 3x3x3 depthwise conv (groups = w), stride (t,s,s), pad 1, bn, relu
        -> conv3: 1x1x1 conv to 4w, bn                      -+-> relu
      x -> downsample: 1x1x1 conv to 4w, stride (t,s,s), bn -+   (identity in later blocks)

mmaction2's test-time dropout (``I3DHead.dropout``, p=0.5) is the identity in eval mode and
has no parameters, so it is not built here.

Snippet (the factory's defaults): as mmaction2's
``ircsn_ig65m_pretrained_r152_32x2x1_58e_kinetics400_rgb.py`` feeds the network:
``SampleFrames(clip_len=32, frame_interval=2)``, ``Resize(scale=(-1, 256))``, the val
pipeline's ``CenterCrop(224)``, ``img_norm_cfg`` (ImageNet mean/std in 0-255 units, RGB
order). 30 fps and a snippet every 16 frames are talkit's choices: mmaction2 samples the
decoded frames at their native rate (Kinetics is mostly 30 fps), and a feature every 16
frames is the usual TAL grid (SlowFast's and CSN-R101's here).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from talkit.extractors.registry import (
    BackboneSpec,
    NetworkBackbone,
    Normalisation,
    build_unset,
    register_backbone,
    rgb_spec,
)
from talkit.extractors.weights import Weights

CLIP_LEN = 32
FEATURE_DIM = 2048
NUM_CLASSES = 400
BN_EPS = 1e-3  # ResNet3dCSN's norm_cfg=dict(type='BN3d', requires_grad=True, eps=1e-3)
STAGE_BLOCKS: dict[int, tuple[int, int, int, int]] = {
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}
# img_norm_cfg of the config: on 0-255 RGB values, so value_range 1.
MMACTION2_NORMALISATION = Normalisation(
    mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375), value_range=1.0
)
LAYOUT = (
    "mmaction2 ir-CSN-152 state dict under 'state_dict', next to 'meta' (.pth; "
    "backbone.conv1 ... backbone.layer4, cls_head.fc_cls)"
)
FEATURE_DESCRIPTION = (
    "ir-CSN backbone.layer4 output averaged over time and space (cls_head.avg_pool), "
    "before cls_head.fc_cls"
)


class ConvBN(nn.Module):
    """mmcv's ``ConvModule`` as ResNet3d uses it: bias-free conv, BatchNorm, optional ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int, int],
        *,
        stride: int | tuple[int, int, int] = 1,
        padding: int | tuple[int, int, int] = 0,
        groups: int = 1,
        relu: bool = True,
        norm_eps: float = BN_EPS,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv3d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            groups=groups,
            bias=False,
        )
        self.bn = nn.BatchNorm3d(out_channels, eps=norm_eps)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        return torch.relu_(x) if self.relu else x


class IrBottleneck(nn.Module):
    """Interaction-reduced bottleneck: 1x1x1 -> 3x3x3 depthwise (strided) -> 1x1x1."""

    def __init__(
        self,
        in_channels: int,
        width: int,
        *,
        temporal_stride: int = 1,
        spatial_stride: int = 1,
        norm_eps: float = BN_EPS,
    ) -> None:
        super().__init__()
        out_channels = 4 * width
        stride = (temporal_stride, spatial_stride, spatial_stride)
        self.conv1 = ConvBN(in_channels, width, 1, norm_eps=norm_eps)
        # mmaction2 wraps conv2 in an nn.Sequential (ip-CSN puts a 1x1x1 conv in front),
        # hence the ".0" in its keys.
        self.conv2 = nn.Sequential(
            ConvBN(width, width, 3, stride=stride, padding=1, groups=width, norm_eps=norm_eps)
        )
        self.conv3 = ConvBN(width, out_channels, 1, relu=False, norm_eps=norm_eps)
        self.downsample = (
            ConvBN(in_channels, out_channels, 1, stride=stride, relu=False, norm_eps=norm_eps)
            if spatial_stride != 1 or in_channels != out_channels
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        return torch.relu_(self.conv3(self.conv2(self.conv1(x))) + identity)


class ResNet3dCSN(nn.Module):
    """Stem and four stages; named as mmaction2's ``ResNet3dCSN`` (``backbone.*``)."""

    def __init__(
        self,
        *,
        depth: int = 152,
        in_channels: int = 3,
        base_channels: int = 64,
        stem_kernel: tuple[int, int, int] = (3, 7, 7),
        stem_stride_t: int = 1,
        pool_stride_t: int = 1,
        temporal_strides: tuple[int, int, int, int] = (1, 2, 2, 2),
        spatial_strides: tuple[int, int, int, int] = (1, 2, 2, 2),
        norm_eps: float = BN_EPS,
    ) -> None:
        super().__init__()
        if depth not in STAGE_BLOCKS:
            raise ValueError(f"ir-CSN depth must be one of {sorted(STAGE_BLOCKS)}, got {depth}")
        self.conv1 = ConvBN(
            in_channels,
            base_channels,
            stem_kernel,
            stride=(stem_stride_t, 2, 2),
            padding=tuple((k - 1) // 2 for k in stem_kernel),
            norm_eps=norm_eps,
        )
        self.maxpool = nn.MaxPool3d((1, 3, 3), stride=(pool_stride_t, 2, 2), padding=(0, 1, 1))
        channels = base_channels
        for i, blocks in enumerate(STAGE_BLOCKS[depth]):
            width = base_channels * 2**i
            layer = []
            for b in range(blocks):
                first = b == 0
                layer.append(
                    IrBottleneck(
                        channels,
                        width,
                        temporal_stride=temporal_strides[i] if first else 1,
                        spatial_stride=spatial_strides[i] if first else 1,
                        norm_eps=norm_eps,
                    )
                )
                channels = 4 * width
            self.add_module(f"layer{i + 1}", nn.Sequential(*layer))
        self.out_channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class ClsHead(nn.Module):
    """mmaction2's ``I3DHead`` at test time: global average pool, then ``fc_cls``."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool3d((1, 1, 1))
        self.fc_cls = nn.Linear(in_channels, num_classes)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        return self.avg_pool(x).flatten(1)


class IrCSN(nn.Module):
    """``backbone`` + ``cls_head``, as mmaction2's ``Recognizer3D`` names them."""

    def __init__(self, backbone: ResNet3dCSN, cls_head: ClsHead) -> None:
        super().__init__()
        self.backbone = backbone
        self.cls_head = cls_head

    def forward_features(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{"rgb": (N, 3, T, H, W)}`` normalised frames -> ``{"rgb": (N, 2048)}``, the
        pooled layer4 features (the backbones' stream contract)."""
        return {"rgb": self.cls_head.pool(self.backbone(inputs["rgb"]))}

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.cls_head.fc_cls(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Kinetics logits of (N, 3, T, H, W) frames; only there to show that a
        checkpoint's head loads."""
        return self.forward_head(self.forward_features({"rgb": x})["rgb"])


def create_ircsn(
    *,
    depth: int = 152,
    num_classes: int = NUM_CLASSES,
    in_channels: int = 3,
    base_channels: int = 64,
    stem_kernel: tuple[int, int, int] = (3, 7, 7),
    stem_stride_t: int = 1,
    pool_stride_t: int = 1,
    temporal_strides: tuple[int, int, int, int] = (1, 2, 2, 2),
    spatial_strides: tuple[int, int, int, int] = (1, 2, 2, 2),
    norm_eps: float = BN_EPS,
) -> IrCSN:
    """Build an ir-CSN; the defaults are mmaction2's ``ResNet3dCSN`` + ``I3DHead``.

    ``depth`` 50/101/152 sets the blocks per stage ((3,4,6,3), (3,4,23,3), (3,8,36,3)).
    The network comes in eval mode with PyTorch's default init: load a checkpoint or call
    ``init_random_``.
    """
    backbone = ResNet3dCSN(
        depth=depth,
        in_channels=in_channels,
        base_channels=base_channels,
        stem_kernel=stem_kernel,
        stem_stride_t=stem_stride_t,
        pool_stride_t=pool_stride_t,
        temporal_strides=temporal_strides,
        spatial_strides=spatial_strides,
        norm_eps=norm_eps,
    )
    return IrCSN(backbone, ClsHead(backbone.out_channels, num_classes)).eval()


def init_random_(model: IrCSN, seed: int) -> None:
    """Seeded random weights whose activations keep a sensible scale through 50 blocks.

    He-normal convs before a ReLU, unit-gain shortcut projections, and each block's last
    conv scaled down by the number of blocks so that the residual sums do not blow up;
    identity BatchNorm; a small random head. Never real features: the spec says
    ``random:<seed>``.
    """
    gen = torch.Generator().manual_seed(seed)
    blocks = [m for m in model.modules() if isinstance(m, IrBottleneck)]
    gains: dict[ConvBN, float] = {b.conv3: 1.0 / len(blocks) for b in blocks}
    gains.update({b.downsample: 1.0 for b in blocks if b.downsample is not None})
    with torch.no_grad():
        for module in model.modules():
            if not isinstance(module, ConvBN):
                continue
            weight = module.conv.weight
            gain = gains.get(module, 2.0)
            weight.normal_(0.0, math.sqrt(gain / weight[0].numel()), generator=gen)
            module.bn.reset_parameters()  # weight 1, bias 0, mean 0, var 1, count 0
        fc = model.cls_head.fc_cls
        fc.weight.normal_(0.0, 0.01, generator=gen)
        fc.bias.zero_()


class IrCSNBackbone(NetworkBackbone):
    """ir-CSN-152 as a talkit backbone: one "rgb" stream, 2048-d, mmaction2's checkpoints."""

    layout = LAYOUT

    def __init__(self, spec: BackboneSpec, network: IrCSN) -> None:
        super().__init__(spec)
        self.network = network

    def _load_state(self, stream: str, state: dict[str, torch.Tensor], source: str) -> None:
        hint = self._weights_hint("an mmaction2 ir-CSN-152 checkpoint (.pth)")
        self._refuse_another_layout(state, source, hint)
        self._load_strict(state, source, hint, head="cls_head.fc_cls")

    def _init_random(self, seed: int) -> None:
        init_random_(self.network, seed)


_ZOO = "https://download.openmmlab.com/mmaction/recognition/csn"
_IG65M_K400 = "ircsn_ig65m_pretrained_r152_32x2x1_58e_kinetics400_rgb"
# OpenMMLab names a published file "<name>_<date>-<first 8 hex of its sha256>.pth"
# (tools/publish_model.py): that prefix is all that is known of its hash until someone
# hashes the downloaded file. Trained by mmaction2 0.x's
# configs/recognition/csn/<_IG65M_K400>.py (top-1 80.14 on Kinetics-400 in its zoo).
_IG65M_K400_PREFIX = "fc66ce8d"
WEIGHTS = (
    Weights(
        name="ircsn_152.ig65m_kinetics400",
        backbone="ircsn_152",
        url=f"{_ZOO}/{_IG65M_K400}/{_IG65M_K400}_20200803-{_IG65M_K400_PREFIX}.pth",
        file_name=f"{_IG65M_K400}_20200803-{_IG65M_K400_PREFIX}.pth",
        sha256_prefix=_IG65M_K400_PREFIX,
        licence=(
            "code Apache-2.0 (mmaction2); the mmaction2 model zoo states no licence for the "
            "weights; IG-65M pretraining from facebookresearch/VMZ"
        ),
        layout=LAYOUT,
    ),
)


@register_backbone("ircsn_152", weights=WEIGHTS)
def ircsn_152(
    *,
    fps: float = 30.0,
    stride: int = 16,
    sampling_rate: int = 2,
    input_size: int = 224,
    resize_short: int | None = 256,
) -> IrCSNBackbone:
    """ir-CSN-152 32x2 (IG-65M + Kinetics-400, mmaction2): 32 frames at rate 2 from 30 fps,
    short side 256 -> centre 224, ImageNet mean/std on 0-255 RGB, 2048-d."""
    spec = rgb_spec(
        "ircsn_152",
        fps=fps,
        clip_len=CLIP_LEN,
        stride=stride,
        sampling_rate=sampling_rate,
        input_size=input_size,
        resize_short=resize_short,
        normalisation=MMACTION2_NORMALISATION,
        feature_dim=FEATURE_DIM,
        feature=FEATURE_DESCRIPTION,
    )
    return IrCSNBackbone(spec, build_unset(lambda: create_ircsn(depth=152)))
