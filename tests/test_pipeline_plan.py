"""Planning, resume decisions, worker sizing, configs and failure records (no Ray, no video)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from talkit.errors import ConfigError, InputError, VideoDecodeError
from talkit.pipelines.config import ExtractConfig, load_extract_config
from talkit.pipelines.failures import (
    TooManyFailuresError,
    check_max_failures,
    failure_from_exception,
)
from talkit.pipelines.plan import DuplicateVideoIdError, VideoItem, plan_videos
from talkit.pipelines.report import RunReport, VideoDone, commit_record
from talkit.pipelines.resume import HASH_BLOCK, decide, fingerprint, quick_hash
from talkit.pipelines.runtime import size_workers


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# -- plan ---------------------------------------------------------------------------------


def test_directory_plan_finds_videos_recursively_by_stem(tmp_path: Path) -> None:
    _touch(tmp_path / "a" / "v1.mp4")
    _touch(tmp_path / "b" / "v2.MKV")
    _touch(tmp_path / "notes.txt")
    _touch(tmp_path / ".hidden.mp4")
    plan = plan_videos(tmp_path)
    assert plan.kind == "directory"
    assert [i.video_id for i in plan.items] == ["v1", "v2"]
    assert plan.items[1].path == tmp_path / "b" / "v2.MKV"


def test_duplicate_stems_across_folders_are_an_error_naming_both(tmp_path: Path) -> None:
    _touch(tmp_path / "cam1" / "clip.mp4")
    _touch(tmp_path / "cam2" / "clip.avi")
    with pytest.raises(DuplicateVideoIdError) as info:
        plan_videos(tmp_path)
    msg = str(info.value)
    assert "cam1/clip.mp4" in msg and "cam2/clip.avi" in msg and "PATH<TAB>ID" in msg
    assert info.value.exit_code == 2


def test_text_list_relative_paths_comments_and_explicit_ids(tmp_path: Path) -> None:
    _touch(tmp_path / "vids" / "x.mp4")
    _touch(tmp_path / "other" / "x.mp4")
    lst = tmp_path / "list.txt"
    lst.write_text("# my videos\nvids/x.mp4\n\nother/x.mp4\tx_other\n")
    plan = plan_videos(lst)
    assert plan.kind == "list"
    assert [(i.video_id, i.path) for i in plan.items] == [
        ("x", tmp_path / "vids" / "x.mp4"),
        ("x_other", tmp_path / "other" / "x.mp4"),
    ]


def test_planned_paths_and_checkpoints_are_absolute_for_other_nodes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ray workers on other nodes have other working directories: nothing relative leaves."""
    _touch(tmp_path / "vids" / "a.mp4")
    ann = tmp_path / "gt.json"
    db = {"a": {"subset": "test", "annotations": [{"segment": [0.0, 1.0], "label": "Jump"}]}}
    ann.write_text(json.dumps({"database": db}))
    (tmp_path / "list.txt").write_text("vids/a.mp4\n")
    monkeypatch.chdir(tmp_path)
    for plan in (
        plan_videos("vids"),
        plan_videos("list.txt"),
        plan_videos("gt.json", video_dir="vids"),
    ):
        assert [i.path for i in plan.items] == [tmp_path / "vids" / "a.mp4"], plan.kind
    cfg = ExtractConfig.model_validate(
        {
            "backbones": {"i3d": {}, "slowfast_r50": {}},
            "checkpoints": {
                "i3d.rgb": "w/rgb.pt",
                "i3d.flow": "~/flow.pt",
                "slowfast_r50": "s3://b/x.pt",
            },
        }
    )
    assert cfg.checkpoints == {
        "i3d.rgb": str(tmp_path / "w" / "rgb.pt"),
        "i3d.flow": str(Path.home() / "flow.pt"),
        "slowfast_r50": "s3://b/x.pt",
    }


def test_text_list_with_missing_paths_says_which_line(tmp_path: Path) -> None:
    lst = tmp_path / "list.txt"
    lst.write_text("gone.mp4\n")
    with pytest.raises(InputError, match=r"list\.txt:1: .*gone\.mp4"):
        plan_videos(lst)


def test_annotation_plan_takes_only_named_videos_and_reports_missing(tmp_path: Path) -> None:
    ann = tmp_path / "annotations" / "gt.json"
    ann.parent.mkdir()
    db = {
        vid: {"subset": "test", "annotations": [{"segment": [0.0, 1.0], "label": "Jump"}]}
        for vid in ("video_a", "abc123", "video_gone")
    }
    ann.write_text(json.dumps({"database": db}))
    _touch(tmp_path / "videos" / "video_a.mp4")
    _touch(tmp_path / "videos" / "v_abc123.mp4")  # ActivityNet file naming
    _touch(tmp_path / "videos" / "extra.mp4")  # not in the annotations: not extracted
    plan = plan_videos(ann)
    assert plan.kind == "annotations"
    assert plan.video_dir == tmp_path / "videos"
    assert sorted(i.video_id for i in plan.items) == ["abc123", "video_a"]
    assert plan.missing == ["video_gone"]


def test_annotation_ids_the_store_cannot_hold_are_rejected_not_fatal(tmp_path: Path) -> None:
    ann = tmp_path / "gt.json"
    db = {vid: {"subset": "test", "annotations": []} for vid in ("-dash", "has space", "fine")}
    ann.write_text(json.dumps({"database": db}))
    for vid in db:
        _touch(tmp_path / "vids" / f"{vid}.mp4")
    plan = plan_videos(ann, video_dir=tmp_path / "vids")
    # YouTube ids may start with "-" (ActivityNet, HACS); a space cannot be stored.
    assert sorted(i.video_id for i in plan.items) == ["-dash", "fine"]
    assert [(r.video_id, r.error_type) for r in plan.rejected] == [("has space", "StoreError")]


