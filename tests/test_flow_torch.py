"""The torch TV-L1 (tvl1_torch): its parts against OpenCV's, its flow against OpenCV's
DualTVL1 and ground truth, batch independence, and how its spec labels it.

Frames are 64x64 and the engine runs eagerly (``compile=False``: compiling takes a
minute the first time on a machine; on CPU it gives the same bits, which
benchmarks/flow.py checks where the compile cache is warm).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from talkit.datasets.synthetic.flow_pairs import (
    action_pair,
    endpoint_error,
    rotation_pair,
    translation_pair,
)
from talkit.errors import ConfigError, InputError
from talkit.extractors.flow import FAST_PRESET, FlowComputer, flow_spec
from talkit.extractors.flow.median import median_filter, median_program
from talkit.extractors.flow.tvl1_torch import (
    TVL1,
    TVL1Params,
    _median_opencv,
    _warp,
    pyramid_sizes,
    resize_linear,
)

# Measured on these pairs (64x64): EPE ratios 0.98-1.015, mean endpoint differences
# 0.000-0.023 px. The test bounds leave room for other CPUs' rounding, not for a bug.
EPE_RATIO_BOUND = 1.05
MEAN_DIFFERENCE_BOUND = 0.05  # px, between tvl1_torch's and OpenCV's flow

CASES = {
    "translate(2.3,-1.7)": lambda: translation_pair(2.3, -1.7),
    "translate(-0.6,3.4)": lambda: translation_pair(-0.6, 3.4, seed=2),
    "translate(5.2,0.8)": lambda: translation_pair(5.2, 0.8, seed=3),
    "rotate(4deg)": lambda: rotation_pair(4.0),
    "rotate(-7deg)": lambda: rotation_pair(-7.0, seed=4),
    "action(seed0)": lambda: action_pair(seed=0, time_s=1.0, class_idx=0),
    "action(seed4)": lambda: action_pair(seed=4, time_s=1.7, class_idx=4),
}


@pytest.fixture(scope="module")
def flows() -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per case: (true flow, OpenCV DualTVL1's flow, tvl1_torch's flow); one torch batch."""
    pairs = {name: make() for name, make in CASES.items()}
    torch.set_num_threads(1)
    ours = TVL1(compile=False)(
        np.stack([p[0] for p in pairs.values()]), np.stack([p[1] for p in pairs.values()])
    ).numpy()
    cv2.setNumThreads(1)
    opencv = cv2.optflow.DualTVL1OpticalFlow_create()
    return {
        name: (truth, opencv.calc(f0, f1, None), ours[i])
        for i, (name, (f0, f1, truth)) in enumerate(pairs.items())
    }


@pytest.mark.parametrize("case", list(CASES))
def test_accuracy_matches_opencv_tvl1(
    case: str, flows: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]
) -> None:
    truth, opencv, ours = flows[case]
    epe_opencv, epe_ours = endpoint_error(opencv, truth), endpoint_error(ours, truth)
    difference = float(np.sqrt(((ours - opencv) ** 2).sum(-1)).mean())
    print(
        f"{case}: EPE OpenCV {epe_opencv:.4f}, tvl1_torch {epe_ours:.4f}; mean diff {difference:.4f}"
    )
    assert epe_ours <= EPE_RATIO_BOUND * epe_opencv, (epe_ours, epe_opencv)
    assert difference <= MEAN_DIFFERENCE_BOUND
    assert epe_opencv < 0.5  # the pair is one TV-L1 solves: the comparison means something


def test_a_pairs_flow_does_not_depend_on_its_batch() -> None:
    """Converged pairs are frozen, so a pair alone, first or last in a batch, or beside
    other pairs gives the same bits."""
    pairs = [translation_pair(1.5, -0.5, seed=5), rotation_pair(6.0, seed=6)]
    pairs.append(action_pair(seed=1, time_s=2.3, class_idx=1))
    firsts = np.stack([p[0] for p in pairs])
    seconds = np.stack([p[1] for p in pairs])
    engine = TVL1(compile=False)
    batch = engine(firsts, seconds)
    alone = engine(firsts[2:3], seconds[2:3])
    reordered = engine(firsts[[2, 0]], seconds[[2, 0]])
    assert torch.equal(batch[2], alone[0])
    assert torch.equal(batch[2], reordered[0]) and torch.equal(batch[0], reordered[1])


def test_flow_computer_batches_give_the_same_flow() -> None:
    f0, f1, _ = translation_pair(2.0, 1.0, size=48)
    g0, g1, _ = rotation_pair(-5.0, size=48)
    firsts, seconds = np.stack([f0, g0, f1]), np.stack([f1, g1, g0])
    # The fast preset: the same code with fewer iterations, to keep the test quick.
    whole = FlowComputer(flow_spec("tvl1_torch_fast", compile=False)).pairs(firsts, seconds)
    ones = FlowComputer(flow_spec("tvl1_torch_fast", batch=1, compile=False)).pairs(firsts, seconds)
    assert whole.shape == (3, 48, 48, 2) and whole.dtype == np.float32
    np.testing.assert_array_equal(whole, ones)


