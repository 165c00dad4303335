"""The Ray extraction pipeline end to end: equivalence, crashes, damage, demo.

One Ray session serves every test here (``ray_session``: ray.init costs seconds); runs on
a multi-node cluster started with `ray start` are in tests/test_cluster.py. Videos are tiny (64x48,
2-4 s) and I3D runs at 32 px with random weights, so the whole file takes a few minutes
on 2 cores.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_helpers import run_cli
from pipeline_helpers import (
    TINY_ARGS,
    TINY_CONFIG,
    TINY_EXTRACT_KW,
    assert_same_arrays,
    cli_subprocess,
    read_feature_set,
    run_records,
)

pytestmark = pytest.mark.slow

ray = pytest.importorskip("ray")


@pytest.fixture(scope="session")
def ray_session() -> Any:
    """One embedded Ray (2 CPUs) for all pipeline tests; its address for subprocesses."""
    if ray.is_initialized():
        ray.shutdown()
    ctx = ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ctx.address_info["address"]
    ray.shutdown()


@pytest.fixture(scope="session")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 synthetic action videos, 64x48, 2-4 s (3-6 snippets each)."""
    from talkit.datasets.synthetic.videos import generate_videos

    root = tmp_path_factory.mktemp("videos")
    generate_videos(root, num_videos=6, size=(64, 48), duration_s=(2.0, 4.0), seed=0)
    return root / "videos"


