"""The extraction worker with several backbones: one decode per video, and a store equal to
one `talkit extract` run per backbone.

Only I3D is registered, so the backbones are I3D configured three ways; the pipeline
config cannot yet give several backbones their own options, so the several-backbone run
goes through ``run_extraction`` with its jobs set here, and each single-backbone run
through `talkit extract --config` (a YAML file with that backbone's settings).
"""

from __future__ import annotations

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
            options=_config(name).backbone_options(),
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
