"""`talkit datasets inspect` and `talkit datasets convert`, run as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from cli_helpers import run_cli
from datasets_helpers import video_facts, write_class_files

from talkit.datasets import load_annotations


def test_inspect_json_keys_and_counts(capsys, real_data):
    code, out, err = run_cli(
        capsys, "datasets", "inspect", str(real_data / "thumos14/gt.json"), "--json"
    )
    assert code == 0, err
    summary = json.loads(out)
    assert summary["videos"] == 410
    assert summary["instances"] == 6318
    assert summary["classes"] == 20
    assert summary["subsets"]["test"] == {"videos": 210, "instances": 3311, "canonical": "test"}
    assert summary["subsets"]["train"]["videos"] == 200
    assert summary["problems"] == []
    stats = summary["instance_duration_s"]
    assert stats["count"] == 6318 and 0 < stats["min"] <= stats["median"] <= stats["max"]


def test_inspect_json_lists_problems(capsys, real_data):
    code, out, _ = run_cli(
        capsys, "datasets", "inspect", str(real_data / "activitynet12/gt.json"), "--json"
    )
    assert code == 0
    summary = json.loads(out)
    assert (summary["videos"], summary["instances"], summary["classes"]) == (2383, 3582, 100)
    assert [p["kind"] for p in summary["problems"]] == ["start_not_before_end"] * 3
    assert {p["video_id"] for p in summary["problems"]} == {
        "6kgJx6ahgq0",
        "QhiKgeJV3k0",
        "e6J_ygZ779A",
    }


def test_inspect_table(capsys, real_data):
    code, out, _ = run_cli(capsys, "datasets", "inspect", str(real_data / "thumos14_wtalc"))
    assert code == 0
    assert "validation" in out and "212" in out and "3358" in out and "6365" in out
    assert "classes: 20" in out
    assert "instance duration" in out
    assert "segment_beyond_duration" in out  # problems are listed, the command still succeeds


def test_inspect_strict_fails_with_exit_2(capsys, real_data):
    code, _, err = run_cli(
        capsys, "datasets", "inspect", str(real_data / "activitynet12/gt.json"), "--strict"
    )
    assert code == 2
    assert "start >= end" in err


def test_inspect_bundled_example(capsys):
    from importlib.resources import files

    example = str(files("talkit") / "examples" / "thumos14_mini.json")
    code, out, _ = run_cli(capsys, "datasets", "inspect", example, "--json")
    assert code == 0
    summary = json.loads(out)
    assert summary["videos"] == 6 and summary["name"] == "thumos14"


def _truncated(tmp_path, real_data):
    data = (real_data / "thumos14/gt.json").read_bytes()
    path = tmp_path / "gt.json"
    path.write_bytes(data[: len(data) // 3])
    return path


def _write(path, text):
    path.write_text(text)
    return path


def _missing_database(tmp_path, _):
    return _write(tmp_path / "a.json", '{"version": "VERSION 1.3"}')


def _bad_segment(tmp_path, _):
    return _write(
        tmp_path / "b.json",
        '{"database": {"v1": {"subset": "test", "annotations": '
        '[{"label": "Diving", "segment": ["12.5"]}]}}}',
    )


def _empty(tmp_path, _):
    return _write(tmp_path / "c.json", "")


def _unrecognised_dir(tmp_path, _):
    (tmp_path / "d").mkdir()
    _write(tmp_path / "d" / "readme.txt", "not annotations")
    return tmp_path / "d"


BAD_INPUTS = {
    "truncated JSON": (_truncated, "truncated"),
    "missing database": (_missing_database, "no 'database' key"),
    "segment not two numbers": (_bad_segment, "not two numbers"),
    "empty file": (_empty, "empty"),
    "unrecognised directory": (_unrecognised_dir, "no recognisable annotation format"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_clear_line_and_exit_2(capsys, tmp_path, real_data, case):
    make, needle = BAD_INPUTS[case]
    path = make(tmp_path, real_data)
    code, _, err = run_cli(capsys, "datasets", "inspect", str(path))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error:")
    assert needle in lines[0] and str(path) in lines[0]
    assert "Traceback" not in err


def test_bad_input_exit_2_in_a_real_process(tmp_path):
    path = tmp_path / "gt.json"
    path.write_text('{"database": {"v": {"annotations": [{"label": "A", "segment": [1, "x"]}]}}}')
    proc = subprocess.run(
        [sys.executable, "-m", "talkit.cli", "datasets", "inspect", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "not two numbers" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_convert_wtalc_to_activitynet_and_back(capsys, tmp_path, real_data):
    src = real_data / "thumos14_wtalc"
    out = tmp_path / "thumos14.json"
    code, stdout, err = run_cli(
        capsys, "datasets", "convert", str(src), str(out), "--to", "activitynet"
    )
    assert code == 0, err
    assert "412 videos" in stdout and "6365 instances" in stdout
    code, _, err = run_cli(
        capsys, "datasets", "convert", str(out), str(tmp_path / "w"), "--to", "wtalc"
    )
    assert code == 0, err
    original = load_annotations(src)
    assert video_facts(load_annotations(out)) == video_facts(original)
    assert video_facts(load_annotations(tmp_path / "w")) == video_facts(original)


def test_convert_class_files_with_subset_rename(capsys, tmp_path):
    write_class_files(tmp_path / "txt")
    code, _, err = run_cli(
        capsys,
        "datasets",
        "convert",
        str(tmp_path / "txt"),
        str(tmp_path / "w"),
        "--to",
        "wtalc",
        "--subset-name",
        "val=validation",
    )
    assert code == 0, err
    ds = load_annotations(tmp_path / "w")
    assert set(ds.subset_counts()) == {"validation", "test"}
    assert ds.canonical_split("validation") == "train"


def test_convert_usage_errors_exit_2(capsys, tmp_path, real_data):
    src = str(real_data / "thumos14/gt.json")
    code, _, _ = run_cli(capsys, "datasets", "convert", src, str(tmp_path / "x"), "--to", "csv")
    assert code == 2
    code, _, err = run_cli(
        capsys,
        "datasets",
        "convert",
        src,
        str(tmp_path / "w"),
        "--to",
        "wtalc",
        "--subset-name",
        "oops",
    )
    assert code == 2 and "OLD=NEW" in err
    code, _, err = run_cli(capsys, "datasets", "convert", src, str(tmp_path), "--to", "activitynet")
    assert code == 2 and "is a directory" in err


def test_inspect_deeply_nested_json_is_one_line_exit_2(capsys, tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    code, _, err = run_cli(capsys, "datasets", "inspect", str(path))
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "nested too deeply" in lines[0] and "internal error" not in lines[0]