def test_annotation_plan_without_any_video_file_says_pass_video_dir(tmp_path: Path) -> None:
    ann = tmp_path / "gt.json"
    ann.write_text(json.dumps({"database": {"v": {"subset": "test", "annotations": []}}}))
    with pytest.raises(InputError, match="--video-dir"):
        plan_videos(ann)


# -- resume -------------------------------------------------------------------------------


def test_quick_hash_sees_head_tail_and_size_changes(tmp_path: Path) -> None:
    big = bytearray(b"\0" * (3 * HASH_BLOCK))
    f = _touch(tmp_path / "v.mp4", bytes(big))
    base = quick_hash(f)
    big[-1] = 1
    f.write_bytes(bytes(big))
    assert quick_hash(f) != base  # tail changed
    f.write_bytes(bytes(big) + b"\0")
    assert quick_hash(f)[0] == base[0] + 1
    small = _touch(tmp_path / "s.mp4", b"abc")
    assert quick_hash(small)[0] == 3


def test_resume_skips_same_source_and_redoes_changed_or_moved(tmp_path: Path) -> None:
    same = _touch(tmp_path / "same.mp4", b"A" * 100)
    changed = _touch(tmp_path / "changed.mp4", b"B" * 100)
    new = _touch(tmp_path / "new.mp4", b"C")
    stored = {
        "same": fingerprint(same).to_attrs(),
        "changed": fingerprint(changed).to_attrs(),
    }
    changed.write_bytes(b"b" * 100)  # same size, new content
    items = [VideoItem("same", same), VideoItem("changed", changed), VideoItem("new", new)]
    d = decide(items, stored)
    assert [i.video_id for i in d.done] == ["same"]
    assert [i.video_id for i in d.todo] == ["changed", "new"]
    assert d.redo == ["changed"]
    forced = decide(items, stored, force=True)
    assert (
        len(forced.todo) == 3 and forced.done == [] and sorted(forced.redo) == ["changed", "same"]
    )
    moved = decide([VideoItem("same", new)], stored)
    assert moved.redo == ["same"]


# -- sizing -------------------------------------------------------------------------------


def test_workers_request_fractional_cpus_that_fit_the_cluster() -> None:
    two = size_workers({"CPU": 2.0})
    assert two.num_workers == 2 and two.torch_threads == 1
    assert 0.5 < two.num_cpus < 1.0  # one per CPU, never a whole CPU
    assert two.num_workers * two.num_cpus <= 2.0
    one = size_workers({"CPU": 2.0}, num_workers=1)
    assert one.torch_threads == 2 and one.num_cpus < 1.0
    many = size_workers({"CPU": 2.0}, num_workers=8)
    assert many.num_workers * many.num_cpus <= 2.0
    gpu = size_workers({"CPU": 4.0, "GPU": 2.0}, device="cuda")
    assert gpu.num_workers == 2 and gpu.num_gpus == 1.0
    with pytest.raises(InputError, match="no free GPUs"):
        size_workers({"CPU": 2.0}, device="cuda")


# -- config -------------------------------------------------------------------------------


def test_thumos14_preset_has_the_paper_defaults() -> None:
    from talkit.extractors import get

    cfg = load_extract_config("thumos14_i3d")
    assert list(cfg.backbones) == ["i3d"]
    spec = get("i3d", **cfg.options_for("i3d")).spec
    assert (spec.fps, spec.clip_len, spec.stride, spec.sampling_rate) == (25.0, 16, 16, 1)
    assert (spec.resize_short, spec.input_size, spec.flow.method) == (256, 224, "tvl1")
    assert list(spec.streams) == ["rgb", "flow"]
    by_name = load_extract_config("thumos14_i3d", {"input_size": 112, "flow": None})
    assert by_name.backbones["i3d"] == {"input_size": 112}


def test_bad_config_values_name_the_field() -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        load_extract_config(None, {"batch_size": 0})
    with pytest.raises(ConfigError, match=r"presets: .*thumos14_i3d"):
        load_extract_config("no_such_preset")
    assert ExtractConfig().options_for("i3d") == {"flow_device": None}


# -- failures and records -----------------------------------------------------------------


def test_failure_records_keep_type_kind_and_message() -> None:
    exc = VideoDecodeError("v.mp4 is truncated at 3.1 s", kind="truncated", path="v.mp4")
    f = failure_from_exception("v", "v.mp4", exc)
    assert (f.error_type, f.kind) == ("VideoDecodeError", "truncated")
    assert "truncated at 3.1 s" in f.message
    try:
        raise ZeroDivisionError("boom")
    except ZeroDivisionError as err:
        g = failure_from_exception("w", None, err)
    assert g.error_type == "ZeroDivisionError" and "test_pipeline_plan.py" in g.message
    check_max_failures(2, 2, f)
    with pytest.raises(TooManyFailuresError, match="more than --max-failures 2"):
        check_max_failures(3, 2, f)


def test_report_round_trips_and_commit_record_lists_the_part(tmp_path: Path) -> None:
    report = RunReport(run_id="r1", store="s", dataset="d", feature_sets=["d/i3d"], planned=3)
    report.extracted.append(VideoDone("a", "a.mp4", 5, 1.0, "node", 1))
    report.elapsed_s = 2.0
    path = tmp_path / "r.json"
    report.write(path)
    data = json.loads(path.read_text())
    assert data["totals"]["snippets"] == 5 and data["totals"]["snippets_per_s"] == 2.5
    rec = commit_record(report, 2, ["a"], final=True)["talkit_run"]
    assert rec["part"] == 2 and rec["extracted"] == ["a"] and rec["final"] is True
