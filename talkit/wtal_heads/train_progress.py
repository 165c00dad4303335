"""How a training run shows its progress: a live bar on a terminal, plain lines elsewhere.

A rich bar draws nothing until the end when stderr is not a terminal (a log file, CI,
``nohup``, a batch scheduler), so a long run would look hung. There the run prints one
line now and then instead: the first iteration, every tenth of the run, at least every
``every_s`` seconds, and the last, each with it/s, loss, validation score and ETA.
"""

from __future__ import annotations

import math
import time
from types import TracebackType

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

LINE_EVERY_S = 30.0
LINES_PER_RUN = 10


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "-"
    s = round(seconds)
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class TrainProgress:
    """Progress of one model's training loop; ``update`` after every iteration."""

    def __init__(
        self,
        console: Console,
        *,
        name: str,
        total: int,
        start: int,
        enabled: bool = True,
        every_s: float = LINE_EVERY_S,
    ) -> None:
        self.console, self.name, self.total, self.start = console, name, total, start
        self.enabled, self.every_s = enabled, every_s
        self.live = enabled and console.is_terminal
        self._step = max(1, math.ceil((total - start) / LINES_PER_RUN))
        self._last_line = time.monotonic()
        self._bar: Progress | None = None
        self._task = None

    def __enter__(self) -> TrainProgress:
        if self.live:
            self._bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total} it"),
                TextColumn("loss {task.fields[loss]}"),
                TextColumn("val {task.fields[val]}"),
                TextColumn("{task.fields[rate]} it/s"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task(
                escape(self.name),
                total=self.total,
                completed=self.start,
                loss="-",
                val="-",
                rate="-",
            )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.__exit__(exc_type, exc, tb)

    def update(self, done: int, *, loss: str, val: str, rate: float) -> None:
        """Iteration ``done`` finished with this loss, latest validation score and speed."""
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=done, loss=loss, val=val, rate=f"{rate:.2f}")
            return
        if not self.enabled:
            return
        now = time.monotonic()
        first = done == self.start + 1
        due = (done - self.start) % self._step == 0 or now - self._last_line >= self.every_s
        if not (first or due or done == self.total):
            return
        self._last_line = now
        eta = (self.total - done) / rate if rate > 0 else math.inf
        self.console.print(
            f"{escape(self.name)}: {done}/{self.total} it  {rate:.2f} it/s  loss {loss}  "
            f"val {val}  ETA {_duration(eta)}",
            highlight=False,
            soft_wrap=True,
        )
