"""`talkit presets`: list the shipped extraction and training presets, or print one."""

from __future__ import annotations

import typer
from rich.console import Console

from talkit.errors import ConfigError


def presets_cmd(
    kind: str | None = typer.Argument(None, metavar="[KIND]", help="extract or train."),
    show: str | None = typer.Option(None, "--show", help="Print this preset's YAML."),
) -> None:
    """The presets shipped with talkit (for --config NAME), or one preset's YAML."""
    from talkit.presets import KINDS, find_preset, list_presets

    if kind is not None and kind not in KINDS:
        raise ConfigError(f"unknown preset kind {kind!r}", hint=f"use one of {', '.join(KINDS)}")
    if show is not None:
        kinds = (kind,) if kind else KINDS
        found = [k for k in kinds if show in {p.name for p in list_presets(k)}]
        if not found:
            raise ConfigError(f"no preset {show!r}", hint="`talkit presets` lists them")
        typer.echo(find_preset(found[0], show)[0], nl=False)
        return
    console = Console(highlight=False, soft_wrap=True)
    for k in (kind,) if kind else KINDS:
        console.print(f"[bold]{k}[/] (talkit {k} --config NAME)")
        for p in list_presets(k):
            console.print(f"  [bold]{p.name}[/]  {p.summary}")


def register(app: typer.Typer) -> None:
    """Add ``presets`` to the root ``talkit`` app."""
    app.command("presets")(presets_cmd)
