"""`talkit synth ...` end to end, in-process: outputs a user relies on, exit codes, messages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from cli_helpers import run_cli
from synth_helpers import decode

from talkit.datasets import load_annotations


def test_synth_videos_writes_videos_and_every_annotation_format(tmp_path: Path, capsys) -> None:
    out = tmp_path / "set"
    code, stdout, _ = run_cli(
        capsys,
        "synth", "videos", str(out), "--num-videos", "2", "--classes", "Jump,Throw,Swim",
        "--duration", "3:5", "--fps", "30", "--size", "64x48", "--seed", "9",
    )  # fmt: skip
    assert code == 0
    assert "2 synthetic videos" in stdout and "Jump, Throw, Swim" in stdout
    truth = load_annotations(out / "annotations" / "gt.json")
    assert truth.classes == ["Jump", "Throw", "Swim"]
    assert len(truth.videos) == 2
    for video in truth.videos.values():
        assert 3.0 <= video.duration_s <= 5.0
        frames, times = decode(out / video.url)
        assert frames[0].shape == (48, 64, 3)
        assert np.allclose(np.diff(times), 1 / 30, atol=1e-3)
    assert load_annotations(out / "annotations" / "wtalc").classes == truth.classes
    assert (out / "annotations" / "classlist.txt").read_text().split() == truth.classes
    assert sorted(p.name for p in (out / "annotations" / "thumos").iterdir()) == sorted(
        f"{c}_{s}.txt" for c in truth.classes for s in ("val", "test")
    )


def test_synth_videos_bad_option_exits_2_with_a_hint(tmp_path: Path, capsys) -> None:
    code, _, err = run_cli(capsys, "synth", "videos", str(tmp_path), "--size", "2000x100")
    assert code == 2
    assert "outside the supported range" in err and "64x48 up to 1280x720" in err
    code, _, err = run_cli(capsys, "synth", "videos", str(tmp_path), "--codec", "theora9")
    assert code == 2 and "unknown codec" in err and "h264" in err


def test_synth_videos_signature_mode_frames_carry_their_index(tmp_path: Path, capsys) -> None:
    from talkit.datasets.synthetic.signature import read_signature

    code, _, _ = run_cli(
        capsys,
        "synth", "videos", str(tmp_path), "--signature", "-n", "1", "--duration", "2",
        "--fps", "variable", "--size", "96x64",
    )  # fmt: skip
    assert code == 0
    record = json.loads((tmp_path / "signature.json").read_text())
    ((name, info),) = record.items()
    frames, times = decode(tmp_path / name)
    assert len(frames) == info["frames"] == 50
    assert [read_signature(f) for f in frames] == list(range(len(frames)))
    assert np.allclose(times, info["times"], atol=1e-3)


def test_synth_features_writes_a_synthetic_feature_set(tmp_path: Path, capsys, real_data) -> None:
    from talkit.store import FeatureStore

    # A small annotation file with real THUMOS14 timelines (5 videos).
    full = load_annotations(real_data / "thumos14" / "gt.json")
    keep = sorted(full.videos)[:5]
    small = full.model_copy(update={"videos": {k: full.videos[k] for k in keep}})
    from talkit.datasets import write_activitynet_json

    write_activitynet_json(small, tmp_path / "gt.json")
    store = tmp_path / "feats"
    code, stdout, _ = run_cli(
        capsys,
        "synth", "features", str(store), "--annotations", str(tmp_path / "gt.json"),
        "--dim", "64", "--noise", "0.5", "--seed", "3", "--dataset", "mini", "--feature-set", "syn",
    )  # fmt: skip
    assert code == 0, stdout
    assert "wrote 5 videos" in stdout and "mini/syn" in stdout
    fs = FeatureStore.open(str(store)).feature_set("mini/syn")
    assert fs.spec.backbone == "synthetic" and fs.spec.params["seed"] == 3
    assert fs.spec.params["noise"] == 0.5 and fs.spec.dim == 64
    assert sorted(fs.videos()) == keep

    code, _, err = run_cli(
        capsys,
        "synth",
        "features",
        str(tmp_path / "other"),
        "--annotations",
        str(tmp_path / "nope.json"),
    )
    assert code == 2 and "nope.json" in err
    code, _, err = run_cli(
        capsys,
        "synth", "features", str(tmp_path / "other"), "-a", str(tmp_path / "gt.json"),
        "--background", "1.5",
    )  # fmt: skip
    assert code == 2 and "background_fraction" in err


def test_synth_broken_writes_every_kind(tmp_path: Path, capsys) -> None:
    code, stdout, _ = run_cli(capsys, "synth", "broken", str(tmp_path))
    assert code == 0
    for kind in ("truncated", "no_moov", "zero_bytes", "audio_only", "single_frame"):
        assert kind in stdout
    assert (tmp_path / "zero_bytes.mp4").stat().st_size == 0
