"""The backbone design: I3D unchanged by it, specs as data, weights tables, options per backbone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from talkit.extractors import extract_video

GOLDEN = Path(__file__).parent / "data" / "i3d_golden"


@pytest.mark.slow
def test_i3d_features_are_bit_identical_to_before_the_backbone_redesign() -> None:
    """features.npz was written by make_golden.py with the code before the redesign."""
    torch.set_num_threads(1)
    golden = np.load(GOLDEN / "features.npz")
    feats = extract_video(
        GOLDEN / "video.mp4",
        "i3d",
        batch_size=4,
        random_weights_seed=0,
        input_size=64,
        resize_short=72,
    )
    assert np.array_equal(feats.timestamps, golden["timestamps"])
    for stream in ("rgb", "flow"):
        assert feats.streams[stream].dtype == np.float32
        assert np.array_equal(feats.streams[stream], golden[stream]), stream
