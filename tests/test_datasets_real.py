"""The published facts of the real annotation files talkit bundles."""

from __future__ import annotations

import json

import pytest
from datasets_helpers import video_facts

from talkit.datasets import (
    load_ambiguous,
    load_annotations,
    load_wtalc_npy,
    write_activitynet_json,
    write_wtalc,
)
from talkit.errors import AnnotationError


def test_thumos14_gt_json_counts(real_data):
    ds = load_annotations(real_data / "thumos14/gt.json")
    assert ds.source_format == "activitynet_json"
    assert ds.name == "thumos14"
    assert len(ds.videos) == 410
    assert ds.num_instances == 6318
    assert len(ds.classes) == 20
    assert ds.classes == sorted(ds.classes)
    assert ds.subset_counts() == {
        "test": {"videos": 210, "instances": 3311},
        "train": {"videos": 200, "instances": 3007},
    }
    # THUMOS14 roles: its validation videos (written "train" here) train, test tests
    assert ds.canonical_split("train") == "train"
    assert ds.canonical_split("test") == "test"
    assert ds.problems == []
    # string times become floats, exactly as written
    first = ds.videos["video_test_0000896"].annotations[0]
    assert (first.label, first.start_s, first.end_s) == ("HighJump", 18.6, 24.8)
    assert ds.videos["video_test_0000896"].duration_s is None


def test_thumos14_split_files_match_gt_subsets(real_data):
    ds = load_annotations(real_data / "thumos14/gt.json")
    for name, subset in (("split_train.txt", "train"), ("split_test.txt", "test")):
        ids = (real_data / "thumos14" / name).read_text().split()
        assert sorted(ids) == sorted(v for v, video in ds.videos.items() if video.subset == subset)


def test_activitynet12_counts_and_the_three_defects(real_data):
    ds = load_annotations(real_data / "activitynet12/gt.json")
    assert ds.name == "activitynet1.2"
    assert len(ds.videos) == 2383
    assert ds.num_instances == 3582
    assert len(ds.classes) == 100
    # exactly the 3 segments with start >= end; ms-level rounding past the duration is not one
    assert [p.kind for p in ds.problems] == ["start_not_before_end"] * 3
    assert sorted(p.video_id for p in ds.problems) == ["6kgJx6ahgq0", "QhiKgeJV3k0", "e6J_ygZ779A"]
    # reported, not dropped: the defective segments stay as written
    assert ds.videos["6kgJx6ahgq0"].annotations[0].start_s == 0.0
    video = ds.videos["--1DO2V4K74"]
    assert video.duration_s == 211.53
    assert video.url == "https://www.youtube.com/watch?v=--1DO2V4K74"
    assert ds.canonical_split("test") == "test"


def test_activitynet12_strict_raises(real_data):
    with pytest.raises(AnnotationError, match="3 annotation problem"):
        load_annotations(real_data / "activitynet12/gt.json", strict=True)


def test_wtalc_set_counts(real_data):
    ds = load_annotations(real_data / "thumos14_wtalc")
    assert ds.source_format == "wtalc_npy"
    assert len(ds.videos) == 412
    assert ds.num_instances == 6365
    assert ds.subset_counts() == {
        "test": {"videos": 212, "instances": 3358},
        "validation": {"videos": 200, "instances": 3007},
    }
    # class order is classlist.npy's own order
    classlist = [c.decode() for c in load_wtalc_npy(real_data / "thumos14_wtalc/classlist.npy")]
    assert ds.classes == classlist
    assert ds.canonical_split("validation") == "train"
    video = ds.videos["video_validation_0000051"]
    assert video.duration_s == pytest.approx(169.794)
    assert video.fps == 30.0
    kinds = {p.kind for p in ds.problems}
    assert "segment_beyond_duration" in kinds
    assert kinds <= {"segment_beyond_duration", "other"}


def test_wtalc_matches_gt_json_on_shared_videos(real_data):
    """The two THUMOS14 layouts agree on every instance of the 410 shared videos."""
    gt = load_annotations(real_data / "thumos14/gt.json")
    wt = load_annotations(real_data / "thumos14_wtalc")
    assert set(gt.videos) <= set(wt.videos)
    for vid, video in gt.videos.items():
        a = sorted((s.label, s.start_s, s.end_s) for s in video.annotations)
        b = sorted((s.label, s.start_s, s.end_s) for s in wt.videos[vid].annotations)
        assert a == b, vid


def test_ambiguous_file(real_data):
    rows = load_ambiguous(real_data / "thumos14_wtalc/Ambiguous_test.txt")
    assert len(rows) == 99
    assert rows[0] == ("video_test_0000278", 0.0, 1.4)
    ds = load_annotations(real_data / "thumos14_wtalc/Ambiguous_test.txt")
    assert ds.source_format == "thumos14_ambiguous"
    assert ds.num_instances == 99
    assert ds.classes == ["Ambiguous"]
    # inside the W-TALC directory, they attach to videos as ambiguous intervals
    wt = load_annotations(real_data / "thumos14_wtalc")
    attached = sum(len(v.ambiguous) for v in wt.videos.values())
    missing = [r for r in rows if r[0] not in wt.videos]
    assert attached == len(rows) - len(missing)
    assert wt.videos["video_test_0000278"].ambiguous[0] == (0.0, 1.4)


def test_wtalc_to_activitynet_json_round_trip(real_data, tmp_path):
    wt = load_annotations(real_data / "thumos14_wtalc")
    out = tmp_path / "thumos14.json"
    write_activitynet_json(wt, out)
    back = load_annotations(out)
    assert video_facts(back) == video_facts(wt)
    assert list(back.videos) == list(wt.videos)
    assert back.classes == wt.classes
    assert back.subset_counts() == wt.subset_counts()
    assert back.canonical_split("validation") == "train"
    # the evaluator-facing part is plain ActivityNet layout with numeric times
    raw = json.loads(out.read_text())
    entry = raw["database"]["video_validation_0000051"]
    assert entry["annotations"][0] == {"label": "Billiards", "segment": [67.5, 75.9]}
    # ... and back into W-TALC files, which read the same again
    write_wtalc(back, tmp_path / "wtalc")
    again = load_annotations(tmp_path / "wtalc")
    assert video_facts(again) == video_facts(wt)
    assert again.classes == wt.classes


def test_bundled_example_is_thumos_layout():
    from importlib.resources import files

    example = files("talkit") / "examples" / "thumos14_mini.json"
    ds = load_annotations(str(example))
    assert ds.name == "thumos14"
    assert set(ds.subset_counts()) == {"train", "test"}
    assert ds.problems == []
    raw = json.loads(example.read_text())
    first = next(iter(raw["database"].values()))["annotations"][0]["segment"]
    assert all(isinstance(t, str) for t in first)  # string times, like the real gt.json
