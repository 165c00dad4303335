"""What the driver checks on every cluster node before workers start (no Ray needed here).

The checks run as a Ray task on each node (tests/test_cluster.py runs them on a real
cluster); here they run in this process, which is a node like any other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from talkit.pipelines.nodes import PATH_SAMPLE, NodeNeeds, node_needs, probe


def test_needs_sample_local_videos_keep_checkpoints_and_name_each_bucket_once(
    tmp_path: Path,
) -> None:
    from talkit import __version__

    videos = [tmp_path / f"v{i:03d}.mp4" for i in range(50)]
    urls = ["s3://raw/a/1.mp4", "s3://raw/b/2.mp4", "s3://other/3.mp4"]
    needs = node_needs([*videos, *urls], [str(tmp_path / "rgb.pt")])
    assert needs.talkit_version == __version__
    assert needs.buckets == ("s3://other/", "s3://raw/")
    sample, checkpoints = needs.local_paths[:-1], needs.local_paths[-1:]
    assert len(sample) == PATH_SAMPLE and set(sample) <= {str(v) for v in videos}
    assert sample[0] == str(videos[0]) and sample[-1] == str(videos[-1])
    assert checkpoints == (str(tmp_path / "rgb.pt"),)


def test_relative_paths_are_checked_as_the_driver_sees_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert node_needs([Path("videos/a.mp4")]).local_paths == (str(tmp_path / "videos/a.mp4"),)


def test_a_node_without_the_files_says_which_and_how_many(tmp_path: Path) -> None:
    from talkit import __version__

    here = tmp_path / "here.mp4"
    here.write_bytes(b"x")
    gone = [str(tmp_path / "nfs" / f"{i}.mp4") for i in range(3)]
    answer = probe(NodeNeeds(__version__, (str(here), *gone)))
    assert answer["talkit"] == __version__ and answer["host"]
    assert answer["problems"] == [f"no file {gone[0]} and 2 more of the run's files"]
    assert probe(NodeNeeds(__version__, (str(here),)))["problems"] == []


def test_a_node_with_another_talkit_says_both_versions() -> None:
    from talkit import __version__

    answer = probe(NodeNeeds("9.9.9"))
    assert answer["problems"] == [f"talkit {__version__} is installed, the driver runs 9.9.9"]


def test_a_node_that_cannot_reach_the_video_bucket_says_why(s3: Any) -> None:
    from talkit import __version__

    assert probe(NodeNeeds(__version__, buckets=(s3.url(),)))["problems"] == []
    missing = f"{s3.url()[:-1]}-gone/"
    (problem,) = probe(NodeNeeds(__version__, buckets=(missing,)))["problems"]
    assert "does not exist" in problem and missing.removeprefix("s3://").rstrip("/") in problem


def test_ray_address_from_the_environment_serves_auto_and_never_overrides_an_explicit_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from talkit.pipelines.runtime import RayUnavailableError, resolve_address

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert resolve_address("auto") == "auto"
    assert resolve_address("10.0.0.1:6379") == "10.0.0.1:6379"
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.2:6379")  # as inside a Ray job
    assert resolve_address("auto") == "10.0.0.2:6379"
    assert resolve_address("10.0.0.2:6379") == "10.0.0.2:6379"
    with pytest.raises(RayUnavailableError, match=r"RAY_ADDRESS=10\.0\.0\.2:6379") as caught:
        resolve_address("10.0.0.1:6379")
    assert caught.value.exit_code == 2 and "unset RAY_ADDRESS" in str(caught.value)