@pytest.fixture(scope="session")
def reference(
    ray_session: str, videos: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """An uninterrupted `talkit extract` run with 2 workers: its store and report."""
    from talkit.pipelines.config import ExtractConfig
    from talkit.pipelines.plan import plan_videos
    from talkit.pipelines.run import ExtractJob, run_extraction

    out = tmp_path_factory.mktemp("reference")
    cfg = ExtractConfig.model_validate({**TINY_CONFIG, "num_workers": 2})
    job = ExtractJob(plan_videos(videos), str(out / "ref.store"), "synth", cfg)
    report = run_extraction(job)
    return {
        "store": out / "ref.store",
        "report": report,
        "arrays": read_feature_set(out / "ref.store", "synth/i3d"),
    }


def test_pipeline_features_are_bit_identical_to_extract_video(
    reference: dict[str, Any], videos: Path
) -> None:
    import torch

    from talkit.extractors.extract import extract_video

    report = reference["report"]
    assert report.ray["workers"] == 2 and not report.failures
    assert sorted(v.video_id for v in report.extracted) == sorted(p.stem for p in videos.iterdir())
    # Float sums depend on the thread count: compare at the workers' (1 thread each).
    before = torch.get_num_threads()
    torch.set_num_threads(report.ray["torch_threads"])
    try:
        for path in sorted(videos.iterdir()):
            feats = extract_video(path, **TINY_EXTRACT_KW)
            stored = reference["arrays"][path.stem]
            for stream in ("rgb", "flow"):
                assert feats.streams[stream].tobytes() == stored[stream].tobytes(), path.stem
            np.testing.assert_array_equal(feats.timestamps, stored["timestamps"])
    finally:
        torch.set_num_threads(before)
    from talkit.store import FeatureStore

    fs = FeatureStore.open(str(reference["store"])).feature_set("synth/i3d")
    assert fs.spec.checkpoints == {"rgb": "random:0", "flow": "random:0"}
    assert fs.spec.params["random_weights"] is True
    assert fs.spec.params["flow"]["approximate"] is True  # Farneback, labelled as such
    attrs = fs.video("video_test_0000004").attrs
    assert attrs["source"]["size"] == (videos / "video_test_0000004.mp4").stat().st_size
    assert attrs["native_fps"] == 25.0 and attrs["frame_count"] > 0


def test_a_feature_set_written_through_the_python_api_resumes_in_the_pipeline(
    reference: dict[str, Any], videos: Path, tmp_path: Path
) -> None:
    """extract_video + FeatureStore record the same spec as `talkit extract`, so the pipeline
    continues such a feature set instead of refusing it as extracted with other settings."""
    from talkit.extractors.extract import extract_video
    from talkit.pipelines.config import ExtractConfig
    from talkit.pipelines.plan import plan_videos
    from talkit.pipelines.run import ExtractJob, run_extraction
    from talkit.store import FeatureStore

    first = sorted(videos.iterdir())[0]
    feats = extract_video(first, **TINY_EXTRACT_KW)
    store = FeatureStore.create(str(tmp_path / "api.store"))
    store.create_feature_set("synth", "i3d", feats.spec.to_store_spec())
    with store.writer(message="python api") as w:
        w.write_video(
            "synth", "i3d", first.stem, streams=feats.streams, timestamps=feats.timestamps
        )
    cfg = ExtractConfig.model_validate({**TINY_CONFIG, "num_workers": 2})
    report = run_extraction(
        ExtractJob(plan_videos(videos), str(tmp_path / "api.store"), "synth", cfg)
    )
    assert not report.failures
    assert sorted(read_feature_set(tmp_path / "api.store", "synth/i3d")) == sorted(
        reference["arrays"]
    )


def test_features_made_with_other_frame_colours_are_not_resumed_into(
    videos: Path, tmp_path: Path
) -> None:
    """A feature set whose spec predates the ffmpeg-exact colour conversion (no
    ``params.frames``) is refused by name, so old and new colours never mix in one set."""
    from talkit.extractors.extract import extract_video
    from talkit.extractors.video import FRAME_COLOURS
    from talkit.pipelines.config import ExtractConfig
    from talkit.pipelines.plan import plan_videos
    from talkit.pipelines.run import ExtractJob, SpecMismatchError, run_extraction
    from talkit.store import FeatureStore

    spec = extract_video(sorted(videos.iterdir())[0], **TINY_EXTRACT_KW).spec.to_store_spec()
    assert spec.params["frames"] == FRAME_COLOURS
    before_fix = spec.model_copy(
        update={"params": {k: v for k, v in spec.params.items() if k != "frames"}}
    )
    url = str(tmp_path / "old.store")
    FeatureStore.create(url).create_feature_set("synth", "i3d", before_fix)
    cfg = ExtractConfig.model_validate({**TINY_CONFIG, "num_workers": 1})
    with pytest.raises(SpecMismatchError, match=r"params\.frames: None -> .rgb24 as ffmpeg"):
        run_extraction(ExtractJob(plan_videos(videos), url, "synth", cfg))
    assert list(FeatureStore.open(url).feature_set("synth", "i3d").videos()) == []


def test_killing_a_worker_mid_run_still_gives_every_video_once(
    reference: dict[str, Any], videos: Path, tmp_path: Path
) -> None:
    from talkit.pipelines.config import ExtractConfig
    from talkit.pipelines.plan import plan_videos
    from talkit.pipelines.progress import RunObserver
    from talkit.pipelines.run import ExtractJob, run_extraction

    class KillOne(RunObserver):
        """Kills the worker that finished the first video: its next video is in flight."""

        def __init__(self) -> None:
            self.actors: dict[int, str] = {}
            self.killed: str | None = None
            self.retried: list[str] = []

        def on_worker_ready(self, name: str, node_id: str, pid: int) -> None:
            self.actors[pid] = name

        def on_video(self, done: Any) -> None:
            if self.killed is None:
                self.killed = self.actors[done.worker_pid]
                ray.kill(ray.get_actor(self.killed), no_restart=True)

        def on_retry(self, video_id: str, reason: str) -> None:
            self.retried.append(video_id)

    observer = KillOne()
    cfg = ExtractConfig.model_validate({**TINY_CONFIG, "num_workers": 2, "commit_every": 2})
    job = ExtractJob(plan_videos(videos), str(tmp_path / "s.store"), "synth", cfg)
    report = run_extraction(job, observer)
    assert observer.killed is not None and observer.retried, "the kill hit no video in flight"
    assert not report.failures
    ids = [v.video_id for v in report.extracted]
    assert Counter(ids) == Counter(p.stem for p in videos.iterdir())  # each exactly once
    committed = [vid for rec in run_records(tmp_path / "s.store") for vid in rec["extracted"]]
    assert Counter(committed) == Counter(ids)
    assert_same_arrays(read_feature_set(tmp_path / "s.store", "synth/i3d"), reference["arrays"])


def test_sigkill_of_the_driver_then_rerun_resumes_without_redoing(
    reference: dict[str, Any],
    ray_session: str,
    videos: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store, report = tmp_path / "s.store", tmp_path / "report.json"
    args = ["extract", "--videos", str(videos), "--dataset", "synth", "--store", str(store),
            *TINY_ARGS, "--num-workers", "1", "--commit-every", "1", "--ray-address", ray_session,
            "--report", str(report), "--quiet"]  # fmt: skip
    first = cli_subprocess(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    committed: list[str] = []
    while time.monotonic() < deadline and first.poll() is None:
        if report.is_file():
            committed = [v["video_id"] for v in json.loads(report.read_text())["extracted"]]
            if committed:
                break
        time.sleep(0.05)
    assert first.poll() is None, f"run ended before it could be killed: {first.stderr.read()}"
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    done_first = [vid for rec in run_records(store) for vid in rec["extracted"]]
    assert 1 <= len(done_first) < 6, done_first

    code, _out, err = run_cli(capsys, *args)  # the same command again (in-process is faster)
    assert code == 0, err
    rerun = json.loads(report.read_text())
    records = [r for r in run_records(store) if r["run_id"] == rerun["run_id"]]
    redone = [vid for rec in records for vid in rec["extracted"]]
    assert not set(redone) & set(done_first)  # completed videos were not extracted again
    assert sorted(redone + done_first) == sorted(p.stem for p in videos.iterdir())
    assert sorted(rerun["skipped"]) == sorted(done_first)
    assert_same_arrays(read_feature_set(store, "synth/i3d"), reference["arrays"])


def test_broken_videos_are_recorded_and_the_rest_complete(
    ray_session: str, videos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from talkit.datasets.synthetic.broken import make_broken_videos

    kinds = make_broken_videos(tmp_path / "in" / "broken", seed=0)
    (tmp_path / "in" / "good").symlink_to(videos)
    store, report = tmp_path / "s.store", tmp_path / "report.json"
    code, out, err = run_cli(
        capsys, "extract", "--videos", str(tmp_path / "in"), "--dataset", "synth",
        "--store", str(store), *TINY_ARGS, "--num-workers", "2", "--report", str(report),
        "--quiet",
    )  # fmt: skip
    assert code == 1, err
    assert "6 of 13 videos failed" in err
    data = json.loads(report.read_text())
    failed = {f["video_id"]: (f["error_type"], f["kind"]) for f in data["failures"]}
    assert failed == {
        "truncated": ("VideoDecodeError", "truncated"),
        "garbage_middle": ("VideoDecodeError", "corrupt"),
        "no_moov": ("VideoDecodeError", "unreadable"),
        "zero_bytes": ("VideoDecodeError", "unreadable"),
        "audio_only": ("VideoDecodeError", "unreadable"),
        "single_frame": ("NoSnippetsError", None),
    }
    assert set(kinds) - set(failed) == {"lying_extension"}  # a valid video, named .mp4
    stored = read_feature_set(store, "synth/i3d")
    assert sorted(stored) == sorted([p.stem for p in videos.iterdir()] + ["lying_extension"])
    recorded = {f["video_id"]: f["error_type"] for f in run_records(store)[-1]["failed"]}
    assert recorded == {vid: kind for vid, (kind, _) in failed.items()}
    assert "truncated" in out and "VideoDecodeError" in out  # the failures table


def test_max_failures_stops_early_and_keeps_finished_videos(
    ray_session: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from talkit.datasets.synthetic.broken import make_broken_videos

    make_broken_videos(tmp_path / "in", seed=0)
    for name in ("truncated", "lying_extension", "single_frame"):
        (tmp_path / "in" / f"{name}.mp4").unlink()
    code, _out, err = run_cli(
        capsys, "extract", "--videos", str(tmp_path / "in"), "--dataset", "d",
        "--store", str(tmp_path / "s.store"), *TINY_ARGS, "--max-failures", "1",
        "--report", str(tmp_path / "r.json"), "--quiet",
    )  # fmt: skip
    assert code == 1 and "more than --max-failures 1" in err
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["aborted"] and len(data["failures"]) == 2


def test_setup_errors_exit_2_before_any_work(
    videos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["extract", "--videos", str(videos), "--dataset", "d", "--store", str(tmp_path / "s")]
    code, _, err = run_cli(capsys, *base, "--checkpoint", "rgb")
    assert code == 2 and "STREAM=PATH" in err
    code, _, err = run_cli(capsys, *base, "--streams", "rgb", "--input-size", "32")
    assert code == 2 and "no weights" in err and "--random-weights" in err.replace("\n", " ")
    code, _, err = run_cli(capsys, *base, "--config", "nope")
    assert code == 2 and "thumos14_i3d" in err
    assert not (tmp_path / "s").exists()


def test_a_changed_spec_needs_a_new_feature_set(
    reference: dict[str, Any], videos: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import shutil

    store = tmp_path / "s.store"
    shutil.copytree(reference["store"], store)
    args = ["extract", "--videos", str(videos), "--dataset", "synth", "--store", str(store),
            *TINY_ARGS, "--quiet", "--report", str(tmp_path / "r.json")]  # fmt: skip
    code, _, err = run_cli(capsys, *args, "--flow", "dis")  # the last --flow counts
    assert code == 2, err
    assert "params.flow.method: 'farneback' -> 'dis'" in err and "--feature-set" in err
    code, _out, err = run_cli(capsys, *args)  # same spec: all done, nothing redone
    assert code == 0, err
    assert json.loads((tmp_path / "r.json").read_text())["totals"]["skipped"] == 6


def test_demo_runs_end_to_end_and_prints_the_store_summary(
    ray_session: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    demo = tmp_path / "demo"
    args = ["demo", "--out", str(demo), "--videos", "8", "--duration", "2.5"]
    code, out, err = run_cli(capsys, *args, "--train-iterations", "20")
    assert code == 0, err
    assert "store" in out and "synthetic/i3d" in out
    assert "random:0" in out and "tvl1" in out
    data = json.loads((demo / "extract-report.json").read_text())
    assert data["totals"]["extracted"] == 8 and data["totals"]["snippets"] > 0
    assert (demo / "data" / "annotations" / "gt.json").is_file()
    # Step 4: LGBM-Net trained on the store, scored on the test videos, table printed.
    report = json.loads((demo / "train-lgbm" / "report_test.json").read_text())
    assert report["split"] == "test" and report["result"]["gt"]["videos"] == 2
    assert "average mAP 0.1:0.7" in out and "baseline (%)" in out
    assert (demo / "train-lgbm" / "checkpoints" / "best.pt").is_file()


@pytest.mark.slow
def test_the_demo_extracts_all_five_backbones_in_one_pass(
    ray_session: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`talkit demo --backbones all`: I3D and LGBM-Net's four backbones at 48 px, each
    video decoded once, and the store summary states each feature set's spec."""
    from talkit.pipelines.demo import DEMO_ALL_BACKBONES

    demo = tmp_path / "demo"
    args = ["demo", "--out", str(demo), "--videos", "3", "--duration", "2.5"]
    code, out, err = run_cli(capsys, *args, "--train-iterations", "0", "--backbones", "all")
    assert code == 0, err
    report = json.loads((demo / "extract-report.json").read_text())
    assert report["feature_sets"] == [f"synthetic/{b}" for b in DEMO_ALL_BACKBONES]
    assert report["totals"]["extracted"] == 3
    for video in report["extracted"]:  # 2.5 s: one decode of its frames for all five
        assert 0 < video["frames_decoded"] <= 2.5 * 30 + 1
    text = " ".join(out.split())
    for name in DEMO_ALL_BACKBONES:
        assert f"backbone {name} snippet" in text
    assert "64 frames at 30 fps: a 2.13 s window every 0.533 s" in text  # TDN
    assert "rgb=768" in text and "rgb=2304" in text


def test_a_worker_with_another_talkit_version_stops_the_run(
    ray_session: str, videos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node that joined after the start-up checks, with another talkit installed."""
    import importlib.metadata

    import talkit
    from talkit.pipelines.config import ExtractConfig
    from talkit.pipelines.nodes import VersionMismatchError
    from talkit.pipelines.plan import plan_videos
    from talkit.pipelines.run import ExtractJob, run_extraction

    installed = importlib.metadata.version("talkit")  # what the worker processes import
    monkeypatch.setattr(talkit, "__version__", "0.0.0+driver")
    cfg = ExtractConfig.model_validate({**TINY_CONFIG, "num_workers": 1})
    job = ExtractJob(plan_videos(videos), str(tmp_path / "s.store"), "synth", cfg)
    with pytest.raises(VersionMismatchError) as caught:
        run_extraction(job)
    assert f"runs talkit {installed}, the driver runs 0.0.0+driver" in caught.value.message
    assert caught.value.exit_code == 2


def test_a_worker_start_error_is_reported_by_its_cause(ray_session: str) -> None:
    """Ray's own report starts with where the error was raised; the cause comes last."""
    from talkit.pipelines.nodes import cause_line

    class Broken:
        def __init__(self) -> None:
            raise FileNotFoundError("no checkpoint at /models/rgb.pt on this node")

        def ready(self) -> None:
            return None

    actor = ray.remote(Broken).options(num_cpus=0.01).remote()
    with pytest.raises(ray.exceptions.RayActorError) as caught:
        ray.get(actor.ready.remote(), timeout=60)
    assert cause_line(caught.value) == (
        "FileNotFoundError: no checkpoint at /models/rgb.pt on this node"
    )
