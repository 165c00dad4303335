"""How much does drawing synthetic action videos add to encoding them?

Times, in the same run, for N videos of D seconds at one size and codec:

- baseline: encoding the same number of frames of one constant picture with the same
  codec and settings (the encoder's own cost, nothing drawn);
- talkit render only: ``SceneRenderer.frame`` for every frame (numpy drawing);
- talkit: ``generate_videos`` end to end (timeline, drawing, encoding, annotations).

Prints each time and the ratio to the baseline. Usage:
``python benchmarks/synth_videos.py [--videos 4] [--duration 10] [--size 320x240] [--codec h264]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from talkit.datasets.synthetic.render import SceneRenderer, class_looks, default_class_names
from talkit.datasets.synthetic.timeline import InstanceDistribution, sample_timeline
from talkit.datasets.synthetic.videos import encode_frames, generate_videos, parse_size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=4)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--size", default="320x240")
    ap.add_argument("--codec", default="h264")
    args = ap.parse_args()
    w, h = parse_size(args.size)
    n_frames = round(args.duration * 25)
    times = np.arange(n_frames) / 25.0

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        ds = generate_videos(
            Path(tmp) / "gen",
            num_videos=args.videos,
            duration_s=args.duration,
            size=(w, h),
            codec=args.codec,
            fps=25,
        )
        talkit_s = time.perf_counter() - t0

        flat = np.full((h, w, 3), 128, np.uint8)
        t0 = time.perf_counter()
        for i in range(args.videos):
            encode_frames(
                Path(tmp) / f"flat{i}.{'webm' if args.codec == 'vp9' else 'mp4'}",
                (flat for _ in times),
                times,
                rate=Fraction(25),
                size=(w, h),
                codec=args.codec,
            )
        base_s = time.perf_counter() - t0

    looks = class_looks(default_class_names(4))
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for _ in range(args.videos):
        tl = sample_timeline(
            rng, duration_s=args.duration, num_classes=4, dist=InstanceDistribution()
        )
        r = SceneRenderer(width=w, height=h, looks=looks, instances=tl, rng=rng)
        for t in times:
            r.frame(float(t))
    render_s = time.perf_counter() - t0

    total = args.videos * n_frames
    print(
        f"{args.videos} videos x {n_frames} frames at {w}x{h}, {args.codec}; "
        f"{ds.num_instances} action instances"
    )
    print(
        f"baseline (encode a constant picture): {base_s:7.2f} s  ({total / base_s:,.0f} frames/s)"
    )
    print(
        f"talkit render only:                   {render_s:7.2f} s  ({total / render_s:,.0f} frames/s)"
        f"  ratio {render_s / base_s:5.2f}x"
    )
    print(
        f"talkit generate_videos:               {talkit_s:7.2f} s  ({total / talkit_s:,.0f} frames/s)"
        f"  ratio {talkit_s / base_s:5.2f}x"
    )


if __name__ == "__main__":
    main()
