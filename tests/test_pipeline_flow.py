"""`talkit extract --flow tvl1_torch` on Ray: the same features as ``extract_video``, a
spec that says which flow made them, and no silent mixing with another flow's features.

Tiny settings (tests/pipeline_helpers.py), eager torch TV-L1 (``--no-flow-compile``: a
first compile takes a minute), one 1-second video.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import run_cli
from pipeline_helpers import TINY_ARGS, TINY_EXTRACT_KW, read_feature_set

pytestmark = pytest.mark.slow

ray = pytest.importorskip("ray")

TORCH_FLOW = ["--flow", "tvl1_torch", "--no-flow-compile"]  # the last --flow counts


@pytest.fixture(scope="module")
def flow_ray() -> Any:
    """Embedded Ray (2 CPUs) for this module."""
    if ray.is_initialized():  # another module's session
        ray.shutdown()
    ctx = ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ctx.address_info["address"]
    ray.shutdown()


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1 synthetic action video, 64x48, 1 s (1 snippet: 16 flow pairs)."""
    from talkit.datasets.synthetic.videos import generate_videos

    root = tmp_path_factory.mktemp("videos")
    generate_videos(root, num_videos=1, size=(64, 48), duration_s=1.0, seed=3)
    return root / "videos"


def _extract(capsys: pytest.CaptureFixture[str], videos: Path, store: Path, *extra: str) -> Any:
    args = ["extract", "--videos", str(videos), "--dataset", "synth", "--store", str(store)]
    args += [*TINY_ARGS, "--quiet", "--report", str(store.with_suffix(".json")), *extra]
    return run_cli(capsys, *args)


def test_tvl1_torch_through_talkit_extract_is_extract_video(
    flow_ray: str, videos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    from talkit.extractors.extract import extract_video
    from talkit.store import FeatureStore

    store = tmp_path / "torch.store"
    code, _out, err = _extract(capsys, videos, store, *TORCH_FLOW)
    assert code == 0, err
    report = json.loads(store.with_suffix(".json").read_text())
    assert report["totals"]["failed"] == 0
    stored = read_feature_set(store, "synth/i3d")
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the workers' (--threads 1)
    try:
        for path in sorted(videos.iterdir()):
            kw = {**TINY_EXTRACT_KW, "flow_method": "tvl1_torch", "flow_compile": False}
            feats = extract_video(path, **kw)
            for stream in ("rgb", "flow"):
                assert feats.streams[stream].tobytes() == stored[path.stem][stream].tobytes()
    finally:
        torch.set_num_threads(before)
    flow = FeatureStore.open(str(store)).feature_set("synth/i3d").spec.params["flow"]
    assert flow["method"] == "tvl1_torch" and flow["device"] == "cpu"
    assert flow["approximate"] is False and "torch" in flow["label"]
    assert "batch" not in flow and "compile" not in flow


def test_a_changed_flow_method_needs_a_new_feature_set(
    flow_ray: str, videos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "mixed.store"
    code, _out, err = _extract(capsys, videos, store)  # Farneback (TINY_ARGS)
    assert code == 0, err
    code, _out, err = _extract(capsys, videos, store, *TORCH_FLOW)
    assert code == 2, err
    message = " ".join(err.split())  # the console wraps long lines
    assert "params.flow.method: 'farneback' -> 'tvl1_torch'" in message
    assert "params.flow.device: None -> 'cpu'" in message
    assert "--feature-set" in message
    assert sorted(read_feature_set(store, "synth/i3d")) == sorted(p.stem for p in videos.iterdir())
