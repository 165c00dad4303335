"""Scheduling: all CPUs work on the videos there are; batches bounded by memory; peak memory.

Real Ray (2 CPUs, shared with the other pipeline modules when they run first), tiny
videos (64x48, 2 s) and I3D at 32 px with random weights. Assertions are on what the
workers report back (threads, batch size, peak memory), never on timings.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from pipeline_helpers import TINY_CONFIG

ray = pytest.importorskip("ray")

# The tiny settings, with the run-level defaults left to talkit (no threads, no batch size).
DEFAULTS = {k: v for k, v in TINY_CONFIG.items() if k not in ("torch_threads", "batch_size")}


@pytest.fixture(scope="module")
def three_videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from talkit.datasets.synthetic.videos import generate_videos

    root = tmp_path_factory.mktemp("sched")
    generate_videos(root, num_videos=3, size=(64, 48), duration_s=(2.0, 2.0), seed=0)
    return root / "videos"


def _run(videos: list[Path], store: Path, report: Path | None = None, **config: Any) -> Any:
    from talkit.pipelines.config import ExtractConfig
    from talkit.pipelines.plan import plan_videos
    from talkit.pipelines.run import ExtractJob, run_extraction

    cfg = ExtractConfig.model_validate({**DEFAULTS, **config})
    listing = store.with_suffix(".txt")  # a text list of video paths
    listing.write_text("".join(f"{v}\n" for v in videos))
    job = ExtractJob(plan_videos(listing), str(store), "synth", cfg, report_path=report)
    result = run_extraction(job)
    assert not result.failures, result.failures
    return result


def _threads(report: Any) -> list[int]:
    return sorted(w["torch_threads"] for w in report.ray["worker_starts"])


@pytest.mark.slow
def test_one_video_gets_one_worker_with_every_cpu(
    ray_here: Any, three_videos: Path, tmp_path: Path
) -> None:
    one = sorted(three_videos.iterdir())[:1]
    report = _run(one, tmp_path / "one.store", tmp_path / "one.json")
    assert report.ray["workers"] == 1
    assert _threads(report) == [2]  # both CPUs work on the one video
    # --batch-size auto (the default) is resolved by the worker and recorded.
    assert report.config["batch_size"] == "auto"
    assert report.batch_size is not None and report.batch_size >= 2
    assert report.ray["worker_starts"][0]["batch_size"] == report.batch_size
    # Peak memory per worker, in the report and in the JSON file.
    assert len(report.peak_rss) == 1
    peak = next(iter(report.peak_rss.values()))
    assert 100 * 2**20 < peak < 64 * 2**30  # torch alone is > 100 MiB resident
    saved = json.loads((tmp_path / "one.json").read_text())
    assert saved["peak_rss"] == report.peak_rss
    assert saved["totals"]["max_worker_peak_rss"] == peak
    assert saved["batch_size"] == report.batch_size


@pytest.mark.slow
def test_more_videos_than_cpus_get_one_worker_per_cpu_and_overrides_are_kept(
    ray_here: Any, three_videos: Path, tmp_path: Path
) -> None:
    videos = sorted(three_videos.iterdir())
    report = _run(videos, tmp_path / "all.store")
    assert report.ray["workers"] == 2 and _threads(report) == [1, 1]
    assert len(report.peak_rss) == 2
    # --threads 2 alone: as many 2-thread workers as the CPUs hold (one here).
    wide = _run(videos[:2], tmp_path / "wide.store", torch_threads=2, batch_size=3)
    assert wide.ray["workers"] == 1 and _threads(wide) == [2] and wide.batch_size == 3
    # --num-workers 2 with one video: one worker (nothing for the second), 1 thread each.
    few = _run(videos[:1], tmp_path / "few.store", num_workers=2)
    assert few.ray["workers"] == 1 and _threads(few) == [1]


def test_sizing_gives_few_videos_fewer_wider_workers() -> None:
    from talkit.pipelines.runtime import size_workers

    cpus = {"CPU": 8.0, "memory": 16.0 * 2**30}
    for videos, workers, threads in ((1, 1, 8), (3, 3, 2), (8, 8, 1), (100, 8, 1)):
        res = size_workers(cpus, num_videos=videos)
        assert (res.num_workers, res.torch_threads) == (workers, threads), videos
        assert res.num_workers * res.num_cpus <= 8.0  # fractional requests still fit
        assert res.memory_bytes == int(16 * 2**30 / workers)
    assert size_workers(cpus, torch_threads=4).num_workers == 2
    assert size_workers(cpus, num_workers=3, torch_threads=1, num_videos=1).num_workers == 3


def test_auto_batch_is_smaller_for_a_smaller_memory_share_and_longer_snippets() -> None:
    from talkit.extractors import registry
    from talkit.extractors.batching import MIN_BATCH, auto_batch_size, backbone_snippet_bytes

    short = registry.get("i3d", streams=("rgb",), clip_len=16, stride=16)
    long = registry.get("i3d", streams=("rgb",), clip_len=64, stride=64)
    b16, b64 = backbone_snippet_bytes(short), backbone_snippet_bytes(long)
    # Activations grow with the frames per snippet: about 4x for 4x the frames.
    assert 3.5 < b64 / b16 < 4.5
    # I3D's widest layer at 16x224x224: 64 x 8 x 112 x 112 floats, in and out of BatchNorm.
    assert b16 > 2 * 64 * 8 * 112 * 112 * 4
    big, small = auto_batch_size(b16, 16 * 2**30), auto_batch_size(b16, 1 * 2**30)
    assert big > small >= MIN_BATCH
    assert auto_batch_size(b64, 16 * 2**30) < big
    assert auto_batch_size(b16, 2**20) == MIN_BATCH  # never below the floor


def test_the_worker_resolves_auto_from_its_memory_share() -> None:
    from talkit.pipelines.worker import BackboneJob, ExtractWorker

    job = BackboneJob("i3d", "i3d", options={"streams": ("rgb",)}, random_weights_seed=0)
    threads = torch.get_num_threads()  # a worker sets this process's torch threads
    try:
        roomy = ExtractWorker([job], batch_size="auto", memory_bytes=16 * 2**30, torch_threads=1)
        tight = ExtractWorker([job], batch_size="auto", memory_bytes=1 * 2**30, torch_threads=1)
        fixed = ExtractWorker([job], batch_size=5, memory_bytes=1 * 2**30, torch_threads=1)
        info = tight.ready()
    finally:
        torch.set_num_threads(threads)
    assert roomy.batch_size > tight.batch_size >= 2
    assert fixed.batch_size == 5
    assert info["batch_size"] == tight.batch_size and info["torch_threads"] == 1


def test_summary_shows_batch_and_peak_memory() -> None:
    from rich.console import Console

    from talkit.pipelines.progress import summary_table
    from talkit.pipelines.report import RunReport

    report = RunReport("r", "s", "d", ["d/i3d"], config={"batch_size": "auto"})
    report.ray = {"workers": 2, "nodes": 1, "torch_threads": 1}
    report.batch_size = 6
    report.note_peak_rss("w0", 3 * 2**29)
    report.note_peak_rss("w0", 2**29)  # the highest one is kept
    report.note_peak_rss("w1", 2**30)
    console = Console(width=200, record=True)
    console.print(summary_table(report))
    text = console.export_text()
    assert "batch 6 (auto)" in text
    assert "1.50 GiB largest worker" in text
    assert report.to_dict()["totals"]["max_worker_peak_rss"] == 3 * 2**29


@pytest.fixture(scope="module")
def long_and_short(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A 2 s and a 20 s video: one worker idles long before the other is done."""
    from talkit.datasets.synthetic.videos import generate_videos

    root = tmp_path_factory.mktemp("rebalance")
    videos = []
    for name, seconds in (("short", 2.0), ("long", 20.0)):
        generate_videos(
            root / name, num_videos=1, size=(64, 48), duration_s=(seconds, seconds), seed=1
        )
        (video,) = (root / name / "videos").iterdir()
        videos.append(video.rename(root / f"{name}{video.suffix}"))
    return videos


