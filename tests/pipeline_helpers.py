"""Builders shared by tests/test_pipeline*.py: tiny settings, the CLI, store reading."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]

# Tiny but complete: I3D rgb + flow (Farneback: fast) at 32 px on 64x48 frames.
TINY_ARGS = [
    "--streams", "rgb,flow", "--flow", "farneback", "--input-size", "32", "--resize-short", "48",
    "--random-weights", "0", "--batch-size", "4", "--threads", "1",
]  # fmt: skip
TINY_CONFIG: dict[str, Any] = {
    "streams": ["rgb", "flow"],
    "flow": "farneback",
    "input_size": 32,
    "resize_short": 48,
    "random_weights_seed": 0,
    "batch_size": 4,
    "torch_threads": 1,
}
TINY_EXTRACT_KW: dict[str, Any] = {
    "streams": ("rgb", "flow"),
    "flow_method": "farneback",
    "input_size": 32,
    "resize_short": 48,
    "random_weights_seed": 0,
    "batch_size": 4,
}


_BOOT = (
    "import sys; from talkit import cli; from talkit.pipelines import cli as p; "
    "names = {c.name for c in cli.app.registered_commands}; "
    "'extract' in names or p.register(cli.app); cli.main(sys.argv[1:])"
)


def cli_subprocess(
    args: list[str], *, env: dict[str, str] | None = None, **kw: Any
) -> subprocess.Popen[bytes]:
    """``talkit ARGS`` in a new process (works before and after the CLI wiring); ``env`` adds
    to this process's environment."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "RAY_DEDUP_LOGS": "1", **(env or {})}
    return subprocess.Popen([sys.executable, "-c", _BOOT, *args], cwd=REPO, env=env, **kw)


def read_feature_set(store: str | Path, key: str) -> dict[str, dict[str, np.ndarray]]:
    """Every video of a feature set: {video: {stream..., "timestamps"}}."""
    from talkit.store import FeatureStore

    fs = FeatureStore.open(str(store)).feature_set(key)
    out = {}
    for vid in fs.videos():
        video = fs.video(vid)
        out[vid] = {**video.read(), "timestamps": video.timestamps}
    return out


def run_records(store: str | Path) -> list[dict[str, Any]]:
    """``talkit_run`` records of the store's commits, oldest first."""
    from talkit.store import FeatureStore

    log = FeatureStore.open(str(store)).log()
    return [c.metadata["talkit_run"] for c in reversed(log) if "talkit_run" in c.metadata]


def assert_same_arrays(
    a: dict[str, dict[str, np.ndarray]], b: dict[str, dict[str, np.ndarray]]
) -> None:
    assert sorted(a) == sorted(b)
    for vid in a:
        assert sorted(a[vid]) == sorted(b[vid]), vid
        for name in a[vid]:
            x, y = a[vid][name], b[vid][name]
            assert x.dtype == y.dtype and x.shape == y.shape, (vid, name)
            assert x.tobytes() == y.tobytes(), f"{vid}/{name} differs"
