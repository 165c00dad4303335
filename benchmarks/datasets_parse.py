"""How much slower than bare ``json.load`` is parsing a HACS-sized annotation file?

Builds a file in the HACS Segments v1.1.1 layout at HACS scale (50k videos, ~140k
segments, 200 classes), then times, in the same run:

- baseline: ``json.load`` of the file (the floor any parser pays);
- talkit: ``load_annotations`` (detect, parse, check problems, build the typed model);
- talkit W-TALC: ``write_wtalc`` then ``load_annotations`` on the result (safe unpickler).

Prints each time and the ratio to the baseline. Usage:
``python benchmarks/datasets_parse.py [--videos 50000] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from talkit.datasets import load_annotations, write_wtalc


def make_hacs_like(path: Path, videos: int, seed: int = 0) -> int:
    rng = random.Random(seed)
    classes = [f"Class {i:03d}" for i in range(200)]
    database = {}
    n_segments = 0
    subsets = ["training"] * 8 + ["validation", "testing"]
    for i in range(videos):
        duration = round(rng.uniform(20, 240), 2)
        annotations = []
        for _ in range(rng.choice([1, 2, 3, 4])):
            start = rng.uniform(0, duration * 0.8)
            end = min(duration, start + rng.uniform(1, 60))
            annotations.append(
                {"label": rng.choice(classes), "segment": [round(start, 5), round(end, 5)]}
            )
        n_segments += len(annotations)
        vid = f"v{i:011d}"
        database[vid] = {
            "subset": rng.choice(subsets),
            "duration": duration,
            "url": f"https://www.youtube.com/watch?v={vid}",
            "annotations": annotations,
        }
    path.write_text(json.dumps({"version": "HACS Segments v1.1.1", "database": database}))
    return n_segments


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "HACS_segments_v1.1.1.json"
        n_segments = make_hacs_like(path, args.videos)
        size_mb = path.stat().st_size / 1e6
        print(f"file: {args.videos} videos, {n_segments} segments, {size_mb:.1f} MB")

        def baseline() -> None:
            with path.open() as fh:
                json.load(fh)

        t_json = best_of(args.repeat, baseline)
        t_ours = best_of(args.repeat, lambda: load_annotations(path))
        dataset = load_annotations(path)
        write_wtalc(dataset, Path(tmp) / "wtalc")
        t_wtalc = best_of(args.repeat, lambda: load_annotations(Path(tmp) / "wtalc"))
        print(f"json.load (baseline):            {t_json:7.3f} s")
        print(f"load_annotations (ActivityNet):  {t_ours:7.3f} s  ratio {t_ours / t_json:5.2f}x")
        print(f"load_annotations (W-TALC .npy):  {t_wtalc:7.3f} s  ratio {t_wtalc / t_json:5.2f}x")


if __name__ == "__main__":
    main()
