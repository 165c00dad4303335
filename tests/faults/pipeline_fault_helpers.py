"""Builders for the pipeline fault tests: tiny videos, a reference, subprocess runs, waits.

The reference features come from ``extract_video`` in this process at one torch thread
(what a pipeline worker uses): tests/test_pipeline.py shows the pipeline writes exactly
these bytes, so "equal to the reference" means "equal to a clean run".
"""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pipeline_helpers import TINY_ARGS, TINY_EXTRACT_KW, cli_subprocess, run_records

WAIT_S = 120.0


def make_videos(root: Path, n: int, seed: int = 0) -> Path:
    """``n`` synthetic action videos, 64x48, 2-3 s (3-4 snippets each); their folder."""
    from talkit.datasets.synthetic.videos import generate_videos

    generate_videos(root, num_videos=n, size=(64, 48), duration_s=(2.0, 3.0), seed=seed)
    return root / "videos"


def reference_features(videos: Path) -> dict[str, dict[str, np.ndarray]]:
    """{video id: {rgb, flow, timestamps}} of every video, as a clean run writes them."""
    import torch

    from talkit.extractors.extract import extract_video

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = {}
        for path in sorted(videos.iterdir()):
            feats = extract_video(path, **TINY_EXTRACT_KW)
            out[path.stem] = {**feats.streams, "timestamps": np.asarray(feats.timestamps)}
        return out
    finally:
        torch.set_num_threads(before)


def extract_args(
    videos: Path | str, store: Path | str, report: Path, *extra: str, dataset: str = "synth"
) -> list[str]:
    """``talkit extract`` arguments at the tiny settings, one worker, one commit per video."""
    return ["extract", "--videos", str(videos), "--dataset", dataset, "--store", str(store),
            *TINY_ARGS, "--num-workers", "1", "--commit-every", "1", "--report", str(report),
            "--quiet", *extra]  # fmt: skip


def start(args: list[str], env: dict[str, str] | None = None, **kw: Any) -> subprocess.Popen[bytes]:
    """``talkit ARGS`` in a new process; stdout and stderr are captured."""
    return cli_subprocess(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def wait_until(
    condition: Callable[[], bool], proc: subprocess.Popen[bytes], what: str, timeout: float = WAIT_S
) -> None:
    """Poll ``condition`` while ``proc`` runs; fail with its stderr if it ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if proc.poll() is not None:
            _, err = proc.communicate()
            raise AssertionError(f"the run ended before {what}: {err.decode()[-3000:]}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"timed out waiting for {what}")


def read_report(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def report_extracted(path: Path) -> list[str]:
    """Video ids a report lists as extracted (committed), or [] if there is no report yet."""
    if not path.is_file():
        return []
    return [v["video_id"] for v in read_report(path)["extracted"]]


def committed_by_run(store: Path | str) -> dict[str, list[str]]:
    """Run id -> the videos its commits wrote (from the store's history)."""
    out: dict[str, list[str]] = {}
    for record in run_records(store):
        out.setdefault(record["run_id"], []).extend(record["extracted"])
    return out


def each_committed_once(store: Path | str) -> Counter[str]:
    """How many commits wrote each video (over all runs)."""
    return Counter(v for vids in committed_by_run(store).values() for v in vids)
