"""Several `talkit extract` runs writing one store at the same time lose nothing.

Two driver processes start together on one new store (local, or on S3 through moto's
server) with (a) different datasets, (b) disjoint videos, (c) the same videos. Both must
exit 0, every video must be committed exactly once, and the store must hold a clean run's
arrays. In (c) the runs race for every video: the loser of each race skips what the
winner committed from the same file and commits the rest.

Two cases no pair of real runs produces on demand are driven in-process: a video that
another writer committed meanwhile from the same file (skipped) or from another file
(kept, and reported as a clash: exit 1).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_helpers import run_cli
from pipeline_fault_helpers import (
    committed_by_run,
    each_committed_once,
    extract_args,
    make_videos,
    read_report,
    reference_features,
    start,
)
from pipeline_helpers import TINY_CONFIG, assert_same_arrays, read_feature_set
from s3_helpers import embedded_ray_with_aws

ray = pytest.importorskip("ray")

pytestmark = [pytest.mark.slow, pytest.mark.faults]


@pytest.fixture(scope="module")
def ray_address(moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One Ray for this module, whose workers see the moto AWS environment."""
    yield from embedded_ray_with_aws(moto_endpoint, tmp_path_factory.mktemp("aws-home"))


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_videos(tmp_path_factory.mktemp("videos"), 4)


@pytest.fixture(scope="module")
def reference(videos: Path) -> dict[str, Any]:
    return reference_features(videos)


def _run_together(runs: list[list[str]]) -> list[dict]:
    """Start every run at once (one worker each: both fit on 2 CPUs); wait; their reports."""
    procs = [start(args) for args in runs]
    try:
        for proc in procs:
            _, err = proc.communicate(timeout=180)
            assert proc.returncode == 0, err.decode()[-3000:]
    finally:
        for proc in procs:
            proc.kill()
    return [read_report(Path(args[args.index("--report") + 1])) for args in runs]


@pytest.mark.slow
def test_two_runs_on_different_datasets_into_one_new_store(
    ray_address: str, videos: Path, reference: Any, tmp_path: Path
) -> None:
    store = tmp_path / "s.store"
    runs = [
        extract_args(videos, store, tmp_path / f"r{k}.json", "--ray-address", ray_address,
                     dataset=name)
        for k, name in enumerate(("first", "second"))
    ]  # fmt: skip
    _run_together(runs)
    for name in ("first", "second"):
        assert_same_arrays(read_feature_set(store, f"{name}/i3d"), reference)
    assert all(n == 2 for n in each_committed_once(store).values())  # once per dataset


@pytest.mark.slow
def test_two_runs_on_disjoint_videos_into_one_new_store(
    ray_address: str, videos: Path, reference: Any, tmp_path: Path
) -> None:
    files = sorted(videos.iterdir())
    parts = []
    for k in (0, 1):
        folder = tmp_path / f"part{k}"
        folder.mkdir()
        for path in files[k::2]:
            (folder / path.name).symlink_to(path)
        parts.append(folder)
    store = tmp_path / "s.store"
    runs = [
        extract_args(parts[k], store, tmp_path / f"r{k}.json", "--ray-address", ray_address)
        for k in (0, 1)
    ]
    reports = _run_together(runs)
    assert_same_arrays(read_feature_set(store, "synth/i3d"), reference)
    by_run = committed_by_run(store)
    for k, data in enumerate(reports):
        assert sorted(by_run[data["run_id"]]) == sorted(p.stem for p in files[k::2])


def _check_same_video_race(store: str, reports: list[dict], reference: Any) -> None:
    """Each video committed once; each run extracted or found committed every video."""
    assert_same_arrays(read_feature_set(store, "synth/i3d"), reference)
    assert each_committed_once(store) == Counter(dict.fromkeys(reference, 1))
    extracted = [v["video_id"] for data in reports for v in data["extracted"]]
    assert sorted(extracted) == sorted(reference)
    for data in reports:
        mine = [v["video_id"] for v in data["extracted"]]
        assert sorted(mine + data["concurrent"] + data["skipped"]) == sorted(reference)
        assert data["aborted"] is None and not data["clashes"] and not data["failures"]
    assert not any(data["skipped"] for data in reports), "the runs did not overlap"


@pytest.mark.slow
def test_two_runs_on_the_same_videos_into_one_new_local_store(
    ray_address: str, videos: Path, reference: Any, tmp_path: Path
) -> None:
    store = tmp_path / "s.store"
    runs = [
        extract_args(videos, store, tmp_path / f"r{k}.json", "--ray-address", ray_address)
        for k in (0, 1)
    ]
    _check_same_video_race(str(store), _run_together(runs), reference)


