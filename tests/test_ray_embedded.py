"""Embedded Ray is always talkit's own, even where another Ray cluster is advertised.

``ray.init()`` with no address joins whatever cluster Ray's current-cluster file or
``RAY_ADDRESS`` names: another user's ``ray start`` on a shared machine, or a stale file
left by one. ``talkit extract`` without ``--ray-address`` must start its own Ray there.
"""

from __future__ import annotations

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
