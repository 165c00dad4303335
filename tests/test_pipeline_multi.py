"""The extraction worker with several backbones: one decode per video, and a store equal to
one `talkit extract` run per backbone.

`talkit extract --backbone i3d,slowfast_r50,csn_r101,tdn_r50,vivit_b16x2` against five
single-backbone runs; and I3D configured three ways (another fps, clip length, resize, streams), which the
pipeline config cannot put in one run (its options blocks are keyed by backbone name):
that several-backbone run goes through ``run_extraction`` with its jobs set here, each
single-backbone run through `talkit extract --config` (a YAML file with its settings).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_helpers import run_cli
from pipeline_helpers import TINY_CONFIG, assert_same_arrays, read_feature_set

from talkit.pipelines.config import ExtractConfig
from talkit.pipelines.worker import BackboneJob

ray = pytest.importorskip("ray")

BASE = {k: v for k, v in TINY_CONFIG.items() if k != "streams"}
# feature set -> its settings (ExtractConfig fields) on top of BASE
SETTINGS: dict[str, dict[str, Any]] = {
    "two": {"streams": ["rgb", "flow"]},  # rgb + Farneback flow, 32 px crop of short side 48
    "square": {"streams": ["rgb"], "resize_short": None, "input_size": 40},
    "slow": {"streams": ["rgb"], "fps": 10.0, "clip_len": 8, "stride": 8},  # two's resize
}


def _config(name: str, **extra: Any) -> ExtractConfig:
    return ExtractConfig.model_validate({**BASE, **SETTINGS[name], **extra})


def _jobs(names: list[str]) -> list[BackboneJob]:
    return [
        BackboneJob(
            backbone="i3d",
            feature_set=name,
            options=_config(name).options_for("i3d"),
            random_weights_seed=0,
        )
        for name in names
    ]


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 synthetic action videos, 64x48, 2-3 s."""
    from talkit.datasets.synthetic.videos import generate_videos

    root = tmp_path_factory.mktemp("videos")
    generate_videos(root, num_videos=2, size=(64, 48), duration_s=(2.0, 3.0), seed=5)
    return root / "videos"