def _relative_gap(a: dict[str, Any], b: dict[str, Any]) -> float:
    import numpy as np

    assert sorted(a) == sorted(b)
    gaps = []
    for vid in a:
        for name in a[vid]:
            x, y = np.asarray(a[vid][name], np.float64), np.asarray(b[vid][name], np.float64)
            assert x.shape == y.shape, (vid, name)
            gaps.append(float(np.abs(x - y).max() / max(np.abs(y).max(), 1e-12)))
    return max(gaps)


@pytest.mark.slow
def test_idle_workers_give_their_threads_to_the_busy_one_at_the_end(
    ray_here: Any, long_and_short: list[Path], tmp_path: Path
) -> None:
    from pipeline_helpers import read_feature_set

    # Small batches, so the long video has many batches to switch threads between.
    report = _run(long_and_short, tmp_path / "auto.store", batch_size=2)
    assert report.ray["workers"] == 2 and _threads(report) == [1, 1]
    pids = {w["worker"]: w["pid"] for w in report.ray["worker_starts"]}
    long_id = next(v for v in report.extracted if v.snippets > 20)
    busy = next(w for w, pid in pids.items() if pid == long_id.worker_pid)
    changes = report.thread_changes.get(busy)
    assert changes, report.thread_changes  # the long video's worker got the idle cores
    assert changes[-1]["to"] == 2 and changes[0]["from"] == 1
    # (If one worker was ready first it got both videos; the other's cores still go to it.)
    assert changes[-1]["video"] in {
        v.video_id for v in report.extracted if v.worker_pid == pids[busy]
    }
    # Pinned threads: features bit-identical across runs, so no thread ever changes.
    pinned = _run(long_and_short, tmp_path / "pinned.store", batch_size=2, torch_threads=1)
    assert pinned.ray["workers"] == 2 and _threads(pinned) == [1, 1]
    assert pinned.thread_changes == {}
    # More threads change float sums in the last bits only.
    gap = _relative_gap(
        read_feature_set(tmp_path / "auto.store", "synth/i3d"),
        read_feature_set(tmp_path / "pinned.store", "synth/i3d"),
    )
    assert gap < 1e-5