def test_pyramid_and_resize_are_opencvs() -> None:
    assert pyramid_sizes(224, 224, TVL1Params()) == [
        (224, 224),
        (179, 179),
        (143, 143),
        (114, 114),
        (91, 91),
    ]
    assert pyramid_sizes(48, 64, TVL1Params()) == [(48, 64), (38, 51), (30, 41), (24, 33), (19, 26)]
    assert pyramid_sizes(24, 40, TVL1Params()) == [(24, 40), (19, 32)]  # stops below 16 px
    rng = np.random.default_rng(0)
    img = (rng.random((64, 57)) * 255).astype(np.float32)
    down = cv2.resize(img, None, fx=0.8, fy=0.8, interpolation=cv2.INTER_LINEAR)
    ours = resize_linear(torch.from_numpy(img)[None], down.shape, (1 / 0.8, 1 / 0.8))[0]
    np.testing.assert_allclose(ours.numpy(), down, atol=1e-3)
    flow = rng.normal(size=(41, 33)).astype(np.float32)
    up = cv2.resize(flow, (57, 64), interpolation=cv2.INTER_LINEAR)
    ours = resize_linear(torch.from_numpy(flow)[None], (64, 57), (41 / 64, 33 / 57))[0]
    np.testing.assert_allclose(ours.numpy(), up, atol=1e-5)


def test_warp_is_opencvs_bicubic_remap_with_a_zero_border() -> None:
    rng = np.random.default_rng(1)
    img = (rng.random((40, 37)) * 255).astype(np.float32)
    u = (rng.normal(size=(2, 40, 37)) * 3).astype(np.float32)
    u[:, :6, :6] = 60.0  # far outside the image: zero
    u[:, -3:, -3:] = 1.5  # partly outside: the taps outside count as zero
    map_x = np.arange(37, dtype=np.float32)[None] + u[0]
    map_y = np.arange(40, dtype=np.float32)[:, None] + u[1]
    expected = cv2.remap(img, map_x, map_y, cv2.INTER_CUBIC)
    stack = torch.from_numpy(np.stack([img, img, img]))[None]
    g, _grad, _rho_c = _warp(stack, torch.from_numpy(u)[None], torch.zeros(1, 40, 37))
    np.testing.assert_allclose(g[0, 0].numpy(), expected, atol=2e-3)
    assert float(np.abs(expected[:6, :6]).max()) == 0.0


@pytest.mark.parametrize("size", [3, 5])
def test_median_network_is_opencvs_median_blur(size: int) -> None:
    rng = np.random.default_rng(size)
    u = rng.normal(size=(2, 2, 23, 31)).astype(np.float32)
    u[0, 0, 5:9, 5:9] = 7.0  # ties
    expected = np.stack([[cv2.medianBlur(plane, size) for plane in pair] for pair in u])
    ours = median_filter(torch.from_numpy(u), size, median_program(size * size))
    np.testing.assert_array_equal(ours.numpy(), expected)
    active = torch.tensor([True, False])
    filtered = _median_opencv(torch.from_numpy(u), active, size).numpy()
    np.testing.assert_array_equal(filtered[0], expected[0])
    np.testing.assert_array_equal(filtered[1], u[1])  # a converged pair is left alone


def test_spec_names_the_torch_flow_its_device_and_the_fast_preset() -> None:
    opencv = flow_spec("tvl1").model_dump(mode="json")
    assert "device" not in opencv and "batch" not in opencv and "compile" not in opencv
    ours = flow_spec("tvl1_torch", batch=4, compile=False).model_dump(mode="json")
    assert ours["method"] == "tvl1_torch" and ours["device"] == "cpu"
    assert ours["params"] == opencv["params"]  # OpenCV's defaults, read from OpenCV
    assert ours["approximate"] is False and "not bit-identical" in ours["label"]
    assert "batch" not in ours and "compile" not in ours  # how it runs, not what it computes
    fast = flow_spec("tvl1_torch_fast", device="cuda")
    assert fast.approximate and "FAST" in fast.label and fast.device == "cuda"
    assert all(fast.params[k] == v for k, v in FAST_PRESET.items())
    tuned = flow_spec("tvl1_torch", warps=3)
    assert tuned.approximate and "warps=3" in tuned.label


def test_bad_requests_are_input_errors() -> None:
    with pytest.raises(InputError, match="runs on the CPU only"):
        flow_spec("tvl1", device="cuda")
    with pytest.raises(InputError, match="gamma = 0 only"):
        flow_spec("tvl1_torch", gamma=0.1)
    with pytest.raises(InputError, match="median_filtering=7"):
        flow_spec("tvl1_torch", median_filtering=7)
    with pytest.raises(InputError, match="flow workers must be 1"):
        FlowComputer(flow_spec("tvl1_torch"), workers=2)
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="no CUDA device"):
            FlowComputer(flow_spec("tvl1_torch", device="cuda"))


