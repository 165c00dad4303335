"""The ``talkit`` command: one entry point, one subcommand group per component.

Each component owns its commands in its own ``cli`` module and adds them here through a
``register(app)`` function, so this file only wires them together and turns talkit's
errors into one clear line and an exit code (2: bad input, 1: failed work).
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape

from talkit.cli_options import record_invocation
from talkit.errors import Interrupted, TalkitError

try:  # recent typer ships its own copy of click; older versions use click itself
    from typer._click import exceptions as click_errors
    from typer._click.core import Command, Context
except ImportError:  # pragma: no cover - older typer
    from click import Command, Context
    from click import exceptions as click_errors

# typer prints the help page itself when a group is called without a command
_NO_ARGS_IS_HELP = getattr(click_errors, "NoArgsIsHelpError", ())

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
    debug: bool = typer.Option(
        False, "--debug", help="Show full tracebacks on errors (anywhere on the command line)."
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version."
    ),
) -> None:
    """talkit: features for temporal action localization."""
    _DEBUG["on"] = _DEBUG["on"] or debug  # main() has taken --debug out of the arguments


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


def _plain_flags(command: Command) -> Command:
    """Show plain flags (``--json``, ``--help``) in help pages without ``<bool>`` after them.

    Typer's rich help prints every option's type, flags included, although a flag takes
    no value. An empty metavar leaves the type column of flags empty.
    """
    help_option = command.get_help_option(Context(command))
    for param in [*command.params, *([help_option] if help_option is not None else [])]:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        _plain_flags(sub)
    return command


def _usage_line(exc: click_errors.UsageError) -> str:
    """A usage error as one line: what was wrong, and which help page to read."""
    message = exc.format_message().replace("Value error, ", "").strip()
    message = " ".join(message.split()).rstrip(".")  # typer's messages may carry line breaks
    where = exc.ctx.command_path if exc.ctx is not None else "talkit"
    return f"{message} (see {where} --help)"


def _split_debug(args: list[str]) -> tuple[list[str], bool]:
    """``--debug`` anywhere before a ``--`` separator turns tracebacks on; it is removed."""
    end = args.index("--") if "--" in args else len(args)
    head = [a for a in args[:end] if a != "--debug"]
    return head + args[end:], len(head) != end


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; print every error as one line and exit with its code.

    A usage error (unknown option, bad choice) exits 2; a TalkitError exits with its code
    (2: bad input or config, 1: failed work); anything unexpected exits 1. Messages are
    printed as text, never as rich markup, so ``[nan, inf]`` in them stays visible.
    ``--debug`` (anywhere on the command line) adds the traceback.
    """
    given = list(sys.argv[1:] if argv is None else argv)
    record_invocation(given)
    args, debug = _split_debug(given)
    _DEBUG["on"] = debug
    command = _plain_flags(typer.main.get_command(app))
    try:
        code = command.main(args=args, prog_name="talkit", standalone_mode=False)
    except _NO_ARGS_IS_HELP:
        sys.exit(2)  # the help page was printed when the error was made
    except click_errors.UsageError as exc:
        if debug:
            err_console.print_exception()
        _error_line("error:", _usage_line(exc))
        sys.exit(exc.exit_code)
    except click_errors.ClickException as exc:
        _error_line("error:", exc.format_message())
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("[bold red]interrupted[/] (Ctrl-C)")
        sys.exit(130)
    except Interrupted as exc:  # a command that stopped cleanly and says what it kept
        if debug:
            err_console.print_exception()
        _error_line("interrupted:", str(exc).removeprefix("interrupted: "))
        sys.exit(exc.exit_code)
    except TalkitError as exc:
        if debug:
            err_console.print_exception()
        _error_line("error:", str(exc))
        sys.exit(exc.exit_code)
    except Exception as exc:
        if debug:
            err_console.print_exception()
        _error_line(
            "internal error:",
            f"{type(exc).__name__}: {exc} (re-run with --debug for the traceback, and "
            "please report it)",
        )
        sys.exit(1)
    if code == 130:  # typer turns Ctrl-C inside a command into exit code 130
        err_console.print("[bold red]interrupted[/] (Ctrl-C)")
    if isinstance(code, int) and code != 0:
        sys.exit(code)


def _error_line(label: str, message: str) -> None:
    """``label`` in bold red, then ``message`` as plain text (escaped, never markup)."""
    err_console.print(f"[bold red]{label}[/] {escape(message)}", highlight=False, soft_wrap=True)


def entry_point() -> None:
    """The ``talkit`` command: :func:`main`, then exit without the interpreter's teardown.

    Freeing torch's, Ray's and zarr's modules one by one takes 0.5-0.7 s after a command
    is done (measured after ``talkit extract``), and does nothing a finished command
    needs. So once :func:`main` returns, the exit handlers run (Ray's, zarr's, temporary
    folders'), the output is flushed, and the process ends. Where a non-daemon thread
    still runs, the normal exit waits for it instead. :func:`main` itself, as tests and
    other programs call it, exits normally.
    """
    import atexit
    import contextlib
    import os
    import threading

    try:
        main()
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    others = [t for t in threading.enumerate() if t is not threading.main_thread()]
    if any(not t.daemon for t in others):
        sys.exit(code)
    if code is not None and not isinstance(code, int):  # sys.exit("message")
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # closed, or a broken pipe
            stream.flush()
    os._exit(code or 0)


if __name__ == "__main__":
    entry_point()
