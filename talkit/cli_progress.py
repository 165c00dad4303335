"""The per-video progress bar of talkit's commands that work through many videos.

Import, export and the synthetic generators all report "one more video done, here is its
id". They share this bar so it looks and behaves the same: on stderr (stdout stays for
results), gone when done, and off when stderr is not a terminal (logs, CI, tests).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


@contextmanager
def video_progress(description: str, total: int | None = None) -> Iterator[Callable[[str], None]]:
    """Show a bar while the block runs; yields the ``on_video(video_id)`` callback to advance it.

    ``total=None`` is for work whose video count is not known up front (a bar without end).
    """
    console = Console(stderr=True)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[video]}", markup=False),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
    with progress:
        task = progress.add_task(description, total=total, video="")
        yield lambda video_id: progress.update(task, advance=1, video=video_id)
