"""ViViT: model 1 in HF's hub layout equals transformers' ``VivitModel`` with the same weights
(both ways: our file loads into transformers, transformers' file loads into our backbone);
the factorised model 2 equals an independent functional restatement written here (tubelet
embedding as unfold + matmul, attention as einsums), with a spatial CLS per time step and
the temporal CLS as the feature; strict loading, refusals, the snippet and extraction.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from video_helpers import snippet_signatures

from talkit.datasets.synthetic.signature import write_signature_video
from talkit.errors import CheckpointError
from talkit.extractors import available, build_backbone, extract_video, get
from talkit.extractors.backbones.vivit import (
    VivitFactorised,
    VivitHF,
    create_vivit_factorised,
    create_vivit_hf,
    init_random_,
)
from talkit.extractors.checkpoints import file_sha256, identify_layout
from talkit.extractors.registry import default_options
from talkit.extractors.video import open_video
from talkit.extractors.weights import all_weights

DATA = Path(__file__).parent / "data"
TINY = {"frames": 4, "size": 32, "dim": 48, "heads": 4, "mlp": 96, "num_classes": 5}


pytestmark = pytest.mark.usefixtures("two_torch_threads")


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def _unit_scale_(model: torch.nn.Module, seed: int) -> None:
    """Weights at the scale of a trained network (linears 1/sqrt(fan-in), random biases and
    layernorms): activations of order 1, so that the GELU variant and the layernorm eps
    change the output well beyond the tests' 1e-5 (the 0.02 init leaves them near 0)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen))
                module.weight.div_(math.sqrt(module.in_features))
                module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=gen))
            elif isinstance(module, torch.nn.LayerNorm):
                module.weight.copy_(1 + 0.1 * torch.randn(module.weight.shape, generator=gen))
                module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=gen))


def _tiny_hf(seed: int = 0) -> VivitHF:
    model = create_vivit_hf(depth=2, **TINY)
    init_random_(model, seed)
    _unit_scale_(model, seed + 1)
    return model


def _tiny_factorised(seed: int = 0) -> VivitFactorised:
    model = create_vivit_factorised(spatial_depth=2, temporal_depth=2, **TINY)
    init_random_(model, seed)
    _unit_scale_(model, seed + 1)
    return model


def _clip(n: int = 2, frames: int = 4, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, frames, size, size, generator=torch.Generator().manual_seed(seed))


# -- model 1 and HF transformers -----------------------------------------------------------------


def _hf_config(transformers):  # type: ignore[no-untyped-def]
    return transformers.VivitConfig(
        image_size=32, num_frames=4, hidden_size=48, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=96, num_labels=5,
    )  # fmt: skip


def test_hf_layout_file_loads_into_transformers_with_no_key_left_and_the_same_output(
    tmp_path: Path,
) -> None:
    transformers = pytest.importorskip("transformers")
    from safetensors.torch import save_file

    ours = _tiny_hf(seed=3)
    _hf_config(transformers).save_pretrained(tmp_path)
    save_file(
        {k: v.contiguous() for k, v in ours.state_dict().items()}, tmp_path / "model.safetensors"
    )
    hf, info = transformers.VivitForVideoClassification.from_pretrained(
        tmp_path, output_loading_info=True
    )
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    assert not info["mismatched_keys"], info
    hf.eval()
    x = _clip(seed=1)
    with torch.no_grad():
        feature = ours.forward_features({"rgb": x})["rgb"]
        hidden = hf.vivit(x.transpose(1, 2)).last_hidden_state  # HF takes (N, T, C, H, W)
        assert _rel(feature, hidden[:, 0]) < 1e-5
        assert _rel(ours(x), hf(x.transpose(1, 2)).logits) < 1e-5
    assert _rel(feature[0], feature[1]) > 1e-3


