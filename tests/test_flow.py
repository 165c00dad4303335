"""Optical flow for the I3D flow stream: TV-L1 accuracy, the 8-bit path, workers."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from talkit.errors import InputError
from talkit.extractors.flow import (
    FlowComputer,
    dequantize_flow,
    flow_spec,
    normalise_flow,
    quantize_flow,
    to_grey,
)


def _texture(size: int, seed: int) -> np.ndarray:
    """A smooth random texture (float), big enough to shift without running out of it."""
    rng = np.random.default_rng(seed)
    noise = rng.random((size, size)).astype(np.float32)
    return cv2.GaussianBlur(noise, (0, 0), 2.0)


def _shifted_pair(
    dx: float, dy: float, size: int = 64, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Frame 0 and frame 1 = frame 0 moved by (dx, dy) pixels (sub-pixel, bilinear)."""
    big = _texture(size + 32, seed)
    big = (big - big.min()) / (big.max() - big.min()) * 255.0
    m0 = np.float32([[1, 0, -16], [0, 1, -16]])
    m1 = np.float32([[1, 0, -16 + dx], [0, 1, -16 + dy]])
    f0 = cv2.warpAffine(big, m0, (size, size), flags=cv2.INTER_LINEAR)
    f1 = cv2.warpAffine(big, m1, (size, size), flags=cv2.INTER_LINEAR)
    return np.rint(f0).astype(np.uint8), np.rint(f1).astype(np.uint8)


@pytest.mark.parametrize(("dx", "dy"), [(2.0, 1.0), (-1.5, 2.5), (0.5, -3.0)])
def test_tvl1_recovers_a_known_translation(dx: float, dy: float) -> None:
    f0, f1 = _shifted_pair(dx, dy)
    flow = FlowComputer(flow_spec("tvl1")).pairs(f0[None], f1[None])[0]
    interior = flow[12:-12, 12:-12]
    epe = np.sqrt((interior[..., 0] - dx) ** 2 + (interior[..., 1] - dy) ** 2).mean()
    assert epe < 0.5, f"mean endpoint error {epe:.3f} px for shift ({dx}, {dy})"


def test_dis_is_a_labelled_rough_alternative() -> None:
    f0, f1 = _shifted_pair(2.0, -1.0)
    spec = flow_spec("dis")
    flow = FlowComputer(spec).pairs(f0[None], f1[None])[0][12:-12, 12:-12]
    assert np.abs(flow.mean(axis=(0, 1)) - [2.0, -1.0]).max() < 1.0
    assert spec.approximate and "APPROXIMATION" in spec.label
    assert not flow_spec("tvl1").approximate
    assert flow_spec("farneback").model_dump()["approximate"] is True


def test_tvl1_spec_records_opencv_defaults() -> None:
    params = flow_spec("tvl1").params
    assert params["tau"] == 0.25 and params["lambda"] == pytest.approx(0.15)
    assert params["nscales"] == 5 and params["warps"] == 5
    assert params["median_filtering"] == 5


def test_unknown_method_and_parameter_are_input_errors() -> None:
    with pytest.raises(InputError, match="unknown flow method 'raft'"):
        flow_spec("raft")
    with pytest.raises(InputError, match="unknown tvl1 flow parameter"):
        flow_spec("tvl1", warp=3)


def test_normalise_clips_to_bound_and_rescales() -> None:
    f = np.array([-30.0, -20.0, -10.0, 0.0, 5.0, 20.0, 25.0], dtype=np.float32)
    out = normalise_flow(f, bound=20.0)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.float32([-1, -1, -0.5, 0, 0.25, 1, 1]))


def test_quantised_path_matches_the_formula_bit_for_bit() -> None:
    rng = np.random.default_rng(3)
    f = np.concatenate(
        [rng.normal(0, 12, 5000), [-25.0, -20.0, 0.0, 20.0, 31.0, 40 / 255 * 0.5 - 20]]
    ).astype(np.float32)
    got = normalise_flow(f, bound=20.0, quantize_8bit=True)
    expected = []
    for v in f.tolist():  # the published formula, in plain Python
        v = min(max(v, -20.0), 20.0)
        p = round(255 * (v + 20) / 40)
        expected.append((p / 255) * 2 - 1)
    expected_f32 = np.array(expected, dtype=np.float32)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got.view(np.uint32), expected_f32.view(np.uint32))
    codes = quantize_flow(f)
    assert codes.dtype == np.uint8 and codes.min() == 0 and codes.max() == 255
    np.testing.assert_array_equal(dequantize_flow(codes), got)


@pytest.mark.slow  # starts two spawned worker processes
def test_two_workers_give_the_same_flow_as_one() -> None:
    frames = np.stack([_shifted_pair(0.7 * k, -0.4 * k, size=48, seed=k)[1] for k in range(5)])
    spec = flow_spec("tvl1")
    one = FlowComputer(spec, workers=1).sequence(frames)
    with FlowComputer(spec, workers=2) as two_workers:
        two = two_workers.sequence(frames)
    assert one.shape == (4, 48, 48, 2)
    np.testing.assert_array_equal(one, two)


def test_grey_conversion_and_shape_checks() -> None:
    rgb = np.zeros((2, 8, 8, 3), np.uint8)
    rgb[..., 1] = 100
    grey = to_grey(rgb)
    assert grey.shape == (2, 8, 8) and grey.dtype == np.uint8
    assert int(grey[0, 0, 0]) == round(0.587 * 100)
    with pytest.raises(InputError, match="uint8 greyscale"):
        FlowComputer().pairs(np.zeros((1, 8, 8), np.float32), np.zeros((1, 8, 8), np.float32))
    with pytest.raises(InputError, match="workers"):
        FlowComputer(workers=0)
