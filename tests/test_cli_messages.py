"""What the CLI prints, character for character: brackets in messages and user data survive
rich's markup, usage errors are one line, ``--debug`` works anywhere, flags show no type."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import run_cli

from talkit import cli
from talkit.errors import AnnotationError


@pytest.fixture
def bracket_error_command():
    """A temporary command whose error message is full of square brackets."""

    @cli.app.command("_brackets", hidden=True)
    def _brackets() -> None:
        raise AnnotationError(
            "segment [nan, inf] of [Jump] in [/data/x] is bad", hint="must be [start, end]"
        )

    yield
    cli.app.registered_commands[:] = [
        c for c in cli.app.registered_commands if c.name != "_brackets"
    ]


def test_error_text_keeps_square_brackets(capsys, bracket_error_command):
    code, _, err = run_cli(capsys, "_brackets")
    assert code == 2
    assert "segment [nan, inf] of [Jump] in [/data/x] is bad (must be [start, end])" in err


def test_inspect_error_shows_the_bad_segment(capsys, tmp_path: Path):
    path = tmp_path / "gt.json"
    path.write_text(
        '{"database": {"v1": {"subset": "test", "annotations": '
        '[{"label": "A", "segment": [NaN, Infinity]}]}}}'
    )
    code, _, err = run_cli(capsys, "datasets", "inspect", str(path))
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "has segment [nan, inf], which is not two numbers" in lines[0]
    assert "(each segment must be [start_seconds, end_seconds])" in lines[0]


def test_inspect_table_shows_bracketed_names(capsys, tmp_path: Path):
    folder = tmp_path / "[2024] runs"
    folder.mkdir()
    path = folder / "gt.json"
    path.write_text(
        json.dumps(
            {
                "database": {
                    "v1": {
                        "subset": "[held out]",
                        "annotations": [{"label": "[Jump]", "segment": [1, 2]}],
                    }
                }
            }
        )
    )
    code, out, err = run_cli(capsys, "datasets", "inspect", str(path))
    assert code == 0, err
    assert "[2024] runs" in out
    assert "[held out]" in out
    assert "[Jump]" in out


def test_eval_table_shows_bracketed_class_names(capsys, tmp_path: Path):
    gt = tmp_path / "gt.json"
    gt.write_text(
        json.dumps(
            {
                "database": {
                    "v1": {
                        "subset": "test",
                        "annotations": [{"label": "[/x] jump", "segment": [1.0, 2.0]}],
                    }
                }
            }
        )
    )
    dets = tmp_path / "dets.json"
    dets.write_text(
        json.dumps(
            {"results": {"v1": [{"label": "[/x] jump", "segment": [1.0, 2.0], "score": 0.9}]}}
        )
    )
    code, out, err = run_cli(capsys, "eval", str(dets), "--gt", str(gt))
    assert code == 0, err
    assert "[/x] jump" in out


def test_bad_choice_is_one_line_with_exit_2(capsys):
    code, _, err = run_cli(capsys, "eval", "d.json", "--gt", "g.json", "--preset", "foo")
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "'foo' is not one of" in lines[0] and "thumos14" in lines[0]
    assert lines[0].endswith("(see talkit eval --help)")
    assert "Value error" not in lines[0]


@pytest.mark.parametrize(
    ("args", "expected", "help_page"),
    [
        (("eval", "--nope"), "No such option: --nope", "talkit eval"),
        (("no-such-command",), "No such command 'no-such-command'", "talkit"),
        (("store", "log"), "Missing argument", "talkit store log"),
    ],
)
def test_usage_errors_are_one_line(capsys, args, expected, help_page):
    code, _, err = run_cli(capsys, *args)
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert expected in lines[0]
    assert lines[0].endswith(f"(see {help_page} --help)")


def test_debug_works_after_the_subcommand(capsys, tmp_path: Path):
    missing = tmp_path / "missing.json"
    code, _, err = run_cli(capsys, "datasets", "inspect", str(missing), "--debug")
    assert code == 2
    assert "Traceback" in err
    assert "does not exist" in err
    code, _, err = run_cli(capsys, "datasets", "inspect", str(missing))
    assert code == 2
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (("--help",), "--debug"),
        (("extract", "--help"), "--quiet"),
        (("eval", "--help"), "--json"),
        (("store", "export", "--help"), "--help"),
    ],
)
def test_help_shows_flags_without_a_type(capsys, args, flag):
    code, out, _ = run_cli(capsys, *args)
    assert code == 0
    assert "<bool>" not in out
    line = next(line for line in out.splitlines() if flag in line)
    assert "<" not in line.split(flag, 1)[1].split("Show")[0]


def test_help_still_shows_option_types(capsys):
    code, out, _ = run_cli(capsys, "extract", "--help")
    assert code == 0
    assert "<str>" in out or "<int>" in out


def test_failure_table_keeps_decoder_messages():
    """ffmpeg's messages start with ``[h264 @ 0x...]``; the failures table shows them whole."""
    from rich.console import Console

    from talkit.pipelines.failures import Failure
    from talkit.pipelines.progress import failures_table

    failure = Failure(
        video_id="[cam 1] clip",
        path="/v/[cam 1] clip.mp4",
        error_type="VideoDecodeError",
        message="[h264 @ 0x55d] error while decoding MB 3 [/x]",
        kind="corrupt",
    )
    console = Console(record=True, width=200)
    console.print(failures_table([failure]))
    text = console.export_text()
    assert "[cam 1] clip" in text
    assert "[h264 @ 0x55d] error while decoding MB 3 [/x]" in text


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ("extract", "--config", "thumos14_i3d", "--flow", "tvl2"),
            "--flow tvl2: Input should be 'tvl1', 'tvl1_torch', 'tvl1_torch_fast', "
            "'farneback' or 'dis'",
        ),
        (("extract", "--batch-size", "0"), "--batch-size 0: Input should be greater than 0"),
        (
            ("extract", "--niceness", "20"),
            "--niceness 20: Input should be less than or equal to 19",
        ),
        (("extract", "--backbone", "i3d,i3d"), "--backbone i3d,i3d: entries must be distinct"),
        (
            ("train", "--config", "lgbm_thumos14", "--iterations", "0"),
            "--iterations 0: Input should be greater than 0",
        ),
        (
            ("train", "--config", "lgbm_thumos14", "--set", "train.iterations=-1"),
            "--set train.iterations=-1: Input should be greater than 0",
        ),
        (
            ("train", "--config", "lgbm_thumos14", "--set", "train.nope=1"),
            "--set train.nope=1: Extra inputs are not permitted",
        ),
    ],
)
def test_config_errors_name_the_flag_that_set_the_value(capsys, tmp_path, args, expected):
    command, *rest = args
    required = {
        "extract": ["--videos", str(tmp_path), "--dataset", "d", "--store", str(tmp_path / "s")],
        "train": ["--store", str(tmp_path / "s"), "--annotations", str(tmp_path / "gt.json")],
    }[command]
    code, _, err = run_cli(capsys, command, *required, *rest)
    assert code == 2
    line = " ".join(err.split())
    assert line.startswith(f"error: {expected}"), line
    assert "thumos14_i3d" not in line and "lgbm_thumos14" not in line  # not the preset's fault


def test_config_errors_in_a_file_still_name_the_file(capsys, tmp_path):
    bad = tmp_path / "mine.yaml"
    bad.write_text("flow: tvl2\n")
    code, _, err = run_cli(
        capsys,
        "extract",
        *("--videos", str(tmp_path), "--dataset", "d", "--store", str(tmp_path / "s")),
        *("--config", str(bad)),
    )
    assert code == 2
    assert f"error: {bad}: flow: Input should be" in " ".join(err.split())


def test_store_log_shows_bracketed_commit_messages(capsys, tmp_path):
    from store_helpers import DS, FS, features, make_store

    store = make_store(tmp_path / "s", {"video_a": 5})
    with store.writer(message="[wip] re-run [/i3d]") as w:
        w.write_video(DS, FS, "video_b", streams=features(2, 4))
    code, out, err = run_cli(capsys, "store", "log", store.url)
    assert code == 0, err
    assert "[wip] re-run [/i3d]" in out
