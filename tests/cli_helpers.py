"""The in-process CLI runner every CLI test uses: ``talkit ARGS`` -> (code, stdout, stderr).

Imports nothing of talkit's CLI or pytest at import time: modules that spawned store
workers import (tests/store_helpers.py) must stay light, and this keeps that true for
anything that imports this module too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``talkit ARGS`` in-process; return (exit code, stdout, stderr) as a user sees them.

    The exit code follows ``sys.exit``: no code is 0, a non-integer code (a message) is 1.
    """
    from talkit.cli import main

    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err
