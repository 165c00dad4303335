"""`talkit probe VIDEO`: container claims, the backend used, and (--full) damage status."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from talkit.extractors.probe import ProbeResult, probe


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _print_table(result: ProbeResult) -> None:
    console = Console()
    table = Table(title=f"probe: {escape(str(result.path))}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    m = result.meta
    if m is not None:
        rows = [
            ("container", m.container),
            ("codec", m.codec),
            ("fps", f"{m.fps:.3f} ({m.fps_exact})" if m.fps_exact else f"{m.fps:.3f}"),
            ("frames", f"{m.num_frames}{' (estimated)' if m.frames_estimated else ''}"),
            ("duration_s", _fmt(m.duration_s)),
            ("size", f"{m.width}x{m.height}"),
            ("rotation", f"{m.rotation}"),
            ("backend", m.backend + (f" ({m.backend_note})" if m.backend_note else "")),
        ]
        for key, value in rows:
            table.add_row(key, escape(str(value)))
    if result.status != "unchecked":
        colour = "green" if result.status == "ok" else "red"
        table.add_row("status", f"[{colour}]{result.status}[/]")
        table.add_row("decoded_frames", _fmt(result.decoded_frames))
        table.add_row("last_timestamp_s", _fmt(result.last_timestamp_s))
        table.add_row("first_bad_s", _fmt(result.first_bad_s))
        if result.checked_with:
            table.add_row("checked_with", escape(result.checked_with))
    console.print(table)


def probe_command(
    video: Path = typer.Argument(..., help="A video file, or a folder of frames (with --fps)."),
    full: bool = typer.Option(
        False, "--full", help="Decode every frame and report damage (ok/truncated/corrupt)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
    fps: float | None = typer.Option(
        None, "--fps", help="Frame rate of a frame folder (ignored for video files)."
    ),
) -> None:
    """Show fps, frame count, duration, size, codec, rotation and backend of VIDEO.

    With --full, also decode everything and report the decoded frame count, the first
    bad timestamp and a status. Exits 1 when the video is unreadable or damaged.
    """
    result = probe(video, full=full, fps_for_frames=fps)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        _print_table(result)
    error = result.to_error()
    if error is not None:
        raise error


def register(app: typer.Typer) -> None:
    """Add this component's commands to the root ``talkit`` app."""
    app.command("probe")(probe_command)
