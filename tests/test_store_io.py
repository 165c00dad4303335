"""Import and export: bit-exact float32 round trips and the layouts of existing code."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from cli_helpers import run_cli

from talkit.datasets import load_wtalc_npy
from talkit.store import FeatureStore
from tests.store_helpers import DS, FS, KEY, features, make_store, spec


def assert_same_feature_set(a: FeatureStore, b: FeatureStore, key_b: str = KEY) -> None:
    """Same spec, videos, bit-identical arrays (dtype included), timestamps and user attrs."""
    fa, fb = a.feature_set(KEY), b.feature_set(key_b)
    assert fa.spec == fb.spec
    assert fa.videos() == fb.videos()
    for vid in fa.videos():
        va, vb = fa.video(vid), fb.video(vid)
        for name in fa.spec.streams:
            xa, xb = va.stream(name).read(), vb.stream(name).read()
            assert xa.dtype == xb.dtype and xa.shape == xb.shape
            assert xa.tobytes() == xb.tobytes(), f"{vid}/{name} differs"
        assert va.timestamps.tobytes() == vb.timestamps.tobytes()
        assert va.attrs["duration"] == vb.attrs["duration"]
        assert va.attrs["content_sha256"] == vb.attrs["content_sha256"]


@pytest.fixture
def source_store(tmp_path: Path) -> FeatureStore:
    return make_store(tmp_path / "src", {"video_a": 37, "video_b": 130, "video_c": 5})


@pytest.mark.parametrize(
    ("fmt", "out_name", "extra"),
    [
        ("npy", "out_npy", []),
        ("npy", "out_concat", ["--layout", "concat"]),
        ("h5", "out.h5", []),
        ("zarr", "out_zarr", []),
    ],
)
def test_round_trip_is_bit_exact(
    tmp_path: Path,
    source_store: FeatureStore,
    capsys: pytest.CaptureFixture[str],
    fmt: str,
    out_name: str,
    extra: list[str],
) -> None:
    out = tmp_path / out_name
    code, _, err = run_cli(
        capsys, "store", "export", source_store.url, str(out), "--format", fmt, *extra
    )
    assert code == 0, err
    back = tmp_path / "back"  # import reads it back under the name export wrote it with
    code, out_text, err = run_cli(
        capsys, "store", "import", str(out), str(back), "-d", DS, "-f", FS, "--format", fmt
    )
    assert code == 0, err
    assert "imported 3 videos" in out_text
    assert_same_feature_set(source_store, FeatureStore.open(str(back)))


def test_npy_export_is_basnet_layout_and_plain_zarr_is_zarr(
    tmp_path: Path, source_store: FeatureStore
) -> None:
    from talkit.store.exporters import export_features

    export_features(source_store, tmp_path / "np", fmt="npy")
    rgb = np.load(tmp_path / "np" / "rgb" / "video_b.npy")
    np.testing.assert_array_equal(rgb, features(1, 130)["rgb"])
    sidecar = json.loads((tmp_path / "np" / "talkit.json").read_text())
    assert sidecar["spec"]["backbone"] == "i3d" and sidecar["layout"] == "streams"

    export_features(source_store, tmp_path / "z", fmt="zarr")
    import zarr

    group = zarr.open_group(str(tmp_path / "z"), mode="r")
    np.testing.assert_array_equal(group[f"{KEY}/video_b/flow"][:], features(1, 130)["flow"])
    assert group[KEY].attrs["spec"]["stride"] == 16


def test_wtalc_joint_npy_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A synthetic W-TALC layout: an object array of (T_i, 2048)-style joint features
    # (here 8 + 6 dims), named by videoname.npy in the annotation folder.
    rng = np.random.default_rng(3)
    names = ["video_validation_0000051", "video_test_0000004", "video_validation_0000052"]
    joint = np.empty(len(names), dtype=object)
    for i, t in enumerate((40, 17, 90)):
        joint[i] = np.maximum(rng.standard_normal((t, 14)), 0).astype(np.float32)
    feats = tmp_path / "Thumos14reduced-I3D-JOINTFeatures.npy"
    np.save(feats, joint, allow_pickle=True)
    ann = tmp_path / "Thumos14reduced-Annotations"
    ann.mkdir()
    np.save(ann / "videoname.npy", np.array([n.encode() for n in names]))
    np.save(ann / "duration.npy", np.array([[26.0], [11.2], [58.0]]))

    store = tmp_path / "st"
    code, _, err = run_cli(
        capsys,
        "store",
        "import",
        str(feats),
        str(store),
        "-d",
        DS,
        "-f",
        FS,
        "--format",
        "wtalc",
        "--annotations",
        str(ann),
        "--streams",
        "rgb=8,flow=6",
        "--backbone",
        "i3d",
    )
    assert code == 0, err
    opened = FeatureStore.open(str(store))
    fs = opened.feature_set(KEY)
    assert fs.spec.streams == {"rgb": 8, "flow": 6}
    assert fs.video("video_test_0000004").attrs["duration"] == 11.2
    np.testing.assert_array_equal(fs.video("video_test_0000004").stream("flow")[:], joint[1][:, 8:])

    out = tmp_path / "export" / "Thumos14reduced-I3D-JOINTFeatures.npy"
    code, _, err = run_cli(
        capsys,
        "store",
        "export",
        str(store),
        str(out),
        "--format",
        "wtalc",
        "--annotations",
        str(ann),
    )
    assert code == 0, err
    back = load_wtalc_npy(out)  # the safe loader reads what we wrote
    assert back.dtype == object and len(back) == 3
    for original, exported in zip(joint, back, strict=True):
        assert exported.dtype == np.float32
        assert exported.tobytes() == original.tobytes()


def test_dgam_and_basnet_folders_import(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    streams = {vid: features(i, 20 + i) for i, vid in enumerate(["v1", "v2"])}
    dgam = tmp_path / "dgam"
    for folder, name in (("rgb_features", "rgb"), ("flow_features", "flow")):
        (dgam / folder).mkdir(parents=True)
        for vid, arrays in streams.items():
            np.save(dgam / folder / f"{vid}.npy", arrays[name])
    code, _, err = run_cli(
        capsys,
        "store",
        "import",
        str(dgam),
        str(tmp_path / "s1"),
        "-d",
        DS,
        "-f",
        FS,
        "--format",
        "dgam",
    )
    assert code == 0, err
    fs = FeatureStore.open(str(tmp_path / "s1")).feature_set(KEY)
    assert list(fs.spec.streams) == ["rgb", "flow"]
    np.testing.assert_array_equal(fs.video("v2").stream("flow")[:], streams["v2"]["flow"])
    # Timestamps from the I3D defaults (25 fps, 16-frame snippets, stride 16).
    np.testing.assert_allclose(fs.video("v2").timestamps[1], [0.64, 1.28])

    # ActionFormer style: one (T, D) file per video, split into streams on request.
    single = tmp_path / "single"
    single.mkdir()
    for vid, arrays in streams.items():
        np.save(single / f"{vid}.npy", np.concatenate([arrays["rgb"], arrays["flow"]], axis=1))
    code, _, err = run_cli(
        capsys,
        "store",
        "import",
        str(single),
        str(tmp_path / "s2"),
        "-d",
        DS,
        "-f",
        FS,
        "--format",
        "npy-dir",
        "--streams",
        "rgb=8,flow=6",
        "--fps",
        "30",
        "--stride",
        "4",
    )
    assert code == 0, err
    fs2 = FeatureStore.open(str(tmp_path / "s2")).feature_set(KEY)
    assert fs2.spec.fps == 30 and fs2.spec.stride == 4
    np.testing.assert_array_equal(fs2.video("v1").stream("rgb")[:], streams["v1"]["rgb"])


def test_h5_one_dataset_per_video_import(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arrays = {
        f"v_{i}": np.maximum(np.random.default_rng(i).standard_normal((10 + i, 5)), 0).astype(
            np.float32
        )
        for i in range(3)
    }
    with h5py.File(tmp_path / "f.h5", "w") as f:
        for vid, array in arrays.items():
            f.create_dataset(vid, data=array)
    code, _, err = run_cli(
        capsys,
        "store",
        "import",
        str(tmp_path / "f.h5"),
        str(tmp_path / "s"),
        "-d",
        "anet",
        "-f",
        "tsn",
        "--format",
        "h5",
        "--backbone",
        "tsn",
    )
    assert code == 0, err
    fs = FeatureStore.open(str(tmp_path / "s")).feature_set("anet/tsn")
    assert fs.spec.streams == {"features": 5}
    for vid, array in arrays.items():
        assert fs.video(vid).stream("features").read().tobytes() == array.tobytes()


@pytest.mark.parametrize("problem", ["mismatched_t", "nan", "object_array", "missing_stream_file"])
def test_bad_import_exits_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], problem: str
) -> None:
    src = tmp_path / "feats"
    (src / "rgb").mkdir(parents=True)
    (src / "flow").mkdir()
    for i in range(3):
        arrays = features(i, 20)
        np.save(src / "rgb" / f"v{i}.npy", arrays["rgb"])
        np.save(src / "flow" / f"v{i}.npy", arrays["flow"])
    expected = {
        "mismatched_t": "different numbers of snippets (rgb: T=20, flow: T=19)",
        "nan": "NaN/Inf values",
        "object_array": "holds pickled objects",
        "missing_stream_file": "lacks 1 videos",
    }[problem]
    if problem == "mismatched_t":
        np.save(src / "flow" / "v2.npy", features(2, 19)["flow"])
    elif problem == "nan":
        bad = features(2, 20)["rgb"]
        bad[3, 3] = np.nan
        np.save(src / "rgb" / "v2.npy", bad)
    elif problem == "object_array":
        np.save(src / "rgb" / "v2.npy", np.array([1, "x"], dtype=object), allow_pickle=True)
    else:
        (src / "flow" / "v2.npy").unlink()

    new_store = tmp_path / "new"
    code, _, err = run_cli(
        capsys,
        "store",
        "import",
        str(src),
        str(new_store),
        "-d",
        DS,
        "-f",
        FS,
        "--format",
        "npy-dir",
    )
    assert code == 2
    assert expected in err
    assert not new_store.exists()  # a store created for a failed import is removed

    existing = make_store(tmp_path / "old", {"keep": 10})
    before = existing.snapshot_id
    code, _, err = run_cli(
        capsys,
        "store",
        "import",
        str(src),
        existing.url,
        "-d",
        DS,
        "-f",
        "other",
        "--format",
        "npy-dir",
    )
    assert code == 2 and expected in err
    reopened = FeatureStore.open(existing.url)
    assert reopened.snapshot_id == before
    assert reopened.feature_sets() == [KEY]


def test_export_refuses_existing_target(
    tmp_path: Path, source_store: FeatureStore, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("mine")
    code, _, err = run_cli(
        capsys, "store", "export", source_store.url, str(tmp_path / "taken"), "--format", "npy"
    )
    assert code == 2 and "already exists" in err
    assert (tmp_path / "taken" / "file").read_text() == "mine"


def test_wtalc_export_sidecar_restores_the_feature_set_on_import(
    tmp_path: Path, source_store: FeatureStore, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "export" / "joint.npy"
    code, _, err = run_cli(
        capsys, "store", "export", source_store.url, str(out), "--format", "wtalc"
    )
    assert code == 0, err
    assert (out.parent / "joint.npy.talkit.json").is_file()  # beside the file, named after it
    assert (out.parent / "videoname.npy").is_file()
    # No spec options: the sidecar brings back streams, sampling, timestamps and attrs.
    back = tmp_path / "back"
    code, _, err = run_cli(
        capsys,
        "store", "import", str(out), str(back), "-d", DS, "-f", FS, "--format", "wtalc",
        "--annotations", str(out.parent),
    )  # fmt: skip
    assert code == 0, err
    assert_same_feature_set(source_store, FeatureStore.open(str(back)))


def test_a_store_with_several_feature_sets_needs_one_chosen(
    tmp_path: Path, source_store: FeatureStore, capsys: pytest.CaptureFixture[str]
) -> None:
    source_store.create_feature_set(DS, "other", spec())
    with source_store.writer(message="second feature set") as w:
        w.write_video(DS, "other", "video_a", streams=features(9, 4))
    code, _, err = run_cli(
        capsys, "store", "export", source_store.url, str(tmp_path / "out"), "--format", "npy"
    )
    assert code == 2
    assert f"store {source_store.url} has 2 feature sets ({KEY}, {DS}/other)" in err
    assert "--feature-set DATASET/NAME" in err
    imported = ["store", "import", source_store.url, str(tmp_path / "s"), "-d", DS, "-f", FS]
    code, _, err = run_cli(capsys, *imported, "--format", "zarr")
    assert code == 2
    assert "has 2 feature sets" in err and "--source-feature-set DATASET/NAME" in err
    code, _, err = run_cli(capsys, *imported, "--format", "zarr", "--source-feature-set", KEY)
    assert code == 0, err
    assert_same_feature_set(source_store, FeatureStore.open(str(tmp_path / "s")))


def test_old_npy_dir_name_is_accepted_both_ways(
    tmp_path: Path, source_store: FeatureStore, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out_npy"
    code, text, err = run_cli(
        capsys, "store", "export", source_store.url, str(out), "--format", "npy-dir"
    )
    assert code == 0, err
    assert "(npy)" in text and (out / "rgb" / "video_a.npy").is_file()
    back = tmp_path / "back"
    code, _, err = run_cli(
        capsys, "store", "import", str(out), str(back), "-d", DS, "-f", FS, "--format", "npy-dir"
    )
    assert code == 0, err
    assert_same_feature_set(source_store, FeatureStore.open(str(back)))


def test_wtalc_export_writes_into_the_folder_and_imports_back_alone(
    tmp_path: Path, source_store: FeatureStore, capsys: pytest.CaptureFixture[str]
) -> None:
    parent = tmp_path / "exports"
    parent.mkdir()
    out = parent / "wtalc"
    code, _, err = run_cli(
        capsys, "store", "export", source_store.url, str(out), "--format", "wtalc"
    )
    assert code == 0, err
    assert sorted(p.name for p in parent.iterdir()) == ["wtalc"]  # nothing beside OUT
    joint = out / f"{DS}-{FS}-JOINTFeatures.npy"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [joint.name, f"{joint.name}.talkit.json", "videoname.npy"]
    )
    assert len(load_wtalc_npy(joint)) == 3
    # the export is enough to import: the file, or the folder, with no --annotations
    for n, src in enumerate((joint, out)):
        back = tmp_path / f"back{n}"
        code, _, err = run_cli(
            capsys, "store", "import", str(src), str(back), "-d", DS, "-f", FS, "--format", "wtalc"
        )
        assert code == 0, err
        assert_same_feature_set(source_store, FeatureStore.open(str(back)))


def test_wtalc_export_in_an_annotation_order_imports_back_without_annotations(
    tmp_path: Path, source_store: FeatureStore, capsys: pytest.CaptureFixture[str]
) -> None:
    ann = tmp_path / "ann"
    ann.mkdir()
    order = ["video_c", "video_a", "video_b"]
    np.save(ann / "videoname.npy", np.array([v.encode() for v in order]))
    out = tmp_path / "wtalc"
    code, _, err = run_cli(
        capsys, "store", "export", source_store.url, str(out), "--format", "wtalc",
        "--annotations", str(ann),
    )  # fmt: skip
    assert code == 0, err
    assert not (out / "videoname.npy").exists()
    back = tmp_path / "back"
    code, _, err = run_cli(
        capsys, "store", "import", str(out), str(back), "-d", DS, "-f", FS, "--format", "wtalc"
    )
    assert code == 0, err  # names from the order the sidecar recorded
    assert_same_feature_set(source_store, FeatureStore.open(str(back)))


def test_wtalc_import_without_names_says_what_to_give(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    joint = np.empty(1, dtype=object)
    joint[0] = np.zeros((4, 6), dtype=np.float32)
    feats = tmp_path / "feats" / "X-I3D-JOINTFeatures.npy"
    feats.parent.mkdir()
    np.save(feats, joint, allow_pickle=True)
    code, _, err = run_cli(
        capsys, "store", "import", str(feats), str(tmp_path / "s"), "-d", DS, "-f", FS,
        "--format", "wtalc",
    )  # fmt: skip
    assert code == 2
    assert "no videoname.npy beside" in err and "--annotations DIR" in err
