"""Embedded Ray is always talkit's own, even where another Ray cluster is advertised.

``ray.init()`` with no address joins whatever cluster Ray's current-cluster file or
``RAY_ADDRESS`` names: another user's ``ray start`` on a shared machine, or a stale file
left by one. ``talkit extract`` without ``--ray-address`` must start its own Ray there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from pipeline_helpers import TINY_ARGS, cli_subprocess, read_feature_set

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def one_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from talkit.datasets.synthetic.videos import generate_videos

    root = tmp_path_factory.mktemp("one")
    generate_videos(root, num_videos=1, size=(64, 48), duration_s=(2.0, 2.0), seed=0)
    return root / "videos"


def _extract(video_dir: Path, store: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    args = ["extract", "--videos", str(video_dir), "--dataset", "d", "--store", str(store)]
    args += ["--report", str(store.with_suffix(".json"))]
    proc = cli_subprocess(
        [*args, *TINY_ARGS, "--quiet"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out.decode(), err.decode())


def test_an_advertised_cluster_does_not_capture_the_embedded_run(
    one_video: Path, tmp_path: Path
) -> None:
    # Both ways another cluster is advertised, each naming a dead one: Ray's current-cluster
    # file (here in a short Ray temp dir: socket paths are length-limited) and RAY_ADDRESS.
    ray_tmp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))
    (ray_tmp / "ray").mkdir()
    (ray_tmp / "ray" / "ray_current_cluster").write_text("127.0.0.1:6999\n")
    env = {"RAY_TMPDIR": str(ray_tmp), "RAY_ADDRESS": "127.0.0.1:6999"}
    try:
        done = _extract(one_video, tmp_path / "a.store", env)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert done.returncode == 0, done.stderr
    assert len(read_feature_set(tmp_path / "a.store", "d/i3d")) == 1
    # The CLI starts Ray itself (early, talkit.pipelines.startup) and the run reports it.
    report = json.loads((tmp_path / "a.json").read_text())
    assert report["ray"]["address"] == "embedded" and report["ray"]["startup_s"] > 0
    # Its workers start at niceness 0, not Ray's 15, with no runtime env: the embedded
    # Ray's raylet has RAY_worker_niceness=0 in its environment (runtime._environment).
    assert [w["niceness_at_start"] for w in report["ray"]["worker_starts"]] == [0]


# Starts talkit's embedded Ray in a fresh process, lists the processes Ray started and the
# idle workers its raylet prestarted, stops Ray as a run does, and lists what still lives.
_LIFECYCLE = """
import json, os, time
from talkit.pipelines.runtime import start_ray
from ray._private import worker

def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False

def children(parent):
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{pid}/cmdline") as fh:
                cmd = fh.read().replace("\\0", " ")
        except OSError:
            continue
        if ppid == parent:
            found.append(cmd)
    return found

runtime = start_ray(None, num_cpus=2)
env_after_start = os.environ.get("RAY_worker_niceness")
node = worker._global_node
started = {kind: [i.process.pid for i in infos] for kind, infos in node.all_processes.items()}
time.sleep(2.0)  # Ray prestarts workers right after the driver registers
raylet = started["raylet"][0]
idle = [c for c in children(raylet) if c.startswith("ray::IDLE")]
import ray
plain_shutdown, monitor_at_shutdown = ray.shutdown, []
def shutdown(*args, **kwargs):
    monitor_at_shutdown.extend(alive(p) for p in started["monitor"])
    plain_shutdown(*args, **kwargs)
ray.shutdown = shutdown
runtime.shutdown()
left = [p for pids in started.values() for p in pids if alive(p)]
print(json.dumps({"kinds": sorted(started), "idle": idle, "left": left,
                  "monitor_at_shutdown": monitor_at_shutdown, "env": env_after_start}))
"""


def test_embedded_ray_prestarts_no_idle_workers_and_stops_every_process() -> None:
    import sys

    out = subprocess.run(
        [sys.executable, "-c", _LIFECYCLE], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"raylet", "gcs_server", "monitor"} <= set(seen["kinds"])
    assert seen["idle"] == []  # talkit's actors carry a runtime env and never use them
    assert seen["left"] == []
    # The autoscaler monitor is gone before ray.shutdown, which would give it a second.
    assert seen["monitor_at_shutdown"] == [False]
    # RAY_worker_niceness=0 was set for Ray's processes only: this process's is restored.
    assert seen["env"] is None


def _gcs_servers() -> set[int]:
    found = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"gcs_server" in cmd.split(b"\0")[0]:
            found.add(int(pid))
    return found


def test_a_bad_config_after_the_early_ray_start_exits_2_and_leaves_no_ray(
    one_video: Path, tmp_path: Path
) -> None:
    # talkit extract starts Ray before it reads the config (talkit.pipelines.startup);
    # an error there must still be the usual one line, with Ray stopped.
    import time

    before = _gcs_servers()
    bad = tmp_path / "bad.yaml"
    bad.write_text("backbones: {i3d: {no_such_option: 1}}\n")
    args = ["extract", "--videos", str(one_video), "--dataset", "d"]
    args += ["--store", str(tmp_path / "s.store"), "--config", str(bad), "--quiet"]
    proc = cli_subprocess(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err.decode()
    assert "no_such_option" in err.decode()
    deadline = time.monotonic() + 10
    while _gcs_servers() - before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _gcs_servers() - before == set()
    assert not (tmp_path / "s.store").exists()
