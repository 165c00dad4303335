"""How long do the quick ``talkit`` commands take from a cold interpreter?

Target: under 1 s each for ``talkit --help``, ``talkit store info STORE``, ``talkit store
log STORE`` and ``talkit datasets inspect FILE``. These only read a little, so their time
is start-up: the Python interpreter plus what the command imports. Builds a small store
(one feature set, 4 videos) and a small ActivityNet-layout annotation file in a temporary
directory, then runs each command N times in fresh processes (``python -m talkit.cli``),
round-robin so machine noise spreads evenly, and prints the median wall time and its ratio
to ``python -c pass`` measured in the same run. One untimed run of each first checks that
it succeeds and writes the bytecode caches.

Usage: ``python benchmarks/cli_startup.py [--runs 7]``
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from talkit.store import FeatureSetSpec, FeatureStore

TARGET_S = 1.0


def make_store(path: Path) -> None:
    """A small two-stream store: 4 videos of 40..100 snippets, one commit."""
    store = FeatureStore.create(str(path))
    spec = FeatureSetSpec(
        backbone="i3d",
        streams={"rgb": 64, "flow": 64},
        fps=25.0,
        clip_len=16,
        stride=16,
    )
    store.create_feature_set("thumos14", "i3d", spec)
    rng = np.random.default_rng(0)
    with store.writer(message="benchmark videos") as w:
        for i, t in enumerate((40, 60, 80, 100)):
            streams = {
                name: np.maximum(rng.standard_normal((t, 64)), 0).astype(np.float32)
                for name in ("rgb", "flow")
            }
            w.write_video("thumos14", "i3d", f"video_{i}", streams=streams)


def make_annotations(path: Path) -> None:
    """An ActivityNet-layout file: 200 videos, 3 instances each, 20 classes."""
    database = {
        f"video_{i:04d}": {
            "subset": "validation" if i % 2 else "test",
            "duration": 120.0,
            "annotations": [
                {"label": f"Class{(i + k) % 20}", "segment": [10.0 * k + 1, 10.0 * k + 6]}
                for k in range(3)
            ],
        }
        for i in range(200)
    }
    path.write_text(json.dumps({"database": database}))


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(argv: list[str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system, all threads) of one fresh process."""
    cpu0, t0 = _children_cpu(), time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0, _children_cpu() - cpu0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="Timed runs per command (>= 5).")
    args = parser.parse_args()
    if args.runs < 5:
        parser.error("--runs must be at least 5")
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        store, gt = Path(tmp) / "small.store", Path(tmp) / "gt.json"
        make_store(store)
        make_annotations(gt)
        talkit = [py, "-m", "talkit.cli"]
        commands = {
            "python -c pass (baseline)": [py, "-c", "pass"],
            "talkit --help": [*talkit, "--help"],
            "talkit store info STORE": [*talkit, "store", "info", str(store)],
            "talkit store log STORE": [*talkit, "store", "log", str(store)],
            "talkit datasets inspect FILE": [*talkit, "datasets", "inspect", str(gt)],
        }
        for argv in commands.values():
            proc = subprocess.run(argv, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                sys.exit(f"{' '.join(argv)} failed:\n{proc.stderr}")
        times: dict[str, list[float]] = {name: [] for name in commands}
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, argv in commands.items():
                wall, used = run_once(argv)
                times[name].append(wall)
                cpu[name].append(used)
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    base = medians["python -c pass (baseline)"]
    print(f"median of {args.runs} runs each, fresh processes; target < {TARGET_S:.0f} s wall")
    print("(cpu: user + system time of the process, a check on a busy machine's wall times)")
    for name, t in medians.items():
        verdict = (
            ""
            if name.startswith("python")
            else ("  meets target" if t < TARGET_S else "  MISSES target")
        )
        used = statistics.median(cpu[name])
        print(f"{name:30s} {t:6.3f} s  ratio {t / base:5.1f}x  cpu {used:6.3f} s{verdict}")


if __name__ == "__main__":
    main()
