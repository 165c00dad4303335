"""Pause points for fault-injection tests: hold the driver where a kill should land.

A test that must SIGKILL the driver *inside* a commit cannot hit that window by timing.
With ``TALKIT_TEST_PAUSE=POINT:N`` in the environment, the driver touches the file named by
``TALKIT_TEST_PAUSE_FILE`` when it reaches ``POINT`` for the N-th time, then sleeps
(``TALKIT_TEST_PAUSE_S``, default 120 s) so that the test can kill it there. Without the
variable, :func:`pause_point` does nothing. Points:

- ``commit-written``: the videos of a commit are written into its transaction; the commit
  has not been made;
- ``commit-landed``: the commit is in the store; the report does not list it yet.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

_SEEN: Counter[str] = Counter()


def pause_point(name: str) -> None:
    """Pause here if a test asked for it (see module docstring)."""
    spec = os.environ.get("TALKIT_TEST_PAUSE")
    if not spec:
        return
    _SEEN[name] += 1
    point, _, nth = spec.partition(":")
    if point != name or _SEEN[name] != int(nth or 1):
        return
    flag = os.environ.get("TALKIT_TEST_PAUSE_FILE")
    if flag:
        Path(flag).write_text(f"{name}:{_SEEN[name]}\n")
    time.sleep(float(os.environ.get("TALKIT_TEST_PAUSE_S", "120")))