def test_the_worker_decodes_each_video_once_for_all_its_backbones(
    videos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from talkit.extractors.video_pyav import PyAVReader
    from talkit.pipelines.plan import plan_videos
    from talkit.pipelines.worker import ExtractWorker

    decodes: list[str] = []
    real = PyAVReader._decode

    def counted(self: PyAVReader, *args: Any) -> Any:
        decodes.append(self.meta.path)
        return real(self, *args)

    monkeypatch.setattr(PyAVReader, "_decode", counted)
    names = list(SETTINGS)
    worker = ExtractWorker(_jobs(names), batch_size=4, torch_threads=1)
    item = plan_videos(videos).items[0]
    result = worker.process(item)
    assert result.failure is None and sorted(result.outputs or {}) == sorted(names)
    assert decodes == [str(item.path)]
    # Each output equals the one a worker with that backbone alone makes.
    for name in names:
        alone = ExtractWorker(_jobs([name]), batch_size=4, torch_threads=1).process(item)
        assert alone.outputs is not None
        ours, theirs = result.outputs[name], alone.outputs[name]  # type: ignore[index]
        assert ours.attrs == theirs.attrs
        assert ours.timestamps.tobytes() == theirs.timestamps.tobytes()
        for stream, array in theirs.streams.items():
            assert ours.streams[stream].tobytes() == array.tobytes(), (name, stream)
    assert len(decodes) == 1 + len(names)


@pytest.fixture(scope="module")
def ray_session() -> Any:
    """Embedded Ray (2 CPUs) for this module."""
    if ray.is_initialized():
        ray.shutdown()
    ctx = ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ctx.address_info["address"]
    ray.shutdown()


@pytest.mark.slow
def test_a_three_backbone_run_writes_what_three_talkit_extract_runs_write(
    ray_session: str, videos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Including a video too short for one backbone (slow16 needs 1.6 s): the several-
    backbone run fails it for every feature set (all or nothing per video), where the
    single-backbone runs of the others write it."""
    from talkit.datasets.synthetic.signature import write_signature_video
    from talkit.pipelines.plan import plan_videos
    from talkit.pipelines.run import ExtractJob, run_extraction
    from talkit.store import FeatureStore

    SETTINGS["slow16"] = {"streams": ["rgb"], "fps": 10.0, "clip_len": 16, "stride": 16}
    try:
        root = tmp_path / "videos"
        root.mkdir()
        for p in videos.iterdir():
            (root / p.name).symlink_to(p)
        write_signature_video(root / "short.mp4", num_frames=30, fps=25, size=(64, 48))
        names = ["two", "square", "slow", "slow16"]

        singles = tmp_path / "singles.store"
        for name in names:
            preset = tmp_path / f"{name}.yaml"
            preset.write_text(yaml.safe_dump({**BASE, **SETTINGS[name]}))
            code, _out, err = run_cli(
                capsys, "extract", "--videos", str(root), "--dataset", "synth",
                "--store", str(singles), "--config", str(preset), "--feature-set", name,
                "--num-workers", "1", "--quiet", "--report", str(tmp_path / f"{name}.json"),
            )  # fmt: skip
            assert code in (0, 1), err  # 1: slow16 fails the short video

        class SeveralBackbones(ExtractJob):
            def backbone_jobs(self) -> list[BackboneJob]:
                return _jobs(names)

        multi = tmp_path / "multi.store"
        report = run_extraction(
            SeveralBackbones(plan_videos(root), str(multi), "synth", _config("two", num_workers=1))
        )
        assert [f.video_id for f in report.failures] == ["short"]
        assert report.failures[0].error_type == "NoSnippetsError"
        assert "slow16" in report.failures[0].message
        assert "two" not in report.failures[0].message

        ours, theirs = FeatureStore.open(str(multi)), FeatureStore.open(str(singles))
        normal = sorted(p.stem for p in videos.iterdir())
        for name in names:
            a = read_feature_set(multi, f"synth/{name}")
            b = read_feature_set(singles, f"synth/{name}")
            assert sorted(a) == normal  # the short video is in no feature set
            assert sorted(b) == (normal if name == "slow16" else sorted([*normal, "short"]))
            assert_same_arrays(a, {v: b[v] for v in normal})
            fs_a, fs_b = ours.feature_set(f"synth/{name}"), theirs.feature_set(f"synth/{name}")
            assert fs_a.spec == fs_b.spec
            for video in normal:  # all but the time of writing (and the digest over it)
                when = ("written_at", "attrs_sha256")
                a_attrs = {k: v for k, v in fs_a.video(video).attrs.items() if k not in when}
                b_attrs = {k: v for k, v in fs_b.video(video).attrs.items() if k not in when}
                assert a_attrs == b_attrs and "source" in a_attrs and "video" in a_attrs
    finally:
        SETTINGS.pop("slow16", None)


@pytest.mark.slow
def test_talkit_extract_with_five_backbones_equals_five_single_runs(
    ray_session: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """I3D, SlowFast, CSN, TDN and ViViT (small inputs, random weights) on a 2.7 s 30 fps
    video: SlowFast, CSN and ViViT read it at 15 fps (rate 2), TDN at 30 fps (64-frame
    windows), I3D at 25 fps; one run decodes it once and writes what five runs write."""
    from talkit.datasets.synthetic.signature import write_signature_video
    from talkit.store import FeatureStore

    videos = tmp_path / "videos"
    videos.mkdir()
    write_signature_video(videos / "a.mp4", num_frames=80, fps=30, size=(80, 64), seed=4)
    names = ["i3d", "slowfast_r50", "csn_r101", "tdn_r50", "vivit_b16x2"]
    options = {
        "i3d": ["streams=[rgb,flow]", "flow_method=farneback", "input_size=32", "resize_short=64"],
        "slowfast_r50": ["input_size=64", "resize_short=64"],
        "csn_r101": ["input_size=64", "resize_short=64"],
        "tdn_r50": ["input_size=64", "resize_short=64"],
        "vivit_b16x2": ["input_size=48", "resize_short=64"],
    }
    common = [
        "--videos", str(videos), "--dataset", "d", "--random-weights", "0",
        "--num-workers", "1", "--threads", "1", "--batch-size", "2", "--quiet",
    ]  # fmt: skip

    def extract(store: Path, backbones: list[str]) -> None:
        flags = [f for b in backbones for o in options[b] for f in ("--option", f"{b}.{o}")]
        code, _out, err = run_cli(
            capsys, "extract", *common, "--store", str(store), "--backbone", ",".join(backbones),
            *flags, "--report", str(store.with_suffix(".json")),
        )  # fmt: skip
        assert code == 0, err

    together, apart = tmp_path / "together.store", tmp_path / "apart.store"
    extract(together, names)
    for name in names:
        extract(apart, [name])
        # each single run decodes the video's 80 frames once ...
        assert json.loads(apart.with_suffix(".json").read_text())["totals"]["frames_decoded"] == 80
    # ... and so does the run with all of them
    assert json.loads(together.with_suffix(".json").read_text())["totals"]["frames_decoded"] == 80
    ours, theirs = FeatureStore.open(str(together)), FeatureStore.open(str(apart))
    for name in names:
        a = read_feature_set(together, f"d/{name}")
        assert sorted(a) == ["a"] and a["a"]["timestamps"].shape[0] > 0
        assert_same_arrays(a, read_feature_set(apart, f"d/{name}"))
        fs_a, fs_b = ours.feature_set(f"d/{name}"), theirs.feature_set(f"d/{name}")
        assert fs_a.spec == fs_b.spec
        when = ("written_at", "attrs_sha256")
        assert {k: v for k, v in fs_a.video("a").attrs.items() if k not in when} == {
            k: v for k, v in fs_b.video("a").attrs.items() if k not in when
        }
