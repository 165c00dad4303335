"""How fast are synthetic features for a THUMOS14-sized set (410 videos, ~133k snippets)?

Times, in the same run, over the real THUMOS14 timelines (the bundled thumos14 gt.json
or --annotations):

- baseline: drawing the same number of float32 Gaussian values with NumPy (the floor of
  any generator that outputs that many random numbers);
- talkit: ``iter_features`` at the defaults (2048-d, rgb + flow), one video at a time;
- talkit + store (``--store``): ``write_features_to_store`` into a fresh local store.

Prints each time and the ratio to the baseline. Usage:
``python benchmarks/synth_features.py [--annotations GT] [--dim 2048] [--store]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from talkit.datasets import load_annotations
from talkit.datasets.bundled import BUNDLED
from talkit.datasets.synthetic.features import (
    iter_features,
    make_params,
    write_features_to_store,
)

DEFAULT_GT = BUNDLED["thumos14"].path  # shipped with talkit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--annotations", type=Path, default=DEFAULT_GT)
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--store", action="store_true", help="also time writing into a store")
    args = ap.parse_args()

    ds = load_annotations(args.annotations)
    params = make_params(dim=args.dim)

    t0, c0 = time.perf_counter(), time.process_time()
    snippets = 0
    for _video, streams, ts in iter_features(ds, params):
        snippets += len(ts)
        assert all(x.shape[0] == len(ts) for x in streams.values())
    talkit_s, talkit_cpu = time.perf_counter() - t0, time.process_time() - c0

    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    chunk = 4096
    for start in range(0, snippets, chunk):
        rng.standard_normal((min(chunk, snippets - start), args.dim), dtype=np.float32)
    base_s = time.perf_counter() - t0

    print(f"{len(ds.videos)} videos, {snippets} snippets x {args.dim} dims")
    print(f"baseline (numpy draws the same number of float32): {base_s:7.2f} s")
    print(
        f"talkit generate_features:                          {talkit_s:7.2f} s  "
        f"ratio {talkit_s / base_s:5.2f}x  ({snippets / talkit_s:,.0f} snippets/s, "
        f"{talkit_cpu:.1f} s CPU)"
    )
    if args.store:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            write_features_to_store(Path(tmp) / "feats", ds, dim=args.dim)
            store_s = time.perf_counter() - t0
        print(
            f"talkit write_features_to_store:                    {store_s:7.2f} s  "
            f"ratio {store_s / base_s:5.2f}x"
        )


if __name__ == "__main__":
    main()
