"""extract_video: snippet counts and times, two streams, batching, weights, short videos."""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from talkit.datasets.synthetic.signature import write_signature_video
from talkit.errors import CheckpointError, InputError
from talkit.extractors import ShortVideoWarning, build_backbone, extract_video
from talkit.extractors.flow import FlowComputer
from talkit.extractors.preprocess import Preprocess
from talkit.extractors.registry import get
from talkit.extractors.sampling import SnippetBatch

SMALL = {"input_size": 32, "resize_short": None}  # tiny frames keep I3D and TV-L1 fast


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    root = tmp_path_factory.mktemp("videos")
    out = {}
    for n in (10, 16, 31, 40, 48):
        out[n] = root / f"sig{n}.mp4"
        write_signature_video(out[n], num_frames=n, fps=25, size=(48, 32), seed=n)
    return out


@pytest.mark.parametrize("n", [16, 31, 48])
def test_snippet_count_and_timestamps_follow_the_i3d_convention(
    n: int, videos: dict[int, Path]
) -> None:
    res = extract_video(videos[n], streams=("rgb",), random_weights_seed=0, **SMALL)
    t = (n - 16) // 16 + 1
    assert res.streams["rgb"].shape == (t, 1024)
    assert res.streams["rgb"].dtype == np.float32
    expected = np.array([[16 * i / 25, (16 * i + 16) / 25] for i in range(t)])
    np.testing.assert_allclose(res.timestamps, expected, rtol=0, atol=1e-12)
    assert res.meta["num_frames"] == n and res.num_snippets == t
    assert res.spec.weights == {"rgb": "random:0"} and res.spec.is_random


@pytest.mark.slow
def test_two_streams_are_deterministic_and_independent_of_batch_size(
    videos: dict[int, Path],
) -> None:
    kw = dict(random_weights_seed=3, **SMALL)
    by8 = extract_video(videos[40], batch_size=8, **kw)
    by1 = extract_video(videos[40], batch_size=1, **kw)
    again = extract_video(videos[40], batch_size=8, **kw)
    assert set(by8.streams) == {"rgb", "flow"}
    for stream in ("rgb", "flow"):
        assert by8.streams[stream].shape == (2, 1024)
        np.testing.assert_allclose(by1.streams[stream], by8.streams[stream], rtol=0, atol=1e-5)
        np.testing.assert_array_equal(again.streams[stream], by8.streams[stream])
    assert by8.joint().shape == (2, 2048)
    assert not np.allclose(by8.streams["rgb"], by8.streams["flow"])
    assert by8.spec.flow is not None and by8.spec.flow.method == "tvl1"
    assert by8.spec.weights == {"rgb": "random:3", "flow": "random:3"}


def test_short_video_gives_zero_snippets_and_a_warning(videos: dict[int, Path]) -> None:
    with pytest.warns(ShortVideoWarning, match=r"10 frame\(s\) at 25 fps, fewer than the 16"):
        res = extract_video(videos[10], random_weights_seed=0, **SMALL)
    assert res.streams["rgb"].shape == (0, 1024) and res.streams["flow"].shape == (0, 1024)
    assert res.timestamps.shape == (0, 2)
    assert res.meta["warnings"] and "no features" in res.meta["warnings"][0]


def test_weights_are_required_and_recorded(videos: dict[int, Path], tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no weights for stream"):
        extract_video(videos[16], streams=("rgb",), **SMALL)
    model = get("i3d", streams=("rgb",))
    model.random_weights(11)
    ckpt = tmp_path / "rgb_imagenet.pt"
    torch.save(model.models["rgb"].state_dict(), ckpt)
    res = extract_video(videos[16], checkpoints={"rgb": ckpt}, streams=("rgb",), **SMALL)
    assert res.spec.weights["rgb"].startswith("sha256:") and not res.spec.is_random
    seeded = extract_video(videos[16], streams=("rgb",), random_weights_seed=11, **SMALL)
    np.testing.assert_array_equal(res.streams["rgb"], seeded.streams["rgb"])
    with pytest.raises(InputError, match="either checkpoints or random_weights_seed"):
        extract_video(videos[16], checkpoints={"rgb": ckpt}, random_weights_seed=1, **SMALL)
    with pytest.raises(InputError, match=r"stream\(s\) flow that"):
        extract_video(videos[16], checkpoints={"flow": ckpt}, streams=("rgb",), **SMALL)


def test_a_built_backbone_is_reused_and_not_silently_reconfigured(
    videos: dict[int, Path],
) -> None:
    model = build_backbone("i3d", streams=("rgb",), random_weights_seed=5, **SMALL)
    a = extract_video(videos[16], model)
    b = extract_video(videos[31], model)
    assert a.num_snippets == 1 and b.num_snippets == 1
    with pytest.raises(InputError, match="built backbone and also input_size"):
        extract_video(videos[16], model, input_size=64)


def _moving_frames(n: int, dx: float, size: int = 40) -> np.ndarray:
    rng = np.random.default_rng(0)
    big = cv2.GaussianBlur(rng.random((size + 64, size + 64)).astype(np.float32), (0, 0), 2.0)
    big = (big - big.min()) / (big.max() - big.min()) * 255
    frames = []
    for k in range(n):
        m = np.float32([[1, 0, -32 + dx * k], [0, 1, -32]])
        grey = np.rint(cv2.warpAffine(big, m, (size, size), flags=cv2.INTER_LINEAR))
        frames.append(np.repeat(grey.astype(np.uint8)[..., None], 3, axis=2))
    return np.stack(frames)


def test_network_inputs_are_cropped_normalised_rgb_and_rescaled_flow() -> None:
    spec = get("i3d", input_size=24, resize_short=40).spec
    frames = _moving_frames(17, dx=2.0)  # one snippet reads 17 frames for its 16 flows
    sources = np.arange(17)[None].copy()
    sources[0, 16] = 15  # the video ends: the last frame repeats, its flow is zero
    frames[16] = frames[15]
    batch = SnippetBatch(frames[None], np.array([0]), np.array([0.0]), np.array([0.64]), sources)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        inputs = Preprocess(spec, FlowComputer(spec.flow))(batch, 1)
    rgb, flow = inputs["rgb"], inputs["flow"]
    assert rgb.shape == (1, 3, 16, 24, 24) and flow.shape == (1, 2, 16, 24, 24)
    crop = frames[:16, 8:32, 8:32].astype(np.float32)
    expected = torch.from_numpy((crop / 255.0) * 2.0 - 1.0).permute(3, 0, 1, 2)[None]
    torch.testing.assert_close(rgb, expected, rtol=0, atol=0)
    interior = flow[0, :, :15, 4:-4, 4:-4]
    dx_px = interior[0].mean().item() * 20.0  # flow is clipped to +-20 px, scaled to +-1
    dy_px = interior[1].mean().item() * 20.0
    assert abs(dx_px - 2.0) < 0.3 and abs(dy_px) < 0.3
    assert torch.count_nonzero(flow[0, :, 15]) == 0
