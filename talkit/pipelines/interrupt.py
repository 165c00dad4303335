"""Ctrl-C during a run: the first stops it cleanly, the second stops it at once.

``talkit extract`` runs for hours; a Ctrl-C should neither lose the videos that are
finished nor leave the user guessing. While a run is inside :class:`InterruptGuard`:

- the first SIGINT only sets a flag. The driver stops handing out videos, commits the
  finished ones, prints what is in the store and how to resume (the same command), writes
  the report with ``"aborted": "interrupted"`` and exits 130;
- a second SIGINT raises ``KeyboardInterrupt`` where the driver is, at once. A commit in
  progress is then abandoned: a store version appears whole or not at all, so the store
  is never left half-written, and the report lists the finished videos that were not
  committed.

The handler is installed only in the main thread and only over Python's default one, so a
program that embeds the pipeline with its own SIGINT handling keeps it.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any


class InterruptGuard:
    """Counts SIGINTs while a run is active (see module docstring)."""

    def __init__(self) -> None:
        self.count = 0
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> InterruptGuard:
        if (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler
        ):
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.count >= 2:
            signal.signal(signal.SIGINT, signal.default_int_handler)  # a third one: Python's
            raise KeyboardInterrupt

    @property
    def requested(self) -> bool:
        """A Ctrl-C asked the run to stop."""
        return self.count > 0
