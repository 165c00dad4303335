"""`talkit extract` on a Ray cluster made with the ``ray start`` CLI, as docs/cluster.md says.

A head and a second node (``ray start``, one CPU each, token authentication), videos and
store on S3 (moto's server: every node reads videos, the driver writes the store), the
driver joined with ``--ray-address HOST:PORT``. The second node is killed (SIGKILL of all
its processes) once both nodes have extracted a video: the run must still store every
video exactly once, bit-identical to a local run, and its report must say where each
video ran.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pipeline_helpers import (
    REPO,
    TINY_ARGS,
    TINY_EXTRACT_KW,
    assert_same_arrays,
    read_feature_set,
    run_records,
)
from ray_cli_cluster import RayCliCluster, free_port
from s3_helpers import aws_environment, new_bucket, set_environment

pytestmark = pytest.mark.slow
pytest.importorskip("ray")

# The second node's worker is ready a few seconds after the head's (it starts a fresh
# process there), while the head extracts a video every half second: 12 videos leave
# work in the queue, hence in flight on the second node, when it is killed.
NUM_VIDEOS = 12


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 synthetic action videos, 64x48, 2-3 s."""
    from talkit.datasets.synthetic.videos import generate_videos

    root = tmp_path_factory.mktemp("videos")
    generate_videos(root, num_videos=NUM_VIDEOS, size=(64, 48), duration_s=(2.0, 3.0), seed=0)
    return root / "videos"


def _local_features(videos: Path) -> dict[str, dict[str, Any]]:
    """The features of the local files, from ``extract_video`` in this process.

    tests/test_pipeline.py shows an embedded `talkit extract` run gives exactly these bytes
    (at the workers' one torch thread), so equality here means "the cluster changes nothing".
    """
    import numpy as np
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