def test_summary_shows_thread_changes() -> None:
    from rich.console import Console

    from talkit.pipelines.progress import summary_table
    from talkit.pipelines.report import RunReport

    report = RunReport("r", "s", "d", ["d/i3d"])
    report.note_thread_change(
        "talkit-extract-x-1", {"time": 112.5, "from": 1, "to": 2, "video": "v"}, since=100.0
    )
    assert report.to_dict()["thread_changes"] == {
        "talkit-extract-x-1": [{"from": 1, "to": 2, "video": "v", "at_s": 12.5}]
    }
    console = Console(width=200, record=True)
    console.print(summary_table(report))
    assert "1: 1->2 at 12.5 s" in console.export_text()


def test_a_worker_reports_its_own_peak_not_its_spawners() -> None:
    """ru_maxrss of a spawned process starts at its parent's peak (Linux carries it over
    vfork and exec); the reported peak must be the worker's own."""
    import subprocess
    import sys

    import numpy as np

    from talkit.pipelines.worker import peak_rss

    ballast = np.ones(512 * 2**20, np.uint8)  # this process: > 512 MiB resident
    code = "from talkit.pipelines.worker import peak_rss; print(peak_rss())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert peak_rss() > 512 * 2**20 > 2 * int(out.stdout)  # the child imports no torch
    del ballast


def test_the_drivers_footprint_gives_the_workers_own_auto_batch() -> None:
    """The driver measures the snippet footprint once (snippet_footprint) and hands it to
    the workers, which then skip their own shape-only forward: same bytes, same batch."""
    from talkit.extractors.batching import backbone_snippet_bytes
    from talkit.pipelines.worker import BackboneJob, ExtractWorker, snippet_footprint

    jobs = [
        BackboneJob("i3d", "i3d", options={"streams": ("rgb",), "clip_len": 64}),
        BackboneJob("i3d", "small", options={"streams": ("rgb",), "input_size": 112}),
    ]
    seeded = [replace(j, random_weights_seed=0) for j in jobs]
    threads = torch.get_num_threads()
    try:
        own = ExtractWorker(seeded, batch_size="auto", memory_bytes=2**31, torch_threads=1)
        measured = snippet_footprint(jobs)  # unset networks, as the driver builds them
        given = ExtractWorker(
            seeded, batch_size="auto", memory_bytes=2**31, torch_threads=1, snippet_bytes=measured
        )
        told = ExtractWorker(
            seeded, batch_size="auto", memory_bytes=2**31, torch_threads=1, snippet_bytes=2**20
        )
    finally:
        torch.set_num_threads(threads)
    # The larger backbone (64 frames at 224 px) sets it, as in the worker's own rule.
    assert measured == max(backbone_snippet_bytes(b) for b in own.backbones.values())
    assert given.batch_size == own.batch_size
    assert told.batch_size > own.batch_size  # the given footprint is the one used