def test_a_file_saved_by_transformers_loads_strictly_into_the_backbone(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    hf = transformers.VivitForVideoClassification(_hf_config(transformers)).eval()
    _unit_scale_(hf, 1)
    with torch.no_grad():  # HF initialises CLS and positions to zero: make them count
        hf.vivit.embeddings.cls_token.normal_(0, 0.5)
        hf.vivit.embeddings.position_embeddings.normal_(0, 0.5)
    hf.save_pretrained(tmp_path)  # writes the 4.x key layout, as on the hub
    path = tmp_path / "model.safetensors"
    backbone = get("vivit_b16x2_hf", input_size=32)
    backbone.network = create_vivit_hf(depth=2, **TINY)  # the tiny config, same layout
    backbone.load_checkpoint("rgb", path)
    assert backbone.spec.weights == {"rgb": f"sha256:{file_sha256(path)}"}
    x = _clip(seed=2)
    got = backbone.extract({"rgb": x})["rgb"]
    with torch.no_grad():
        ref = hf.vivit(x.transpose(1, 2)).last_hidden_state[:, 0].numpy()
    assert np.linalg.norm(got - ref) / np.linalg.norm(ref) < 1e-5


def test_full_size_model_1_is_the_hub_checkpoints_layout() -> None:
    with torch.device("meta"):
        model = create_vivit_hf()
    state = model.state_dict()
    assert len(state) == 4 + 12 * 16 + 2 + 2
    # 3136 tubelets of 32 frames x 224 px + CLS: HF's docs show last_hidden_state [1, 3137, 768]
    assert state["vivit.embeddings.position_embeddings"].shape == (1, 3137, 768)
    assert state["vivit.embeddings.patch_embeddings.projection.weight"].shape == (768, 3, 2, 16, 16)
    assert state["vivit.encoder.layer.11.intermediate.dense.weight"].shape == (3072, 768)
    assert state["vivit.encoder.layer.11.attention.output.dense.bias"].shape == (768,)
    assert state["classifier.weight"].shape == (400, 768)
    # the hub's pytorch_model.bin is 356 MB of float32
    assert sum(p.numel() for p in model.parameters()) == 88_954_000
    assert identify_layout(state) == (
        "an HF transformers ViViT checkpoint (12 layers, 4.x layout: vivit.encoder.layer.*)"
    )


# -- model 2, against a restatement written here ---------------------------------------------------


def _tubelets(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """(N, 3, T, H, W) -> (N, T/2, H/16 * W/16, D): cut 2x16x16 tubelets, flatten each
    (channel, time, row, col), multiply by the flattened kernel."""
    n, c, t, h, w = x.shape
    kt, kh, kw = weight.shape[2:]
    blocks = x.reshape(n, c, t // kt, kt, h // kh, kh, w // kw, kw)
    blocks = blocks.permute(0, 2, 4, 6, 1, 3, 5, 7).reshape(n, t // kt, (h // kh) * (w // kw), -1)
    return blocks @ weight.reshape(weight.shape[0], -1).T + bias


def _block(x: torch.Tensor, p: dict[str, torch.Tensor], heads: int) -> torch.Tensor:
    def ln(v: torch.Tensor, name: str) -> torch.Tensor:
        mu, var = v.mean(-1, keepdim=True), v.var(-1, unbiased=False, keepdim=True)
        return (v - mu) / torch.sqrt(var + 1e-6) * p[f"{name}.weight"] + p[f"{name}.bias"]

    n, length, d = x.shape
    q, k, v = (ln(x, "norm1") @ p["attn.qkv.weight"].T + p["attn.qkv.bias"]).chunk(3, dim=-1)
    q, k, v = (t.reshape(n, length, heads, d // heads) for t in (q, k, v))
    att = torch.einsum("bqhc,bkhc->bhqk", q, k) / math.sqrt(d // heads)
    out = torch.einsum("bhqk,bkhc->bqhc", att.softmax(-1), v).reshape(n, length, d)
    x = x + out @ p["attn.proj.weight"].T + p["attn.proj.bias"]
    h = ln(x, "norm2") @ p["mlp.fc1.weight"].T + p["mlp.fc1.bias"]
    h = 0.5 * h * (1 + torch.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h**3)))
    return x + h @ p["mlp.fc2.weight"].T + p["mlp.fc2.bias"]


def _encoder(
    x: torch.Tensor, state: dict[str, torch.Tensor], prefix: str, heads: int
) -> torch.Tensor:
    """CLS first, add positions, blocks, final layernorm; the CLS output."""
    cls = state[f"{prefix}.cls_token"].expand(x.shape[0], 1, -1)
    x = torch.cat([cls, x], 1) + state[f"{prefix}.pos_embed"]
    depth = len({k.split(".")[2] for k in state if k.startswith(f"{prefix}.blocks.")})
    for i in range(depth):
        sub = f"{prefix}.blocks.{i}."
        x = _block(x, {k[len(sub) :]: v for k, v in state.items() if k.startswith(sub)}, heads)
    x = F.layer_norm(
        x, x.shape[-1:], state[f"{prefix}.norm.weight"], state[f"{prefix}.norm.bias"], 1e-6
    )
    return x[:, 0]


def _restated(model: VivitFactorised, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    state = model.state_dict()
    tokens = _tubelets(
        x, state["patch_embed.projection.weight"], state["patch_embed.projection.bias"]
    )
    steps = tokens.shape[1]
    spatial = torch.stack([_encoder(tokens[:, s], state, "spatial", 4) for s in range(steps)], 1)
    return spatial, _encoder(spatial, state, "temporal", 4)


def test_tubelet_embedding_is_the_flattened_2x16x16_patches_times_the_kernel() -> None:
    model = _tiny_factorised(seed=4)
    x = _clip(seed=5)
    with torch.no_grad():
        conv = model.patch_embed(x)  # (N, D, T', H', W')
        ref = _tubelets(x, model.patch_embed.projection.weight, model.patch_embed.projection.bias)
    assert conv.shape == (2, 48, 2, 2, 2)
    assert _rel(conv.flatten(3).permute(0, 2, 3, 1), ref) < 1e-6


def test_factorised_forward_equals_a_restatement_with_a_cls_per_time_step() -> None:
    model = _tiny_factorised(seed=6)
    x = _clip(n=3, seed=7)
    with torch.no_grad():
        spatial = model.spatial_cls(x)
        feature = model.forward_features({"rgb": x})["rgb"]
        ref_spatial, ref_feature = _restated(model, x)
    assert spatial.shape == (3, 2, 48) and feature.shape == (3, 48)
    assert _rel(spatial, ref_spatial) < 1e-5
    assert _rel(feature, ref_feature) < 1e-5
    # the feature is the temporal CLS of the spatial CLS tokens (one per 2-frame time step)
    with torch.no_grad():
        assert _rel(model.temporal(spatial), feature) < 1e-6
        changed = x.clone()
        changed[:, :, 2:] = _clip(n=3, seed=8)[:, :, 2:]  # only the second tubelet's frames
        spatial2 = model.spatial_cls(changed)
    torch.testing.assert_close(spatial2[:, 0], spatial[:, 0], rtol=0, atol=0)
    assert _rel(spatial2[:, 1], spatial[:, 1]) > 1e-2


def test_full_size_factorised_model_is_vivit_b_with_4_temporal_layers() -> None:
    with torch.device("meta"):
        model = create_vivit_factorised()
    state = model.state_dict()
    assert state["spatial.pos_embed"].shape == (1, 197, 768)  # 14 x 14 patches + CLS
    assert state["temporal.pos_embed"].shape == (1, 17, 768)  # 16 time steps + CLS
    assert {k.split(".")[2] for k in state if k.startswith("spatial.blocks.")} == {
        str(i) for i in range(12)
    }
    assert {k.split(".")[2] for k in state if k.startswith("temporal.blocks.")} == {
        "0", "1", "2", "3",
    }  # fmt: skip
    assert state["spatial.blocks.0.attn.qkv.bias"].shape == (2304,)
    assert (
        identify_layout(state)
        == "a talkit factorised ViViT checkpoint (12 spatial + 4 temporal layers)"
    )


# -- the registered backbones ------------------------------------------------------------------------

FPS, FRAMES, SIZE = 30, 80, (84, 64)  # 80 frames at 30 fps: snippets start at frames 0, 16
SMALL = {"input_size": 32, "resize_short": 40}


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("vivit_videos")
    write_signature_video(folder / "a.mp4", num_frames=FRAMES, fps=FPS, size=SIZE, seed=4)
    return folder


@pytest.mark.parametrize("name", ["vivit_b16x2_hf", "vivit_b16x2"])
def test_registered_with_scenics_snippet_and_zero_centred_pixels(name: str) -> None:
    assert name in available()
    spec = get(name).spec
    assert spec.streams == {"rgb": 768} and spec.input_channels == {"rgb": 3}
    assert (spec.fps, spec.clip_len, spec.sampling_rate, spec.stride) == (30.0, 32, 2, 16)
    assert (spec.resize_short, spec.crop, spec.input_size) == (256, "center", 224)
    norm = spec.normalisation  # x / 255 * 2 - 1
    assert (norm.mean, norm.std, norm.value_range) == ((0.5,) * 3, (0.5,) * 3, 255.0)
    assert default_options(name) == {
        "fps": 30.0, "stride": 16, "sampling_rate": 2, "input_size": 224, "resize_short": 256,
    }  # fmt: skip
    store = spec.to_store_spec()
    assert (store.fps, store.clip_len, store.stride) == (15.0, 32, 8)


def test_snippets_take_every_second_frame_and_start_16_frames_apart(videos: Path) -> None:
    read = get("vivit_b16x2_hf", **SMALL).spec.snippet_spec()
    seen = snippet_signatures(videos / "a.mp4", read, start_every=16, span=64, base_fps=30)
    assert seen == [[16 * i + 2 * j for j in range(32)] for i in range(2)]


def _reference_snippets(video: Path) -> torch.Tensor:
    """Decoded frames resized (short side 40) with OpenCV, centre 32, to [-1, 1], every 2nd."""
    frames = np.stack([f.rgb for f in open_video(video).iter_frames()])
    h, w = frames.shape[1:3]
    scale = SMALL["resize_short"] / min(h, w)
    size = (round(w * scale), round(h * scale))
    frames = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_LINEAR) for f in frames])
    crop = SMALL["input_size"]
    top, left = (frames.shape[1] - crop) // 2, (frames.shape[2] - crop) // 2
    frames = frames[:, top : top + crop, left : left + crop]
    x = (frames.astype(np.float32) / np.float32(255) - np.float32(0.5)) / np.float32(0.5)
    clips = np.stack([x[s : s + 64 : 2] for s in (0, 16)])
    return torch.from_numpy(clips).permute(0, 4, 1, 2, 3).contiguous()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vivit_b16x2_hf", "vivit_b16x2"])
def test_extract_video_equals_the_bare_network_on_the_same_snippets(
    videos: Path, name: str
) -> None:
    backbone = build_backbone(name, random_weights_seed=0, **SMALL)
    feats = extract_video(videos / "a.mp4", backbone, batch_size=2)
    got = feats.streams["rgb"]
    assert got.shape == (2, 768) and got.dtype == np.float32
    np.testing.assert_allclose(feats.timestamps, [[0, 64 / 30], [16 / 30, 80 / 30]])
    assert feats.spec.weights == {"rgb": "random:0"}
    with torch.inference_mode():
        ref = backbone.network.forward_features({"rgb": _reference_snippets(videos / "a.mp4")})
    ref = ref["rgb"].numpy()
    rel = np.linalg.norm(got - ref, axis=1) / np.linalg.norm(ref, axis=1)
    assert rel.max() < 1e-5, rel
    assert np.linalg.norm(got[0] - got[1]) / np.linalg.norm(got[1]) > 1e-3


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "suffix"), [("vivit_b16x2_hf", ".safetensors"), ("vivit_b16x2", ".pt")]
)
def test_own_layout_loads_strictly(tmp_path: Path, name: str, suffix: str) -> None:
    from safetensors.torch import save_file

    source = build_backbone(name, random_weights_seed=2, **SMALL).network
    path = tmp_path / f"{name}{suffix}"
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    torch.save(state, path) if suffix == ".pt" else save_file(state, path)
    backbone = build_backbone(name, checkpoints={"rgb": path}, **SMALL)
    assert backbone.spec.weights == {"rgb": f"sha256:{file_sha256(path)}"}
    loaded = backbone.network.state_dict()
    assert list(loaded) == list(state) and all(torch.equal(loaded[k], state[k]) for k in state)


def _refusal(name: str, path: Path, layout: str | None) -> str:
    backbone = get(name, **SMALL)
    head = backbone.network.head
    with pytest.raises(CheckpointError) as info:
        backbone.load_checkpoint("rgb", path)
    text = str(info.value)
    assert "\n" not in text and info.value.exit_code == 2
    if layout is not None:
        assert f"does not fit the {name} network (expected layout: {layout}" in text
    if name == "vivit_b16x2_hf" and layout is not None:
        assert "--weights vivit_b16x2_hf.kinetics400" in (info.value.hint or "")
    assert backbone.network.head is head and backbone.spec.weights == {"rgb": "unset"}
    return text


def test_other_backbones_and_the_other_vivit_are_refused_by_layout(tmp_path: Path) -> None:
    keys = json.loads((DATA / "i3d_rgb.keys.json").read_text())["keys"]
    i3d = tmp_path / "rgb_imagenet.pt"
    torch.save({k: torch.zeros(shape) for k, shape in keys.items()}, i3d)
    text = _refusal("vivit_b16x2_hf", i3d, "HF transformers 4.x VivitForVideoClassification")
    assert "this looks like an I3D rgb checkpoint" in text

    hf_file = tmp_path / "pytorch_model.bin"
    torch.save(_tiny_hf().state_dict(), hf_file)
    text = _refusal("vivit_b16x2", hf_file, "talkit's own factorised ViViT state dict")
    assert "this looks like an HF transformers ViViT checkpoint (2 layers" in text

    fe_file = tmp_path / "factorised.pt"
    torch.save(_tiny_factorised().state_dict(), fe_file)
    text = _refusal("vivit_b16x2_hf", fe_file, "HF transformers 4.x VivitForVideoClassification")
    assert "this looks like a talkit factorised ViViT checkpoint (2 spatial + 2 temporal" in text


def test_transformers_5_renamed_files_are_named_as_such(tmp_path: Path) -> None:
    state = {
        "vivit.embeddings.cls_token": torch.zeros(1, 1, 768),
        "vivit.layers.0.attention.q_proj.weight": torch.zeros(768, 768),
    }
    path = tmp_path / "renamed.pt"
    torch.save(state, path)
    text = _refusal("vivit_b16x2_hf", path, "HF transformers 4.x")
    assert "this looks like an HF transformers 5 ViViT checkpoint" in text


def test_a_224_px_checkpoint_is_refused_by_a_smaller_model_not_interpolated(tmp_path: Path) -> None:
    path = tmp_path / "hub_shapes.pt"
    torch.save(
        {
            "vivit.embeddings.cls_token": torch.zeros(1, 1, 768),
            "vivit.embeddings.position_embeddings": torch.zeros(1, 3137, 768),
        },
        path,
    )
    text = _refusal("vivit_b16x2_hf", path, None)
    assert "vivit.embeddings.position_embeddings has 3137 positions" in text
    assert "built for 32 frames of 32 px has 65" in text
    assert "does not interpolate position embeddings" in text


def test_weights_table_points_at_the_hub_file() -> None:
    entry = all_weights()["vivit_b16x2_hf.kinetics400"]
    assert entry.url == (
        "https://huggingface.co/google/vivit-b-16x2-kinetics400/resolve/main/pytorch_model.bin"
    )
    assert entry.file_name == "pytorch_model.bin" and entry.sha256 is None
    assert "MIT" in entry.licence
    assert not [w for w in all_weights().values() if w.backbone == "vivit_b16x2"]


def test_a_fine_tuned_head_is_rebuilt_to_fit(tmp_path: Path) -> None:
    """Fine-tuned hub models (other label counts) load: the feature does not use the head."""
    file_model = create_vivit_hf(depth=2, **{**TINY, "num_classes": 3})
    init_random_(file_model, 1)
    path = tmp_path / "finetuned.bin"
    torch.save(file_model.state_dict(), path)
    backbone = get("vivit_b16x2_hf", input_size=32)
    backbone.network = create_vivit_hf(depth=2, **TINY)  # 5 classes, as built
    backbone.load_checkpoint("rgb", path)
    assert backbone.network.head.out_features == 3
    x = _clip(seed=9)
    with torch.no_grad():
        ref = file_model.forward_features({"rgb": x})["rgb"].numpy()
    np.testing.assert_allclose(backbone.extract({"rgb": x})["rgb"], ref, rtol=1e-6, atol=1e-6)


def test_a_truncated_safetensors_file_is_called_corrupt(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from talkit.extractors.checkpoints import read_state_dict

    path = tmp_path / "model.safetensors"
    save_file(_tiny_hf().state_dict(), path)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="could not be read; the file looks truncated"):
        read_state_dict(path)


def test_cli_refuses_the_hub_layout_for_the_factorised_model(
    videos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli_helpers import run_cli

    path = tmp_path / "pytorch_model.bin"
    torch.save(_tiny_hf().state_dict(), path)
    code, _, err = run_cli(
        capsys, "extract", "--videos", str(videos), "--dataset", "d",
        "--store", str(tmp_path / "s"), "--backbone", "vivit_b16x2",
        "--checkpoint", f"vivit_b16x2={path}",
    )  # fmt: skip
    text = " ".join(err.split())
    assert code == 2, err
    assert f"checkpoint {path} does not fit the vivit_b16x2 network" in text
    assert "expected layout: talkit's own factorised ViViT state dict" in text
    assert "this looks like an HF transformers ViViT checkpoint" in text
    assert "the HF hub file is ViViT model 1: --backbone vivit_b16x2_hf loads it" in text
    assert not (tmp_path / "s").exists()
