"""Make the I3D golden features: run once with the code of main before the backbone redesign.

Why: the redesign of the backbones (talkit/extractors/backbones/) must not change one bit
of I3D's features. This script wrote ``video.mp4`` (a 40-frame signature video, committed
so no encoder difference can creep in) and ``features.npz`` (rgb and flow features,
timestamps) with random weights seed 0 at input size 64 from 72 px short side, OpenCV
TV-L1 flow, batch size 4. tests/test_backbones.py recomputes them with today's code and
asserts bit equality.

    PYTHONPATH=$PWD python tests/data/i3d_golden/make_golden.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from talkit.datasets.synthetic.signature import write_signature_video
from talkit.extractors import extract_video

HERE = Path(__file__).parent
OPTIONS = {"input_size": 64, "resize_short": 72, "batch_size": 4, "random_weights_seed": 0}


def main() -> None:
    torch.set_num_threads(1)
    video = HERE / "video.mp4"
    if not video.exists():
        write_signature_video(video, num_frames=40, fps=25, size=(96, 72), seed=3)
    feats = extract_video(video, "i3d", streams=("rgb", "flow"), **OPTIONS)
    np.savez(
        HERE / "features.npz",
        rgb=feats.streams["rgb"],
        flow=feats.streams["flow"],
        timestamps=feats.timestamps,
    )
    print({k: v.shape for k, v in feats.streams.items()}, feats.timestamps.tolist())


if __name__ == "__main__":
    main()
