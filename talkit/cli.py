"""The ``talkit`` command: one entry point, one subcommand group per component.

Each component owns its commands in its own ``cli`` module and adds them here through a
``register(app)`` function, so this file only wires them together and turns talkit's
errors into one clear line and an exit code (2: bad input, 1: failed work).
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from talkit.errors import TalkitError

app = typer.Typer(
    name="talkit",
    help="Snippet features for temporal action localization: extract, store, train, evaluate.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err_console = Console(stderr=True)
_DEBUG = {"on": False}


def _version_callback(value: bool) -> None:
    if value:
        from talkit import __version__

        typer.echo(f"talkit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version."
    ),
) -> None:
    """talkit: features for temporal action localization."""
    _DEBUG["on"] = debug


def _register_components() -> None:
    from talkit import presets_cli
    from talkit.datasets import cli as datasets_cli
    from talkit.datasets.synthetic import cli as synth_cli
    from talkit.extractors import cli as extractors_cli
    from talkit.pipelines import cli as pipelines_cli
    from talkit.store import cli as store_cli
    from talkit.wtal_heads import cli as heads_cli
    from talkit.wtal_heads import train_cli

    for component in (
        datasets_cli,
        synth_cli,
        store_cli,
        extractors_cli,
        pipelines_cli,
        heads_cli,
        train_cli,
        presets_cli,
    ):
        component.register(app)


_register_components()


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; print talkit errors as one line and exit with their code.

    Usage errors are typer's own (exit 2). A TalkitError becomes one red line and its
    exit code; anything unexpected becomes one line and exit 1. ``--debug`` adds the
    traceback.
    """
    args = sys.argv[1:] if argv is None else argv
    _DEBUG["on"] = "--debug" in args
    try:
        app(args=args, prog_name="talkit")
    except TalkitError as exc:
        if _DEBUG["on"]:
            err_console.print_exception()
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("[bold red]interrupted[/]")
        sys.exit(130)
    except Exception as exc:
        if _DEBUG["on"]:
            err_console.print_exception()
        err_console.print(
            f"[bold red]internal error:[/] {type(exc).__name__}: {exc} "
            "(re-run with --debug for the traceback, and please report it)",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
