"""`talkit extract` from videos on S3 into stores on S3 (moto's server), on real Ray.

The features must be the bytes a local run gives; a re-run must skip what is stored
(compared by ETag and size, without reading a video), re-extract an object that was
replaced, survive a SIGKILL of the driver, and two runs writing one store at once must
both land. Ray here is started with the AWS environment pointing at moto, because its
workers (not the driver) download the videos.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import run_cli
from pipeline_helpers import (
    TINY_ARGS,
    TINY_EXTRACT_KW,
    assert_same_arrays,
    cli_subprocess,
    read_feature_set,
    run_records,
)
from s3_helpers import embedded_ray_with_aws

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def s3_ray(moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Ray whose workers see the moto AWS environment; (address, their spool folder)."""
    spool = tmp_path_factory.mktemp("spool")
    home = tmp_path_factory.mktemp("aws-home")
    for address in embedded_ray_with_aws(moto_endpoint, home, {"TALKIT_SPOOL_DIR": str(spool)}):
        yield address, spool


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 synthetic action videos, 64x48, 2-3 s."""
    from talkit.datasets.synthetic.videos import generate_videos

    root = tmp_path_factory.mktemp("videos")
    generate_videos(root, num_videos=4, size=(64, 48), duration_s=(2.0, 3.0), seed=0)
    return root / "videos"


def _extract(address: str, videos: str, store: str, report: Path, *extra: str) -> list[str]:
    return ["extract", "--videos", videos, "--dataset", "synth", "--store", store, *TINY_ARGS,
            "--num-workers", "2", "--ray-address", address, "--report", str(report), "--quiet",
            *extra]  # fmt: skip


@pytest.fixture(scope="module")
def reference(videos: Path) -> dict[str, dict[str, Any]]:
    """The features of the local files, from ``extract_video`` in this process.

    test_pipeline.py shows the pipeline gives exactly these bytes for local files (at the
    workers' one torch thread), so equality here means "S3 changes nothing".
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


def _report(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


@pytest.mark.slow
def test_s3_videos_into_an_s3_store_equal_local_and_resume_by_etag(
    s3: Any, s3_ray: Any, videos: Path, reference: Any, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    address, spool = s3_ray
    urls = s3.upload_dir(videos, "raw/videos")
    (tmp_path / "notes.txt").write_text("not a video")
    s3.upload_dir(tmp_path, "raw/videos/extra")  # no video extension: not planned
    store, report = s3.url("feats"), tmp_path / "r.json"
    args = _extract(address, s3.url("raw/videos/"), store, report)

    code, out, err = run_cli(capsys, *args)
    assert code == 0, err + out
    assert _report(report)["totals"]["extracted"] == 4
    stored = read_feature_set(store, "synth/i3d")
    assert_same_arrays(stored, reference)  # bit for bit what local files give
    from talkit.store import FeatureStore

    fs = FeatureStore.open(store).feature_set("synth/i3d")
    for url in urls:
        path = videos / url.rsplit("/", 1)[1]
        source = fs.video(path.stem).attrs["source"]
        md5 = hashlib.md5(path.read_bytes()).hexdigest()  # moto's ETag of a single-part upload
        assert source == {"path": url, "size": path.stat().st_size, "content_hash": f"etag:{md5}"}
    assert list(spool.iterdir()) == []  # every spool file was deleted

    code, _, err = run_cli(capsys, *args)  # the same command again: nothing to do
    assert code == 0, err
    again = _report(report)
    assert again["totals"]["skipped"] == 4 and again["totals"]["extracted"] == 0

    # Replace one object by another video: only that one is extracted again.
    victim, donor = sorted(videos.iterdir())[:2]
    s3.upload_file(donor, f"raw/videos/{victim.name}")
    code, _, err = run_cli(capsys, *args)
    assert code == 0, err
    third = _report(report)
    assert third["redo"] == [victim.stem] and third["totals"]["skipped"] == 3
    assert [v["video_id"] for v in third["extracted"]] == [victim.stem]
    now = read_feature_set(store, "synth/i3d")
    assert now[victim.stem]["rgb"].tobytes() == reference[donor.stem]["rgb"].tobytes()


@pytest.mark.slow
def test_two_runs_writing_one_new_s3_store_at_once_both_land(
    s3: Any, s3_ray: Any, videos: Path, reference: Any, tmp_path: Path
) -> None:
    address, _ = s3_ray
    files = sorted(videos.iterdir())
    for i, path in enumerate(files):
        s3.upload_file(path, f"part{i % 2}/{path.name}")
    store = s3.url("shared.store")  # does not exist yet: both runs create it
    runs = [
        _extract(
            address, s3.url(f"part{k}/"), store, tmp_path / f"r{k}.json", "--commit-every", "1"
        )
        for k in (0, 1)
    ]
    for args in runs:  # one worker each (0.8 CPU): both runs' workers fit on 2 CPUs at once
        args[args.index("--num-workers") + 1] = "1"
    procs = [cli_subprocess(a, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for a in runs]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-3000:]
    assert_same_arrays(read_feature_set(store, "synth/i3d"), reference)
    by_run: dict[str, list[str]] = {}
    for record in run_records(store):
        by_run.setdefault(record["run_id"], []).extend(record["extracted"])
    assert sorted(sorted(v) for v in by_run.values()) == [
        sorted(p.stem for p in files[k::2]) for k in (0, 1)
    ]


@pytest.mark.slow
def test_sigkill_of_the_driver_on_s3_then_rerun_resumes(
    s3: Any, s3_ray: Any, videos: Path, reference: Any, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    address, _ = s3_ray
    s3.upload_dir(videos, "videos")
    store, report = s3.url("killed.store"), tmp_path / "report.json"
    args = _extract(address, s3.url("videos"), store, report, "--commit-every", "1")
    args[args.index("--num-workers") + 1] = "1"
    first = cli_subprocess(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 50
    while time.monotonic() < deadline and first.poll() is None:
        if report.is_file() and _report(report)["extracted"]:
            break
        time.sleep(0.05)
    assert first.poll() is None, f"run ended before it could be killed: {first.stderr.read()}"
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    done_first = [vid for rec in run_records(store) for vid in rec["extracted"]]
    assert 1 <= len(done_first) < 4, done_first

    code, _out, err = run_cli(capsys, *args)
    assert code == 0, err
    rerun = _report(report)
    redone = [v["video_id"] for v in rerun["extracted"]]
    assert not set(redone) & set(done_first)
    assert sorted(redone + done_first) == sorted(p.stem for p in videos.iterdir())
    assert sorted(rerun["skipped"]) == sorted(done_first)
    assert_same_arrays(read_feature_set(store, "synth/i3d"), reference)


def test_bad_s3_video_sources_exit_2_before_any_work(
    s3: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--dataset", "d", "--store", str(tmp_path / "s"), *TINY_ARGS, "--quiet"]
    code, _, err = run_cli(capsys, "extract", "--videos", "s3://no-such-bucket-x/v/", *base)
    assert code == 2 and "bucket 'no-such-bucket-x' does not exist" in err, err
    code, _, err = run_cli(capsys, "extract", "--videos", s3.url("empty/"), *base)
    assert code == 2 and "no video objects found under" in err, err
    listing = tmp_path / "list.txt"
    listing.write_text(f"{s3.url('missing/a.mp4')}\n")
    code, _, err = run_cli(capsys, "extract", "--videos", str(listing), *base)
    assert code == 2 and "do not exist" in err and "missing/a.mp4" in err, err
    assert not (tmp_path / "s").exists()


def test_planning_lists_prefixes_url_lists_and_annotation_video_dirs(
    s3: Any, tmp_path: Path
) -> None:
    from talkit.datasets import Dataset, Video, write_activitynet_json
    from talkit.pipelines.plan import plan_videos

    blobs = {"a.mp4": b"first", "sub/b.MKV": b"second!", ".hidden/c.mp4": b"x", "d.txt": b"y"}
    for key, data in blobs.items():
        s3.put(f"in/{key}", data)
    plan = plan_videos(s3.url("in"))
    assert plan.kind == "prefix"
    assert [(i.video_id, i.path, i.size, i.etag) for i in plan.items] == [
        ("a", s3.url("in/a.mp4"), 5, hashlib.md5(b"first").hexdigest()),
        ("b", s3.url("in/sub/b.MKV"), 7, hashlib.md5(b"second!").hexdigest()),
    ]
    local = tmp_path / "local.mp4"
    local.write_bytes(b"z")
    listing = tmp_path / "list.txt"
    listing.write_text(f"# mixed\n{s3.url('in/sub/b.MKV')}\tbee\nlocal.mp4\n")
    plan = plan_videos(listing)
    assert [(i.video_id, i.path, i.size) for i in plan.items] == [
        ("bee", s3.url("in/sub/b.MKV"), 7),
        ("local", local, None),
    ]
    ann = tmp_path / "gt.json"
    write_activitynet_json(
        Dataset(
            classes=["x"],
            videos={v: Video(id=v, subset="test", duration_s=1.0) for v in ("a", "b", "gone")},
        ),
        ann,
    )
    plan = plan_videos(ann, video_dir=s3.url("in/"))
    assert [i.path for i in plan.items] == [s3.url("in/a.mp4"), s3.url("in/sub/b.MKV")]
    assert plan.missing == ["gone"] and plan.video_dir == s3.url("in/")


def test_a_spool_file_is_deleted_after_use_and_failure_and_stale_ones_are_cleaned(
    s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import multiprocessing as mp

    from talkit.pipelines.objects import ObjectReadError, clean_stale_spools, spooled

    spool = tmp_path / "spool"
    monkeypatch.setenv("TALKIT_SPOOL_DIR", str(spool))
    data = b"\x00video bytes\xff" * 1000
    url = s3.put("v/clip.mp4", data)
    with spooled(url) as (path, size, etag):
        assert path.read_bytes() == data and path.suffix == ".mp4"
        assert (size, etag) == (len(data), hashlib.md5(data).hexdigest())
    assert list(spool.iterdir()) == []
    with pytest.raises(RuntimeError), spooled(url) as (path, _, _):
        raise RuntimeError("the decoder failed")
    assert list(spool.iterdir()) == []
    with pytest.raises(ObjectReadError, match="no object at"), spooled(s3.url("v/gone.mp4")):
        pass
    assert list(spool.iterdir()) == []

    # A worker killed mid-video leaves its folder; the next worker removes it, and only it.
    dead = mp.get_context("spawn").Process(target=os.getpid)
    dead.start()
    dead.join()
    (spool / f"talkit-spool-{dead.pid}-abc").mkdir()
    (spool / f"talkit-spool-{dead.pid}-abc" / "video.mp4").write_bytes(b"x")
    (spool / f"talkit-spool-{os.getpid()}-def").mkdir()
    (spool / "unrelated").mkdir()
    assert clean_stale_spools() == 1
    assert sorted(p.name for p in spool.iterdir()) == [
        f"talkit-spool-{os.getpid()}-def",
        "unrelated",
    ]
