"""`talkit extract` under faults: SIGKILL inside a commit, Ctrl-C (once and twice), broken setups.

Each fault is real: the driver is a separate process killed with SIGKILL or sent SIGINT,
workers run on real Ray, the store is a real icechunk repository, the broken install is
a real module that fails to import. Where a kill must land inside a commit, the driver is
held there by a test pause point (talkit/pipelines/testhooks.py) rather than by timing.
After every fault, the same command resumes, and the store then holds exactly the arrays
of a clean run.

Driver runs here join one module-wide Ray session (``--ray-address``), except where the
fault is in the workers' environment or in the terminal's process group.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import run_cli
from pipeline_fault_helpers import (
    each_committed_once,
    extract_args,
    make_videos,
    read_report,
    reference_features,
    report_extracted,
    start,
    wait_until,
)
from pipeline_helpers import TINY_CONFIG, assert_same_arrays, read_feature_set

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_address() -> Any:
    """One embedded Ray (2 CPUs) for this module; its address for driver subprocesses."""
    if ray.is_initialized():
        ray.shutdown()
    ctx = ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ctx.address_info["address"]
    ray.shutdown()


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_videos(tmp_path_factory.mktemp("videos"), 4)


@pytest.fixture(scope="module")
def reference(videos: Path) -> dict[str, Any]:
    return reference_features(videos)


def _stored(store: Path) -> list[str]:
    from talkit.store import FeatureStore

    if not (store / "refs").is_dir():
        return []
    return FeatureStore.open(str(store)).feature_set("synth/i3d").videos()


@pytest.mark.parametrize(
    ("point", "committed"),
    [("commit-written:2", 1), ("commit-landed:2", 2)],
    ids=["inside-the-commit", "after-the-commit-before-the-report"],
)
def test_sigkill_inside_a_commit_then_the_same_command_resumes_to_a_clean_result(
    point: str, committed: int, ray_address: str, videos: Path, reference: Any,
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """Killed while the 2nd commit's videos are written but not committed, or after it
    landed but before the report says so: the store holds whole commits only."""
    store, report, flag = tmp_path / "s.store", tmp_path / "r.json", tmp_path / "paused"
    args = extract_args(videos, store, report, "--ray-address", ray_address)
    env = {"TALKIT_TEST_PAUSE": point, "TALKIT_TEST_PAUSE_FILE": str(flag)}
    proc = start(args, env=env)
    try:
        wait_until(flag.is_file, proc, f"the driver reached {point}")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    stored = _stored(store)
    assert len(stored) == committed, stored  # whole commits, nothing of the one in progress
    assert len(report_extracted(report)) == 1  # the report is one commit behind at most
    assert_same_arrays(read_feature_set(store, "synth/i3d"), {v: reference[v] for v in stored})

    code, _out, err = run_cli(capsys, *args)  # the same command, no pause
    assert code == 0, err
    again = read_report(report)
    assert sorted(again["skipped"]) == stored  # committed videos are not extracted again
    assert sorted(stored + report_extracted(report)) == sorted(reference)
    assert_same_arrays(read_feature_set(store, "synth/i3d"), reference)
    assert all(n == 1 for n in each_committed_once(store).values())


def test_ctrl_c_commits_what_is_finished_says_how_to_resume_and_exits_130(
    videos: Path, reference: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    ray_address: str,
) -> None:  # fmt: skip
    """SIGINT to the whole process group, as a terminal's Ctrl-C sends it, with Ray started
    inside the command (its processes are in that group too)."""
    store, report = tmp_path / "s.store", tmp_path / "r.json"
    args = extract_args(videos, store, report)  # embedded Ray: the user's usual run
    proc = start(args, start_new_session=True)
    try:
        wait_until(lambda: len(report_extracted(report)) >= 1, proc, "the first commit")
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    text = err.decode()
    assert proc.returncode == 130, text[-3000:]
    data = read_report(report)
    assert data["aborted"] == "interrupted" and data["stopped_by"] == "interrupt"
    done = sorted(report_extracted(report))
    assert 1 <= len(done) < len(reference)
    assert _stored(store) == done  # what the report calls committed is what the store holds
    last = [ln for ln in text.splitlines() if ln.startswith("interrupted:")]
    assert len(last) == 1, text  # one line that says it all
    assert f"{len(done)} video(s) extracted by this run are committed" in last[0]
    assert data["store_version"] in last[0]
    assert "resume with the same command: talkit extract --videos" in last[0]
    assert "store version" in out.decode() and "interrupted" in out.decode()  # the summary

    code, _out, err2 = run_cli(capsys, *args)  # the same command resumes (in-process Ray)
    assert code == 0, err2
    assert sorted(read_report(report)["skipped"]) == done
    assert_same_arrays(read_feature_set(store, "synth/i3d"), reference)


def test_a_second_ctrl_c_stops_at_once_and_leaves_the_store_whole(
    ray_address: str, videos: Path, reference: Any, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """The second SIGINT lands while the driver is inside its second commit: that commit is
    abandoned, the report lists its video as not committed, and the store is intact."""
    store, report, flag = tmp_path / "s.store", tmp_path / "r.json", tmp_path / "paused"
    args = extract_args(videos, store, report, "--ray-address", ray_address)
    env = {"TALKIT_TEST_PAUSE": "commit-written:2", "TALKIT_TEST_PAUSE_FILE": str(flag)}
    proc = start(args, env=env)
    try:
        wait_until(flag.is_file, proc, "the driver reached its second commit")
        proc.send_signal(signal.SIGINT)  # first: noted; the commit goes on
        # Two signals that arrive before Python runs its handler count as one.
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)  # second: stop now
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err.decode()[-3000:]
    data = read_report(report)
    assert data["aborted"] == "interrupted"
    first = report_extracted(report)
    assert len(first) == 1 and len(data["uncommitted"]) == 1
    assert "1 finished video(s) were not committed" in err.decode()
    assert _stored(store) == first  # the abandoned commit left nothing behind
    assert_same_arrays(read_feature_set(store, "synth/i3d"), {v: reference[v] for v in first})

    code, _out, err2 = run_cli(capsys, *args)
    assert code == 0, err2
    assert_same_arrays(read_feature_set(store, "synth/i3d"), reference)


def test_a_broken_install_on_the_workers_stops_the_run_at_once_with_exit_2(
    videos: Path, tmp_path: Path, ray_address: str
) -> None:
    """Every worker fails to import PyAV (a missing shared library): that is not the
    video's fault, so the run stops at the first failure instead of failing each video."""
    broken = tmp_path / "site" / "av"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text(
        'raise ImportError("libavcodec.so.61: cannot open shared object file")\n'
    )
    path = os.pathsep.join([str(tmp_path / "site"), os.environ.get("PYTHONPATH", "")])
    store, report = tmp_path / "s.store", tmp_path / "r.json"
    # Embedded Ray: its workers start with this PYTHONPATH (the driver never imports av).
    proc = start(extract_args(videos, store, report), env={"PYTHONPATH": path})
    _, err = proc.communicate(timeout=120)
    text = err.decode()
    assert proc.returncode == 2, text[-3000:]
    data = read_report(report)
    assert data["stopped_by"] == "setup" and len(data["failures"]) == 1
    assert data["failures"][0]["error_type"] == "ImportError"
    assert data["failures"][0]["scope"] == "setup"
    assert "stopped at once" in data["aborted"] and "libavcodec" in data["aborted"]
    errors = [ln for ln in text.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "not of the video" in errors[0]


def test_n_failures_in_a_row_of_one_type_stop_the_run_and_keep_what_finished(
    ray_address: str, videos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A good video, then unreadable ones: --max-consecutive-failures 3 stops after the
    third in a row; the good video is committed; the report says why."""
    folder = tmp_path / "in"
    folder.mkdir()
    good = sorted(videos.iterdir())
    (folder / "a_good.mp4").symlink_to(good[0])
    for i in range(5):
        (folder / f"b_bad{i}.mp4").write_bytes(os.urandom(2000) if i % 2 else b"")
    (folder / "c_good.mp4").symlink_to(good[1])
    store, report = tmp_path / "s.store", tmp_path / "r.json"
    args = extract_args(folder, store, report, "--max-consecutive-failures", "3",
                        "--commit-every", "10")  # fmt: skip
    code, out, err = run_cli(capsys, *args)
    assert code == 1, err
    assert "3 videos in a row failed with VideoDecodeError" in err
    assert "--max-consecutive-failures 0" in err
    data = read_report(report)
    assert data["stopped_by"] == "max-failures" and data["aborted"].startswith("3 videos in a row")
    assert [f["video_id"] for f in data["failures"]] == ["b_bad0", "b_bad1", "b_bad2"]
    assert report_extracted(report) == ["a_good"] and _stored(store) == ["a_good"]
    assert "stopped" in out  # the summary says why

    # 0: never stop for this; every video is tried.
    code, _out, err = run_cli(capsys, *args[:-4], "--max-consecutive-failures", "0")
    assert code == 1, err
    data = read_report(report)
    assert data["aborted"] is None and len(data["failures"]) == 5
    assert _stored(store) == ["a_good", "c_good"]


def test_a_checkpoint_deleted_after_planning_stops_the_run_at_once(
    ray_address: str, videos: Path, tmp_path: Path
) -> None:
    """The driver read the checkpoint (spec, sha256); it is gone when the workers load it."""
    import torch

    from talkit.extractors import get
    from talkit.pipelines.config import ExtractConfig
    from talkit.pipelines.failures import SetupFailureError
    from talkit.pipelines.plan import plan_videos
    from talkit.pipelines.progress import RunObserver
    from talkit.pipelines.run import ExtractJob, run_extraction

    model = get("i3d", streams=("rgb",), input_size=32, resize_short=48)
    model.random_weights(0)
    ckpt = tmp_path / "rgb.pt"
    torch.save(model.models["rgb"].state_dict(), ckpt)

    class DeleteAfterPlanning(RunObserver):
        def on_start(self, report: Any, todo: int) -> None:
            ckpt.unlink()

    settings = {**TINY_CONFIG, "streams": ["rgb"], "random_weights_seed": None,
                "checkpoints": {"rgb": str(ckpt)}, "num_workers": 1}  # fmt: skip
    cfg = ExtractConfig.model_validate(settings)
    report = tmp_path / "r.json"
    job = ExtractJob(plan_videos(videos), str(tmp_path / "s.store"), "synth", cfg,
                     report_path=report)  # fmt: skip
    with pytest.raises(SetupFailureError) as caught:
        run_extraction(job, DeleteAfterPlanning())
    assert caught.value.exit_code == 2
    assert "no extraction worker could start" in caught.value.message
    assert "checkpoint not found" in caught.value.message
    data = read_report(report)
    assert data["stopped_by"] == "setup" and data["totals"]["extracted"] == 0
