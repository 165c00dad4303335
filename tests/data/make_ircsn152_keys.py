"""Write ircsn152_keys.json: every state-dict key and shape of the mmaction2 ir-CSN-152.

The list is generated from talkit's model (``talkit.extractors.backbones.ircsn``) and
checked here against an independent derivation, written from mmaction2's code (read at
open-mmlab/mmaction2, 0.x branch, which made the 2020 checkpoints; the 1.x files build the
same modules):

- configs/recognition/csn/ircsn_ig65m_pretrained_r152_32x2x1_58e_kinetics400_rgb.py:
  ``Recognizer3D`` with ``backbone=ResNet3dCSN(depth=152, bottleneck_mode='ir',
  with_pool2=False, pretrained2d=False)`` and ``cls_head=I3DHead(num_classes=400,
  in_channels=2048)``; the recogniser's attributes ``backbone`` and ``cls_head`` give the
  key prefixes.
- mmaction/models/backbones/resnet3d_csn.py, ``ResNet3dCSN.__init__``: arch_settings
  ``152: (CSNBottleneck3d, (3, 8, 36, 3))``, defaults ``conv1_kernel=(3, 7, 7)``,
  ``temporal_strides=(1, 2, 2, 2)``, ``inflate_style='3x3x3'``, BN3d eps 1e-3.
- resnet3d_csn.py, ``CSNBottleneck3d.__init__``: for 'ir' the list ``conv2`` holds only the
  depthwise ``ConvModule(planes, planes, conv2_kernel_size, ..., groups=planes)`` and
  ``self.conv2 = nn.Sequential(*conv2)``: keys ``conv2.0.conv`` / ``conv2.0.bn``.
- mmaction/models/backbones/resnet3d.py, ``ResNet3d._make_stem_layer``: ``self.conv1 =
  ConvModule(in_channels, base_channels=64, kernel_size=conv1_kernel, ...)``, then
  ``maxpool`` and ``pool2`` (parameter-free).
- resnet3d.py, ``Bottleneck3d.__init__`` ('3x3x3'): ``conv1`` = 1x1x1 ConvModule(inplanes,
  planes), ``conv2`` = 3x3x3 ConvModule(planes, planes), ``conv3`` = 1x1x1
  ConvModule(planes, planes * 4); ``expansion = 4``.
- resnet3d.py, ``ResNet3d.__init__`` / ``make_res_layer``: stage i has planes 64 * 2**i,
  modules ``layer{i+1}.{j}``; ``downsample`` = 1x1x1 ConvModule(inplanes, planes * 4) in
  block 0 only, when ``spatial_stride != 1 or inplanes != planes * expansion``.
- mmcv's ConvModule names its submodules ``conv`` (bias-free when followed by a norm) and
  ``bn`` (the BatchNorm abbreviation); a BatchNorm3d has weight, bias, running_mean,
  running_var and num_batches_tracked.
- mmaction/models/heads/i3d_head.py: ``self.fc_cls = nn.Linear(in_channels,
  num_classes)``; ``avg_pool`` and ``dropout`` have no parameters.

The mmaction2 model zoo (configs/recognition/csn/metafile.yml) gives the recogniser
29,703,568 parameters, which ``main`` checks too.

Run from the repository root: ``python tests/data/make_ircsn152_keys.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

from talkit.extractors.backbones.ircsn import create_ircsn

OUT = Path(__file__).with_name("ircsn152_keys.json")
ZOO_PARAMETERS = 29_703_568
BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def derived_from_mmaction2() -> dict[str, list[int]]:
    """The key layout as mmaction2's code builds it (see the module docstring)."""
    keys: dict[str, list[int]] = {}

    def conv_module(name: str, c_in: int, c_out: int, kernel: tuple[int, int, int], groups=1):
        keys[f"{name}.conv.weight"] = [c_out, c_in // groups, *kernel]
        for k in BN_KEYS:
            keys[f"{name}.bn.{k}"] = [] if k == "num_batches_tracked" else [c_out]

    conv_module("backbone.conv1", 3, 64, (3, 7, 7))
    inplanes = 64
    for i, blocks in enumerate((3, 8, 36, 3)):
        planes = 64 * 2**i
        spatial_stride = (1, 2, 2, 2)[i]
        for j in range(blocks):
            prefix = f"backbone.layer{i + 1}.{j}"
            conv_module(f"{prefix}.conv1", inplanes, planes, (1, 1, 1))
            conv_module(f"{prefix}.conv2.0", planes, planes, (3, 3, 3), groups=planes)
            conv_module(f"{prefix}.conv3", planes, planes * 4, (1, 1, 1))
            if j == 0 and (spatial_stride != 1 or inplanes != planes * 4):
                conv_module(f"{prefix}.downsample", inplanes, planes * 4, (1, 1, 1))
            inplanes = planes * 4
    keys["cls_head.fc_cls.weight"] = [400, 2048]
    keys["cls_head.fc_cls.bias"] = [400]
    return keys


def main() -> None:
    model = create_ircsn(depth=152)
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    derived = derived_from_mmaction2()
    if ours != derived:
        missing = sorted(set(derived) - set(ours))[:5]
        extra = sorted(set(ours) - set(derived))[:5]
        wrong = [k for k in ours if k in derived and ours[k] != derived[k]][:5]
        raise SystemExit(f"layout differs: missing {missing}, extra {extra}, wrong {wrong}")
    if list(ours) != list(derived):
        raise SystemExit("same keys, different order from mmaction2's module order")
    params = sum(p.numel() for p in model.parameters())
    if params != ZOO_PARAMETERS:
        raise SystemExit(f"{params} parameters, the mmaction2 zoo says {ZOO_PARAMETERS}")
    doc = {
        "source": (
            "mmaction2 Recognizer3D(ResNet3dCSN(depth=152, bottleneck_mode='ir', "
            "with_pool2=False), I3DHead(num_classes=400, in_channels=2048)) state_dict "
            "(ircsn_ig65m_pretrained_r152_32x2x1_58e_kinetics400_rgb_20200803-fc66ce8d.pth "
            "layout, under checkpoint['state_dict'])"
        ),
        "num_keys": len(ours),
        "num_parameters": params,
        "keys": ours,
    }
    OUT.write_text(json.dumps(doc, indent=0) + "\n")
    print(f"wrote {OUT} ({len(ours)} keys, {params} parameters)")


if __name__ == "__main__":
    main()