def test_flow_options_in_the_extract_config() -> None:
    from talkit.pipelines.config import load_extract_config

    cfg = load_extract_config(None, {"flow": "tvl1_torch", "device": "cpu", "flow_batch": 16})
    options = cfg.options_for("i3d")
    assert options["flow_device"] == "cpu" and options["flow_batch"] == 16
    assert load_extract_config(None, {"flow": "tvl1"}).options_for("i3d")["flow_device"] is None
    with pytest.raises(ConfigError, match="--device cuda"):
        load_extract_config(
            None,
            {"flow": "tvl1_torch", "flow_device": "cuda"},
            sources={"flow_device": "--flow-device cuda"},
        )
    with pytest.raises(ConfigError, match="--flow tvl1_torch"):
        load_extract_config(None, {"flow": "farneback", "flow_device": "cuda", "device": "cuda"})


def test_flow_is_sized_apart_from_the_model() -> None:
    """CPU flow gets the worker's share of the cores; a GPU worker whose torch TV-L1 runs
    on the GPU needs no CPU threads, one whose flow runs on its CPUs gets its share."""
    from talkit.pipelines.config import load_extract_config
    from talkit.pipelines.runtime import size_workers

    def cpu_flow(**fields: object) -> bool:
        return load_extract_config(None, {"device": "cuda", **fields}).torch_flow_on_cpu()

    assert cpu_flow(flow="tvl1_torch", flow_device="cpu")
    assert not cpu_flow(flow="tvl1_torch")  # auto: the model's device, the GPU
    assert not cpu_flow(flow="tvl1_torch", flow_device="cpu", streams=["rgb"])  # no flow
    assert not cpu_flow(flow="tvl1")  # OpenCV's: one pinned thread per worker process
    on_cpu = load_extract_config(None, {"flow": "tvl1_torch", "device": "cpu"})
    assert on_cpu.torch_flow_on_cpu()

    cluster = {"CPU": 16.0, "GPU": 2.0}
    gpu_flow = size_workers(cluster, device="cuda", cpu_flow=False)
    assert gpu_flow.num_workers == 2 and gpu_flow.torch_threads == 1
    cpu = size_workers(cluster, device="cuda", cpu_flow=True)
    assert cpu.num_workers == 2 and cpu.num_gpus == 1.0 and cpu.torch_threads == 8
    assert size_workers(cluster, device="cuda", cpu_flow=True, torch_threads=3).torch_threads == 3
    # CPU workers: the model and the flow share the worker's cores, as before.
    assert size_workers({"CPU": 16.0}, num_workers=4).torch_threads == 4


def test_identical_frames_give_zero_flow_as_in_opencv() -> None:
    f0, _f1, _ = action_pair(seed=2, time_s=0.6, class_idx=2)
    flow = TVL1(compile=False)(f0[None], f0[None])
    assert float(flow.abs().max()) == 0.0


# Measured on demo-like videos (64x48, I3D at 48 px, random weights): per-snippet cosine
# similarity 0.9979-0.99995 (this test's video: 0.9979, 0.99995, 0.9989; mean 0.9989),
# against 0.994-0.996 for Farneback's. The lowest snippet holds a pair where the object
# vanishes: flow there is ill-posed, and the two solvers settle differently.
COSINE_MIN_BOUND = 0.997
COSINE_MEAN_BOUND = 0.998


@pytest.mark.slow  # three flows of a 2-second video, the torch one eager
def test_i3d_flow_features_from_the_two_tvl1s_agree(tmp_path: Path) -> None:
    from talkit.datasets.synthetic.videos import generate_videos
    from talkit.extractors.extract import extract_video
    from talkit.pipelines.demo import DEMO_CONFIG, DEMO_SIZE

    generate_videos(tmp_path, num_videos=1, size=DEMO_SIZE, duration_s=2.0, seed=11)
    video = next((tmp_path / "videos").iterdir())
    kw = {
        "streams": ("flow",),
        "input_size": DEMO_CONFIG["backbones"]["i3d"]["input_size"],
        "resize_short": DEMO_CONFIG["backbones"]["i3d"]["resize_short"],
        "random_weights_seed": 0,
    }
    opencv = extract_video(video, flow_method="tvl1", **kw).streams["flow"]
    ours = extract_video(video, flow_method="tvl1_torch", flow_compile=False, **kw).streams["flow"]
    farneback = extract_video(video, flow_method="farneback", **kw).streams["flow"]

    def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)

    cos = cosine(opencv, ours)
    print(
        f"cosine tvl1_torch vs OpenCV per snippet: {cos.round(6)}; Farneback: {cosine(opencv, farneback).round(6)}"
    )
    assert opencv.shape == ours.shape == (3, 1024)
    assert cos.min() >= COSINE_MIN_BOUND and cos.mean() >= COSINE_MEAN_BOUND
    assert np.linalg.norm(ours - opencv) < np.linalg.norm(farneback - opencv)
