"""The root CLI: help, version, exit codes and one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest
from cli_helpers import run_cli

from talkit import cli
from talkit.errors import AnnotationError, WorkFailedError


@pytest.fixture
def failing_command():
    """A temporary command that raises the error it is told to, for exit-code checks."""
    errors = {
        "input": AnnotationError("bad file x.json", hint="fix it"),
        "work": WorkFailedError("it broke"),
    }

    @cli.app.command("_fail", hidden=True)
    def _fail(kind: str) -> None:
        if kind == "crash":
            raise RuntimeError("unexpected")
        raise errors[kind]

    yield
    cli.app.registered_commands[:] = [c for c in cli.app.registered_commands if c.name != "_fail"]


def test_help_lists_component_groups(capsys):
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0
    assert "Usage" in out


def test_version(capsys):
    code, out, _ = run_cli(capsys, "--version")
    assert code == 0
    assert out.startswith("talkit ")


def test_unknown_command_is_usage_error(capsys):
    code, _, err = run_cli(capsys, "no-such-command")
    assert code == 2
    assert "no-such-command" in err


def test_input_error_prints_one_line_and_exits_2(capsys, failing_command):
    code, _, err = run_cli(capsys, "_fail", "input")
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "bad file x.json" in lines[0] and "fix it" in lines[0]
    assert "Traceback" not in err


def test_failed_work_exits_1(capsys, failing_command):
    code, _, err = run_cli(capsys, "_fail", "work")
    assert code == 1
    assert "it broke" in err


def test_unexpected_error_is_reported_without_traceback_unless_debug(capsys, failing_command):
    code, _, err = run_cli(capsys, "_fail", "crash")
    assert code == 1
    assert "RuntimeError" in err and "Traceback" not in err
    code, _, err = run_cli(capsys, "--debug", "_fail", "crash")
    assert code == 1
    assert "Traceback" in err


def test_console_script_entry_point_runs():
    proc = subprocess.run(
        [sys.executable, "-m", "talkit.cli", "--help"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "talkit" in proc.stdout