def _cluster_env(endpoint: str, tmp_path: Path) -> dict[str, str]:
    """This environment, with the AWS variables of moto and this checkout on the path.

    Every node gets it at ``ray start`` (its workers read the videos); the driver too.
    """
    home = tmp_path / "aws-home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(aws_environment(endpoint, home))
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = f"{REPO}{os.pathsep}{path}" if path else str(REPO)
    env["PYTHONWARNINGS"] = "ignore"
    return env


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@pytest.fixture(scope="module")
def cluster(moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A head node (``ray start --head``) whose environment reaches moto; torn down after."""
    made = RayCliCluster.create(_cluster_env(moto_endpoint, tmp_path_factory.mktemp("env")))
    try:
        made.start_head()
        yield made
    finally:
        made.shutdown()


def _extract_args(cluster: RayCliCluster, videos: str, store: str, report: Path) -> list[str]:
    return [sys.executable, "-m", "talkit.cli", "extract", "--videos", videos,
            "--dataset", "synth", "--store", store, *TINY_ARGS, "--num-workers", "2",
            "--commit-every", "1", "--ray-address", cluster.address, "--report", str(report),
            "--quiet"]  # fmt: skip


def test_extract_on_a_ray_start_cluster_from_s3_survives_losing_a_node(
    cluster: RayCliCluster, moto_endpoint: str, videos: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    bucket = new_bucket(moto_endpoint)
    bucket.upload_dir(videos, "videos")
    everything = sorted(p.stem for p in videos.iterdir())
    store, report_path = bucket.url("store"), tmp_path / "report.json"
    second = cluster.add_node("second")
    driver: subprocess.Popen[str] | None = None
    try:
        head_id, second_id = cluster.nodes[0].node_id(), second.node_id()
        driver = subprocess.Popen(
            _extract_args(cluster, bucket.url("videos/"), store, report_path),
            env=cluster.env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        before_kill: list[dict[str, Any]] = []
        deadline = time.monotonic() + 120
        while driver.poll() is None and time.monotonic() < deadline:
            report = _read_json(report_path)
            done = report["extracted"] if report else []
            if {v["node_id"] for v in done} >= {head_id, second_id}:
                second.kill()  # the second machine dies with its next videos in flight
                before_kill = done
                break
            time.sleep(0.05)
        output, _ = driver.communicate(timeout=120)
        assert driver.returncode == 0, output[-4000:]
        assert before_kill, f"both nodes never had a video done before the run ended\n{output}"
        assert second.pids() == []
    finally:
        second.kill()
        if driver is not None and driver.poll() is None:
            driver.kill()
            driver.wait()

    report = _read_json(report_path)
    assert report is not None
    assert report["ray"]["nodes"] == 2 and report["ray"]["workers"] == 2
    assert sorted(v["video_id"] for v in report["extracted"]) == everything
    assert report["failures"] == []
    # Where each video ran: both nodes before the removal, only the head after it...
    assert [v for v in report["extracted"] if v in before_kill] == before_kill
    assert {v["node_id"] for v in before_kill} == {head_id, second_id}
    # The report on disk lags the driver by one commit, so a video the second node finished
    # just before the kill may be recorded after the snapshot: whatever is credited to the
    # second node ran there once, to the end. The head carried on after the removal...
    after = [v for v in report["extracted"] if v not in before_kill]
    assert any(v["node_id"] == head_id for v in after)
    assert all(v["attempts"] == 1 for v in report["extracted"] if v["node_id"] == second_id)
    # ...including the video(s) the second node had in flight, tried again there.
    retried = [v for v in report["extracted"] if v["attempts"] > 1]
    assert retried and all(v in after and v["node_id"] == head_id for v in retried)
    # Node ids name machines: the report maps them to host and IP.
    nodes = report["ray"]["node_info"]
    assert {head_id, second_id} <= set(nodes) and all(nodes[n]["ip"] for n in nodes)
    assert {w["node_id"] for w in report["ray"]["worker_starts"]} >= {head_id, second_id}

    # Every video exactly once in the store, as a local run makes it.
    aws = {k: v for k, v in cluster.env.items() if k.startswith("AWS_")}
    set_environment(monkeypatch, aws)
    records = run_records(store)
    assert Counter(vid for r in records for vid in r["extracted"]) == Counter(everything)
    assert_same_arrays(read_feature_set(store, "synth/i3d"), _local_features(videos))


def test_a_node_with_another_talkit_or_no_aws_credentials_stops_the_run_before_any_work(
    cluster: RayCliCluster, moto_endpoint: str, videos: Path, tmp_path: Path
) -> None:
    bucket = new_bucket(moto_endpoint)
    bucket.upload_dir(videos, "videos")
    # A node set up by hand: another talkit release installed, and no AWS variables.
    other = tmp_path / "site"
    (other / "talkit-0.0.1.dist-info").mkdir(parents=True)
    (other / "talkit-0.0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: talkit\nVersion: 0.0.1\n"
    )
    env = {
        k: v
        for k, v in cluster.env.items()
        if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    }
    env["PYTHONPATH"] = f"{other}{os.pathsep}{env['PYTHONPATH']}"
    odd = cluster.add_node("odd", env=env)
    try:
        odd_id = odd.node_id()
        report_path = tmp_path / "report.json"
        args = _extract_args(cluster, bucket.url("videos/"), bucket.url("store"), report_path)
        done = subprocess.run(
            args, env=cluster.env, cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
    finally:
        odd.kill()
    assert done.returncode == 2, done.stdout + done.stderr
    message = " ".join((done.stdout + done.stderr).split())
    assert "1 of 2 Ray node(s) cannot run this extraction" in message, message
    assert f"node {odd_id[:8]}" in message
    assert "talkit 0.0.1 is installed, the driver runs" in message
    assert f"no AWS credentials found for {bucket.url()}" in message
    report = _read_json(report_path)
    assert report is not None and report["extracted"] == [] and "worker_starts" not in report["ray"]


def test_a_wrong_address_or_a_missing_token_fails_in_seconds_saying_what_to_do(
    cluster: RayCliCluster, tmp_path: Path
) -> None:
    (tmp_path / "v.mp4").write_bytes(b"")  # planned; never read
    args = _extract_args(cluster, str(tmp_path), str(tmp_path / "s.store"), tmp_path / "r.json")

    def run(address: str, env: dict[str, str]) -> str:
        at = args.index("--ray-address") + 1
        done = subprocess.run(
            [*args[:at], address, *args[at + 1 :]],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        message = " ".join((done.stdout + done.stderr).split())
        assert done.returncode == 2, message
        return message

    # The cluster's token is not in this environment: Ray would retry for 20 s.
    no_token = {k: v for k, v in cluster.env.items() if not k.startswith("RAY_AUTH_")}
    message = run(cluster.address, no_token)
    assert "requires token authentication" in message and "RAY_AUTH_MODE=token" in message
    # Nothing listens there: Ray would retry for minutes.
    host = cluster.address.rsplit(":", 1)[0]
    message = run(f"{host}:{free_port()}", cluster.env)
    assert "nothing answers at --ray-address" in message, message
