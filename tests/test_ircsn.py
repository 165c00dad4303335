"""ir-CSN-152 in the mmaction2 layout: the public checkpoint's keys, strict loading,
refusal of other layouts, and features equal to pytorchvideo's CSN with the same weights.

pytorchvideo's ``create_csn`` builds the same network as mmaction2's ``ResNet3dCSN``
(bottleneck_mode='ir') once three of its defaults are set to mmaction2's: a stem max pool
(``stem_pool=nn.MaxPool3d``; default none), BatchNorm eps 1e-3 (its builders pass 1e-5
explicitly, so a ``norm`` callable has to override it) and a global average pool in the
head (``head_pool=nn.AdaptiveAvgPool3d``; default a (1, 7, 7) average pool). Everything
else (stem 3x7x7 stride (1,2,2), 1x1x1 -> depthwise 3x3x3 -> 1x1x1 with the stride in the
depthwise conv, temporal strides (1,2,2,2), projection shortcuts, ReLU after the sum)
is the same, so the comparison below maps parameters name by name.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from pytorchvideo.models.csn import create_csn
from torch import nn

from talkit.errors import CheckpointError
from talkit.extractors.backbones.ircsn import (
    SNIPPET,
    WEIGHTS,
    IrCSN,
    create_ircsn,
    init_random_,
    ircsn_152,
    known_weights,
)
from talkit.extractors.checkpoints import file_sha256

DATA = Path(__file__).parent / "data"
ZOO_PARAMETERS = 29_703_568  # configs/recognition/csn/metafile.yml, ircsn r152


@pytest.fixture(autouse=True)
def two_threads() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def _random_model(depth: int, seed: int, num_classes: int = 400) -> IrCSN:
    """Seeded weights, with random BatchNorm statistics so that eps and every BN count."""
    model = create_ircsn(depth=depth, num_classes=num_classes)
    init_random_(model, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm3d):
                n = module.num_features
                module.weight.copy_(0.8 + 0.4 * torch.rand(n, generator=gen))
                module.bias.copy_(0.05 * torch.randn(n, generator=gen))
                module.running_mean.copy_(0.05 * torch.randn(n, generator=gen))
                module.running_var.copy_(0.5 + torch.rand(n, generator=gen))
        model.cls_head.fc_cls.bias.copy_(0.1 * torch.randn(num_classes, generator=gen))
    return model


def _decoded_batch(tmp_path: Path, *, frames: int = 24, size: int = 64) -> torch.Tensor:
    """Two 8-frame clips (sampling rate 2) of a real H.264 video, normalised as the snippet."""
    path = tmp_path / "moving.mp4"
    yy, xx = np.mgrid[0:size, 0:size]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(25))
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for t in range(frames):
            rgb = np.stack(
                [
                    (xx * 4 + t * 9) % 256,
                    (yy * 3 + t * 5) % 256,
                    ((xx + yy) * 2 + 128 * ((xx // 16 + t) % 2)) % 256,
                ],
                axis=-1,
            ).astype(np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        out.mux(stream.encode())
    with av.open(str(path)) as container:
        decoded = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    assert decoded.shape == (frames, size, size, 3)
    norm = SNIPPET["normalisation"]
    x = torch.from_numpy(decoded).float() / norm["value_range"]
    x = (x - torch.tensor(norm["mean"])) / torch.tensor(norm["std"])
    x = x.permute(3, 0, 1, 2)  # C, T, H, W
    clips = [x[:, start : start + 16 : SNIPPET["sampling_rate"]] for start in (0, 8)]
    return torch.stack(clips)


_PV_NAMES = {
    ("conv1", "conv"): "branch2.conv_a",
    ("conv1", "bn"): "branch2.norm_a",
    ("conv2", "conv"): "branch2.conv_b",
    ("conv2", "bn"): "branch2.norm_b",
    ("conv3", "conv"): "branch2.conv_c",
    ("conv3", "bn"): "branch2.norm_c",
    ("downsample", "conv"): "branch1_conv",
    ("downsample", "bn"): "branch1_norm",
}


def _pytorchvideo_key(key: str) -> str:
    """mmaction2 name -> pytorchvideo name, e.g. backbone.layer2.0.conv2.0.bn.weight ->
    blocks.2.res_blocks.0.branch2.norm_b.weight."""
    parts = key.split(".")
    if parts[0] == "cls_head":  # cls_head.fc_cls.weight -> blocks.5.proj.weight
        return f"blocks.5.proj.{parts[2]}"
    if parts[1] == "conv1":  # backbone.conv1.{conv,bn}.x -> blocks.0.{conv,norm}.x
        return f"blocks.0.{'conv' if parts[2] == 'conv' else 'norm'}.{'.'.join(parts[3:])}"
    stage, block, sub = int(parts[1].removeprefix("layer")), parts[2], parts[3]
    rest = parts[5:] if sub == "conv2" else parts[4:]  # conv2.0.conv.weight
    name = _PV_NAMES[(sub, rest[0])]
    return f"blocks.{stage}.res_blocks.{block}.{name}.{'.'.join(rest[1:])}"


def _mmaction2_bn(num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> nn.Module:
    return nn.BatchNorm3d(num_features, eps=1e-3, momentum=momentum)


def _pytorchvideo_like(model: IrCSN, depth: int, *, mmaction2_eps: bool = True) -> nn.Module:
    pv = create_csn(
        model_depth=depth,
        stem_pool=nn.MaxPool3d,
        norm=_mmaction2_bn if mmaction2_eps else nn.BatchNorm3d,
        head_pool=nn.AdaptiveAvgPool3d,
    ).eval()
    ours = model.state_dict()
    mapped = {_pytorchvideo_key(k): v for k, v in ours.items()}
    assert len(mapped) == len(ours)  # the mapping is one to one ...
    assert set(mapped) == set(pv.state_dict())  # ... and covers every pytorchvideo key
    pv.load_state_dict(mapped, strict=True)
    return pv


def _pytorchvideo_outputs(pv: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """pytorchvideo's pooled vector before the projection (blocks 0-4, then the head's
    pool), and its logits (the whole head on the same trunk output)."""
    for block in pv.blocks[:5]:
        x = block(x)
    return pv.blocks[5].pool(x).flatten(1), pv.blocks[5](x)


def test_state_dict_is_the_mmaction2_ircsn152_layout() -> None:
    expected = json.loads((DATA / "ircsn152_keys.json").read_text())
    model = ircsn_152()
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert ours == expected["keys"]
    assert len(ours) == expected["num_keys"] == 932
    assert sum(p.numel() for p in model.parameters()) == ZOO_PARAMETERS
    dw = model.state_dict()["backbone.layer3.35.conv2.0.conv.weight"]
    assert list(dw.shape) == [256, 1, 3, 3, 3]  # depthwise: groups = channels


@pytest.mark.slow
def test_shapes_through_depth_152() -> None:
    model = _random_model(152, seed=3)
    x = torch.randn(1, 3, 4, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        layer4 = model.backbone(x)
        features = model.forward_features(x)
        logits = model(x)
    # temporal strides 1,2,2,2 after a stride-1 stem: 4 frames -> 1; 32 px -> 1
    assert layer4.shape == (1, 2048, 1, 1, 1)
    assert features.shape == (1, 2048) and logits.shape == (1, 400)
    assert torch.isfinite(features).all() and features.abs().max() > 0
    torch.testing.assert_close(features, layer4.flatten(1), rtol=0, atol=0)


@pytest.mark.slow
@pytest.mark.parametrize("depth", [50])
def test_features_equal_pytorchvideo_csn_with_the_same_weights(tmp_path: Path, depth: int) -> None:
    x = _decoded_batch(tmp_path)
    model = _random_model(depth, seed=7)
    pv = _pytorchvideo_like(model, depth)
    with torch.no_grad():
        ours = model.forward_features(x)
        theirs, pv_logits = _pytorchvideo_outputs(pv, x)
        logits = model.forward_head(ours)
    assert ours.shape == (2, 2048)
    assert _rel(ours, theirs) < 1e-5
    assert _rel(logits, pv_logits) < 1e-5
    assert _rel(ours[0], ours[1]) > 1e-3  # the two clips differ: the batch carries content

    # pytorchvideo's own BatchNorm eps (1e-5) is not mmaction2's (1e-3): visibly different
    pv_default_eps = _pytorchvideo_like(model, depth, mmaction2_eps=False)
    with torch.no_grad():
        assert _rel(_pytorchvideo_outputs(pv_default_eps, x)[0], ours) > 1e-4


def _save_public_layout(model: IrCSN, path: Path) -> None:
    """As OpenMMLab publishes a checkpoint: meta next to the recogniser's state dict."""
    meta = {"mmcv_version": "1.0.5", "time": "Mon Aug  3 00:00:00 2020", "epoch": 58}
    torch.save({"meta": meta, "state_dict": model.state_dict()}, path)