@pytest.mark.slow
def test_two_runs_on_the_same_videos_into_one_new_s3_store(
    s3: Any, ray_address: str, videos: Path, reference: Any, tmp_path: Path
) -> None:
    s3.upload_dir(videos, "videos")
    store = s3.url("shared.store")
    runs = [
        extract_args(s3.url("videos/"), store, tmp_path / f"r{k}.json",
                     "--ray-address", ray_address)
        for k in (0, 1)
    ]  # fmt: skip
    # The drivers inherit the s3 fixture's AWS environment; Ray's workers have their own.
    _check_same_video_race(store, _run_together(runs), reference)


def test_a_video_committed_meanwhile_is_skipped_if_same_and_kept_with_a_clash_if_not(
    ray_address: str, videos: Path, reference: Any, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """Right after planning, 'another run' commits two of the planned videos: one from
    another file (the first in the queue), one from the same file (the last: same
    fingerprint, same arrays). The run keeps the first as it is, lists it as a clash and
    exits 1; it sees the second committed after its own first commit and does not extract
    it at all. The same command then re-extracts the clashing video from this file."""
    from talkit.pipelines.config import ExtractConfig
    from talkit.pipelines.plan import plan_videos
    from talkit.pipelines.progress import RunObserver
    from talkit.pipelines.resume import fingerprint
    from talkit.pipelines.run import ExtractJob, run_extraction
    from talkit.store import FeatureStore

    store = tmp_path / "s.store"
    other, same = sorted(reference)[0], sorted(reference)[-1]
    theirs = {"path": "/elsewhere/other.mp4", "size": 1, "content_hash": "qsha256:00"}

    class CommitMeanwhile(RunObserver):
        def __init__(self) -> None:
            self.extracted: list[str] = []
            self.elsewhere: list[str] = []

        def on_video(self, done: Any) -> None:
            self.extracted.append(done.video_id)

        def on_done_elsewhere(self, video_ids: list[str]) -> None:
            self.elsewhere.extend(video_ids)

        def on_start(self, report: Any, todo: int) -> None:
            fs = FeatureStore.open(str(store), mode="a")
            with fs.writer(message="another run") as w:
                for vid, source in ((same, fingerprint(videos / f"{same}.mp4").to_attrs()),
                                    (other, theirs)):  # fmt: skip
                    arrays = reference[vid]
                    w.write_video("synth", "i3d", vid, timestamps=arrays["timestamps"],
                                  streams={s: arrays[s] for s in ("rgb", "flow")},
                                  attrs={"source": source})  # fmt: skip

    cfg = ExtractConfig.model_validate({**TINY_CONFIG, "num_workers": 1, "commit_every": 2})
    observer = CommitMeanwhile()
    report = run_extraction(ExtractJob(plan_videos(videos), str(store), "synth", cfg), observer)
    assert report.concurrent == [same]
    assert observer.elsewhere == [same] and same not in observer.extracted
    assert [c["video_id"] for c in report.clashes] == [other]
    assert report.clashes[0]["kept"] == theirs
    assert report.clashes[0]["dropped"]["path"] == str((videos / f"{other}.mp4").resolve())
    assert sorted(v.video_id for v in report.extracted) == sorted(set(reference) - {same, other})
    assert not report.ok
    fs = FeatureStore.open(str(store)).feature_set("synth/i3d")
    assert fs.video(other).attrs["source"] == theirs  # not overwritten

    args = extract_args(videos, store, tmp_path / "r.json", "--ray-address", ray_address)
    code, _out, err = run_cli(capsys, *args)  # the file differs from what the store holds
    assert code == 0, err
    assert read_report(tmp_path / "r.json")["redo"] == [other]
    fs = FeatureStore.open(str(store)).feature_set("synth/i3d")
    assert fs.video(other).attrs["source"]["path"] == report.clashes[0]["dropped"]["path"]
    assert_same_arrays(read_feature_set(store, "synth/i3d"), reference)


def test_two_overwrites_of_one_video_at_once_never_mix_their_arrays(tmp_path: Path) -> None:
    """Two transactions from one version both replace a video: the second commit fails
    (the caller decides again) instead of landing one writer's rgb beside the other's flow."""
    from store_helpers import DS, FS, features, make_store

    from talkit.store import FeatureStore
    from talkit.store.errors import CommitConflictError

    store = make_store(tmp_path / "s", {"v": 10})
    a = FeatureStore.open(store.url, mode="a").writer()
    b = FeatureStore.open(store.url, mode="a").writer()
    a.write_video(DS, FS, "v", streams=features(1, 10), overwrite=True)
    b.write_video(DS, FS, "v", streams=features(2, 12), overwrite=True)
    a.commit()
    with pytest.raises(CommitConflictError):
        b.commit()
    stored = FeatureStore.open(store.url).feature_set(DS, FS).video("v").read()
    for name, expected in features(1, 10).items():
        np.testing.assert_array_equal(stored[name], expected)
