"""Each annotation layout parsed into the one model; problems, strict mode, writers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from datasets_helpers import hacs_doc, video_facts, write_class_files, write_json

from talkit.datasets import (
    Dataset,
    Segment,
    Video,
    detect_format,
    load_annotations,
    load_wtalc_npy,
    write_activitynet_json,
    write_wtalc,
)
from talkit.errors import AnnotationError


def test_hacs_layout(tmp_path):
    path = write_json(tmp_path / "HACS_segments_v1.1.1.json", hacs_doc())
    ds = load_annotations(path)
    assert ds.name == "hacs"
    assert ds.source_format == "activitynet_json"
    assert len(ds.videos) == 3 and ds.num_instances == 3
    # subsets kept as written; ActivityNet/HACS roles
    assert {v.subset for v in ds.videos.values()} == {"training", "validation", "testing"}
    assert [ds.canonical_split(s) for s in ("training", "validation", "testing")] == [
        "train",
        "val",
        "test",
    ]
    assert [v.id for v in ds.subset("val").videos.values()] == ["-1qtwoJ3p5k"]
    # taxonomy leaves are the class list, sorted
    assert ds.classes == ["Archery", "Ballet", "Zumba"]
    video = ds.videos["--0edUL8zmA"]
    assert video.duration_s == 92.18
    assert video.url.endswith("--0edUL8zmA")
    assert [(s.label, s.start_s, s.end_s) for s in video.annotations] == [
        ("Zumba", 6.1, 45.25),
        ("Archery", 50.0, 92.184),
    ]
    # 4 ms past a duration rounded to 0.01 s is rounding, not a defect
    assert ds.problems == []


def test_problems_are_collected_then_strict_raises(tmp_path):
    doc = hacs_doc()
    db = doc["database"]
    db["--0edUL8zmA"]["annotations"].append({"label": "Zumba", "segment": [30.0, 30.0]})
    db["-1qtwoJ3p5k"]["annotations"].append({"label": "Ballet", "segment": [100.0, 130.0]})
    db["-2EozKk4TaQ"]["annotations"].append({"label": "Knitting", "segment": [1, 2]})
    path = write_json(tmp_path / "hacs.json", doc)
    ds = load_annotations(path)
    kinds = sorted((p.kind, p.video_id) for p in ds.problems)
    assert kinds == [
        ("segment_beyond_duration", "-1qtwoJ3p5k"),
        ("start_not_before_end", "--0edUL8zmA"),
        ("unknown_label", "-2EozKk4TaQ"),
    ]
    # the unknown label still gets a class index, after the declared ones
    assert ds.classes == ["Archery", "Ballet", "Zumba", "Knitting"]
    with pytest.raises(AnnotationError, match="3 annotation problem"):
        load_annotations(path, strict=True)


def test_negative_times_are_problems_in_json(tmp_path):
    doc = hacs_doc()
    db = doc["database"]
    db["--0edUL8zmA"]["annotations"].append({"label": "Zumba", "segment": [-3, 2]})
    db["-1qtwoJ3p5k"]["annotations"].append({"label": "Ballet", "segment": [-5, -1]})
    db["-2EozKk4TaQ"]["duration"] = -33.3
    path = write_json(tmp_path / "hacs.json", doc)
    ds = load_annotations(path)
    assert sorted((p.kind, p.video_id) for p in ds.problems) == [
        ("negative_time", "--0edUL8zmA"),
        ("negative_time", "-1qtwoJ3p5k"),
        ("negative_time", "-2EozKk4TaQ"),
    ]
    messages = " | ".join(p.message for p in ds.problems)
    assert "[-3, 2]" in messages and "[-5, -1]" in messages and "duration -33.3 s" in messages
    # reported, not dropped
    assert ds.videos["-1qtwoJ3p5k"].annotations[-1].start_s == -5.0
    with pytest.raises(AnnotationError, match="3 annotation problem"):
        load_annotations(path, strict=True)


def test_negative_times_are_problems_in_thumos_text(tmp_path):
    (tmp_path / "Diving_test.txt").write_text(
        "video_test_0000001 -5.0 2.0\nvideo_test_0000001 3.0 4.0\n"
    )
    ds = load_annotations(tmp_path)
    assert [(p.kind, p.video_id) for p in ds.problems] == [("negative_time", "video_test_0000001")]
    with pytest.raises(AnnotationError, match="1 annotation problem"):
        load_annotations(tmp_path, strict=True)


@pytest.mark.parametrize("depth", [900, 5000, 100_000])
def test_deeply_nested_json_is_an_annotation_error(tmp_path, depth):
    path = tmp_path / "deep.json"
    path.write_text(
        '{"database": {"v": {"annotations": [{"label": "A", "segment": '
        + "[" * depth
        + "]" * depth
        + "}]}}}"
    )
    with pytest.raises(AnnotationError) as info:
        load_annotations(path)
    message = str(info.value)
    assert str(path) in message and info.value.exit_code == 2
    assert "nested too deeply" in message or "not two numbers" in message
    assert len(message) < 400  # the nested value is quoted short, not in full


def test_duplicate_video_id_in_json_keeps_first(tmp_path):
    path = tmp_path / "dup.json"
    path.write_text(
        '{"database": {'
        '"v1": {"subset": "training", "annotations": [{"label": "A", "segment": [1, 2]}]},'
        '"v2": {"subset": "training", "annotations": []},'
        '"v1": {"subset": "validation", "annotations": [{"label": "B", "segment": [3, 4]}]}'
        "}}"
    )
    ds = load_annotations(path)
    assert list(ds.videos) == ["v1", "v2"]
    assert ds.videos["v1"].subset == "training"
    assert ds.videos["v1"].annotations == [Segment(label="A", start_s=1.0, end_s=2.0)]
    assert [(p.kind, p.video_id) for p in ds.problems] == [("duplicate_video", "v1")]
    with pytest.raises(AnnotationError, match="appears more than once"):
        load_annotations(path, strict=True)


def test_per_class_text_files(tmp_path):
    files = write_class_files(tmp_path / "annotations")
    assert detect_format(tmp_path / "annotations") == "thumos_txt"
    ds = load_annotations(tmp_path / "annotations")
    assert ds.source_format == "thumos14_txt"
    # sorted class names from the file names; an empty class file still declares its class
    assert ds.classes == ["BaseballPitch", "Billiards", "CliffDiving", "Diving"]
    assert ds.subset_counts() == {
        "test": {"videos": 1, "instances": 3},
        "val": {"videos": 2, "instances": 4},
    }
    assert ds.canonical_split("val") == "train"
    v4 = ds.videos["video_test_0000004"]
    # the same interval once per label (CliffDiving + Diving), as in the official files
    assert sorted((s.label, s.start_s, s.end_s) for s in v4.annotations) == [
        ("CliffDiving", 0.2, 1.1),
        ("CliffDiving", 20.0, 21.7),
        ("Diving", 0.2, 1.1),
    ]
    # Ambiguous_test.txt becomes ambiguous intervals, not a class
    assert v4.ambiguous == [(5.0, 6.5)]
    lines = sum(len(v) for k, v in files.items() if not k.startswith("Ambiguous"))
    assert ds.num_instances == lines


def test_per_class_text_to_activitynet_json_round_trip(tmp_path):
    files = write_class_files(tmp_path / "annotations")
    ds = load_annotations(tmp_path / "annotations")
    out = tmp_path / "gt.json"
    write_activitynet_json(ds, out)
    # every line of every class file is in the JSON, with its label and times
    raw = json.loads(out.read_text())["database"]
    written = sorted(
        (vid, a["label"], a["segment"][0], a["segment"][1])
        for vid, entry in raw.items()
        for a in entry["annotations"]
    )
    expected = sorted(
        (f.split()[0], name.rsplit("_", 1)[0], float(f.split()[1]), float(f.split()[2]))
        for name, lines in files.items()
        if not name.startswith("Ambiguous")
        for f in lines
    )
    assert written == expected
    back = load_annotations(out)
    assert video_facts(back) == video_facts(ds)
    assert back.classes == ds.classes  # Billiards (no instances) survives via the class list


def test_single_class_file(tmp_path):
    write_class_files(tmp_path)
    ds = load_annotations(tmp_path / "BaseballPitch_val.txt")
    assert ds.classes == ["BaseballPitch"]
    assert ds.num_instances == 3


def test_wtalc_writer_keeps_class_order_and_reports_unknown_labels(tmp_path):
    ds = Dataset(
        name="toy",
        classes=["Zumba", "Archery"],  # deliberately not sorted
        videos={
            "a": Video(
                id="a",
                subset="training",
                duration_s=10.0,
                fps=25.0,
                annotations=[Segment(label="Zumba", start_s=1.0, end_s=2.5)],
            ),
            "b": Video(
                id="b",
                subset="validation",
                annotations=[
                    Segment(label="Archery", start_s=0.0, end_s=3.0),
                    Segment(label="Knitting", start_s=4.0, end_s=5.0),
                ],
            ),
        },
    )
    write_wtalc(ds, tmp_path / "w")
    assert detect_format(tmp_path / "w") == "wtalc"
    labels_all = load_wtalc_npy(tmp_path / "w/labels_all.npy")
    assert [list(x) for x in labels_all] == [["Zumba"], ["Archery", "Knitting"]]
    assert load_wtalc_npy(tmp_path / "w/duration.npy").shape == (2, 1)
    back = load_annotations(tmp_path / "w")
    assert back.classes == ["Zumba", "Archery", "Knitting"]
    assert [(p.kind, p.video_id) for p in back.problems] == [("unknown_label", "b")]
    assert back.videos["a"].fps == 25.0 and back.videos["b"].duration_s is None
    assert video_facts(back) == video_facts(ds)
    # a "training" subset means ActivityNet roles: validation is the val split
    assert back.canonical_split("validation") == "val"


def test_wtalc_subset_rename_for_legacy_code(real_data, tmp_path):
    gt = load_annotations(real_data / "thumos14/gt.json")
    write_wtalc(gt, tmp_path / "w", subset_names={"train": "validation"})
    subsets = load_wtalc_npy(tmp_path / "w/subset.npy")
    assert sorted(set(subsets.tolist())) == [b"test", b"validation"]
    back = load_annotations(tmp_path / "w")
    assert back.subset_counts()["validation"] == {"videos": 200, "instances": 3007}


def test_wtalc_duplicate_video(tmp_path):
    ds = Dataset(
        classes=["A"],
        videos={
            "v": Video(id="v", subset="test", annotations=[Segment(label="A", start_s=0, end_s=1)])
        },
    )
    write_wtalc(ds, tmp_path)
    names = load_wtalc_npy(tmp_path / "videoname.npy")
    for name, arr in {
        "videoname": np.concatenate([names, names]),
        "subset": np.array([b"test", b"test"]),
    }.items():
        np.save(tmp_path / f"{name}.npy", arr)
    for name in ("segments", "labels"):
        arr = load_wtalc_npy(tmp_path / f"{name}.npy")
        two = np.empty(2, dtype=object)
        two[0], two[1] = arr[0], arr[0]
        np.save(tmp_path / f"{name}.npy", two, allow_pickle=True)
    for name in ("duration", "original_fps", "labels_all"):
        (tmp_path / f"{name}.npy").unlink()
    back = load_annotations(tmp_path)
    assert len(back.videos) == 1
    assert [p.kind for p in back.problems] == ["duplicate_video"]


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ('{"database": {"v": {"subset": "test", "annotations": [{"label": "A", "segm', "truncated"),
        ('{"version": "1.3", "taxonomy": []}', "no 'database' key"),
        (
            '{"database": {"v": {"annotations": [{"label": "A", "segment": ["x", 2]}]}}}',
            "not two numbers",
        ),
        (
            '{"database": {"v": {"annotations": [{"label": "A", "segment": [1]}]}}}',
            "not two numbers",
        ),
        (
            '{"database": {"v": {"annotations": [{"label": "A", "segment": [1, 2, 3]}]}}}',
            "not two numbers",
        ),
        (
            '{"database": {"v": {"annotations": [{"label": "A", "segment": [1, NaN]}]}}}',
            "not two numbers",
        ),
        ('{"database": {"v": {"annotations": [{"segment": [1, 2]}]}}}', "no string 'label'"),
        ('{"database": []}', "not an object"),
        ("", "empty"),
        ("  \n", "empty"),
    ],
)
def test_malformed_json_raises_clear_error(tmp_path, content, needle):
    path = tmp_path / "gt.json"
    path.write_text(content)
    with pytest.raises(AnnotationError, match=needle) as info:
        load_annotations(path)
    assert str(path) in str(info.value)
    assert info.value.exit_code == 2


def test_malformed_text_line_names_file_and_line(tmp_path):
    (tmp_path / "Diving_val.txt").write_text(
        "video_validation_0000001 1.0 2.0\nvideo_validation_0000002 abc\n"
    )
    with pytest.raises(AnnotationError, match=r"Diving_val.txt, line 2"):
        load_annotations(tmp_path)


def test_unrecognised_paths(tmp_path):
    (tmp_path / "notes.md").write_text("hello")
    with pytest.raises(AnnotationError, match="no recognisable annotation format"):
        load_annotations(tmp_path)
    with pytest.raises(AnnotationError, match="does not exist"):
        load_annotations(tmp_path / "missing.json")
    with pytest.raises(AnnotationError, match="unknown annotation format"):
        load_annotations(tmp_path, format="csv")
    (tmp_path / "videoname.npy").write_bytes(b"")
    (tmp_path / "segments.npy").write_bytes(b"")
    with pytest.raises(AnnotationError, match=r"lacks subset.npy"):
        load_annotations(tmp_path)


def test_write_to_unwritable_path_is_an_input_error(tmp_path):
    ds = Dataset(classes=[], videos={})
    (tmp_path / "file").write_text("x")
    with pytest.raises(AnnotationError, match="cannot write"):
        write_activitynet_json(ds, tmp_path / "file" / "out.json")


def test_non_finite_times_are_refused_by_the_json_writer(tmp_path):
    ds = Dataset(
        classes=["A"],
        videos={
            "v": Video(
                id="v",
                subset="test",
                annotations=[Segment(label="A", start_s=0, end_s=float("nan"))],
            )
        },
    )
    with pytest.raises(AnnotationError, match="NaN or infinite"):
        write_activitynet_json(ds, tmp_path / "out.json")
    assert list(tmp_path.iterdir()) == []