@pytest.mark.slow
def test_public_layout_checkpoint_loads_strictly(tmp_path: Path) -> None:
    source = _random_model(152, seed=11)
    path = tmp_path / "ircsn_ig65m_pretrained_r152_32x2x1_58e_kinetics400_rgb.pth"
    _save_public_layout(source, path)

    model = ircsn_152()
    digest = model.load_checkpoint(path)
    assert digest == file_sha256(path)
    assert not model.training
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    x = torch.randn(1, 3, 4, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(model(x), source(x), rtol=0, atol=0)


@pytest.mark.slow
def test_head_for_another_class_count_is_rebuilt_to_fit(tmp_path: Path) -> None:
    path = tmp_path / "ircsn_200.pth"
    _save_public_layout(_random_model(152, seed=5, num_classes=200), path)
    model = ircsn_152()
    model.load_checkpoint(path)
    assert model.cls_head.fc_cls.weight.shape == (200, 2048)


def _refusal(model: IrCSN, path: Path) -> str:
    with pytest.raises(CheckpointError) as info:
        model.load_checkpoint(path)
    text = str(info.value)
    assert "\n" not in text
    assert info.value.exit_code == 2
    assert "mmaction2 ir-CSN layout" in text  # names the layout it expected
    return text


def test_pytorchvideo_csn_checkpoint_is_refused(tmp_path: Path) -> None:
    pv = create_csn(model_depth=101, stem_pool=nn.MaxPool3d, head_pool_kernel_size=(4, 7, 7))
    path = tmp_path / "CSN_32x2_R101.pyth"
    torch.save({"model_state": pv.state_dict(), "epoch": 1}, path)
    text = _refusal(ircsn_152(), path)
    assert "pytorchvideo checkpoint (blocks.* keys" in text


def test_i3d_checkpoint_is_refused(tmp_path: Path) -> None:
    keys = json.loads((DATA / "i3d_rgb.keys.json").read_text())["keys"]
    path = tmp_path / "rgb_imagenet.pt"
    torch.save({k: torch.zeros(shape) for k, shape in keys.items()}, path)
    text = _refusal(ircsn_152(), path)
    assert "I3D checkpoint (piergiaj/pytorch-i3d layout)" in text


def test_other_depth_and_backbone_only_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "ircsn_r50.pth"
    _save_public_layout(create_ircsn(depth=50, num_classes=200), path)
    model = ircsn_152()
    assert "this is an ir-CSN-50 checkpoint" in _refusal(model, path)
    assert model.cls_head.fc_cls.out_features == 400  # a refused file changes nothing

    backbone_only = tmp_path / "ircsn_from_scratch_r152_ig65m.pth"
    torch.save({"state_dict": ircsn_152().backbone.state_dict()}, backbone_only)
    assert "backbone-only ResNet3d file" in _refusal(ircsn_152(), backbone_only)


def test_weights_table_knows_the_public_file_by_its_hash_prefix() -> None:
    entry = WEIGHTS["ircsn_152.ig65m_kinetics400"]
    assert entry["url"].endswith("/" + entry["file_name"])
    assert entry["file_name"].endswith(f"-{entry['sha256_prefix']}.pth")
    assert known_weights(entry["sha256_prefix"] + "0" * 56) == "ircsn_152.ig65m_kinetics400"
    assert known_weights("0" * 64) is None
