"""`talkit datasets ...`: inspect and convert annotation files of every supported format.

Other dataset commands (e.g. synthetic data) can join the same group through
:data:`datasets_app`.
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from talkit.cli_options import key_value
from talkit.datasets.formats import FORMATS
from talkit.errors import InputError

datasets_app = typer.Typer(
    name="datasets",
    help="Annotation files (ActivityNet JSON, HACS, THUMOS14 text, W-TALC .npy): "
    "inspect and convert.",
    no_args_is_help=True,
)

_FORMAT_HELP = f"Skip auto-detection and read the path as this format: {', '.join(FORMATS)}."


class Target(StrEnum):
    activitynet = "activitynet"
    wtalc = "wtalc"


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def _print_table(summary: dict, max_problems: int) -> None:
    console = Console()
    console.print(
        f"[bold]{escape(summary['path'])}[/]  name={escape(summary['name'])}  "
        f"format={summary['format']}  eval_preset={summary['eval_preset'] or 'unknown'}",
        highlight=False,
        soft_wrap=True,
    )
    table = Table(title="Videos and instances per subset")
    for col in ("subset (as written)", "canonical", "videos", "instances"):
        table.add_column(col, justify="right" if col in ("videos", "instances") else "left")
    for name, counts in summary["subsets"].items():
        table.add_row(
            escape(name), counts["canonical"], str(counts["videos"]), str(counts["instances"])
        )
    table.add_row("[bold]total[/]", "", str(summary["videos"]), str(summary["instances"]))
    console.print(table)

    names = summary["class_names"]
    shown = ", ".join(names[:12]) + (f", ... (+{len(names) - 12})" if len(names) > 12 else "")
    console.print(f"[bold]classes:[/] {summary['classes']}  {escape(shown)}", highlight=False)
    stats = summary["instance_duration_s"]
    console.print(
        f"[bold]instance duration (s):[/] n={stats['count']}  min={_fmt(stats['min'])}  "
        f"mean={_fmt(stats['mean'])}  median={_fmt(stats['median'])}  max={_fmt(stats['max'])}",
        highlight=False,
    )
    if summary["ambiguous"]:
        console.print(f"[bold]ambiguous intervals:[/] {summary['ambiguous']}", highlight=False)

    problems = summary["problems"]
    if not problems:
        console.print("[bold green]problems:[/] none")
        return
    counts = ", ".join(f"{k}={n}" for k, n in sorted(summary["problem_counts"].items()))
    console.print(f"[bold yellow]problems:[/] {len(problems)} ({counts})", highlight=False)
    for p in problems[:max_problems]:
        console.print(
            f"  - [{p['kind']}] {p['message']}", highlight=False, markup=False, soft_wrap=True
        )
    if len(problems) > max_problems:
        console.print(
            f"  ... and {len(problems) - max_problems} more (use --json to list all)",
            highlight=False,
        )


@datasets_app.command("inspect")
def inspect_cmd(
    path: Path = typer.Argument(
        ..., metavar="PATH", help="Annotation file or directory (format auto-detected)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead."),
    strict: bool = typer.Option(
        False, "--strict", help="Fail (exit 2) if the file has any problem."
    ),
    fmt: str | None = typer.Option(None, "--format", help=_FORMAT_HELP),
    max_problems: int = typer.Option(20, "--max-problems", help="Problems listed in the table."),
) -> None:
    """Videos and instances per subset, classes, instance durations and problems."""
    from talkit.datasets.formats import load_annotations
    from talkit.datasets.summary import summarize

    dataset = load_annotations(path, strict=strict, format=fmt)
    summary = summarize(dataset, path=str(path))
    if as_json:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    else:
        _print_table(summary, max_problems)


def _parse_renames(pairs: list[str]) -> dict[str, str]:
    return dict(
        key_value(
            pair, option="--subset-name", form="OLD=NEW", example="--subset-name train=validation"
        )
        for pair in pairs
    )


@datasets_app.command("convert")
def convert_cmd(
    src: Path = typer.Argument(
        ..., metavar="SRC", help="Annotation file or directory (format auto-detected)."
    ),
    out: Path = typer.Argument(
        ..., metavar="OUT", help="Output: a .json file, or a directory for wtalc."
    ),
    to: Target = typer.Option(..., "--to", help="Output layout."),
    strict: bool = typer.Option(False, "--strict", help="Refuse input that has problems."),
    fmt: str | None = typer.Option(None, "--format", help=_FORMAT_HELP),
    subset_name: list[str] = typer.Option(
        [], "--subset-name", help="Rename a subset in the W-TALC output, OLD=NEW (repeatable)."
    ),
) -> None:
    """Write an annotation set as ActivityNet JSON (for evaluators) or W-TALC .npy files."""
    from talkit.datasets.formats import load_annotations, write_activitynet_json, write_wtalc

    renames = _parse_renames(subset_name)
    dataset = load_annotations(src, strict=strict, format=fmt)
    if to is Target.activitynet:
        if out.is_dir():
            raise InputError(
                f"{out} is a directory", hint="give a .json file path for --to activitynet"
            )
        write_activitynet_json(dataset, out)
    else:
        if out.exists() and not out.is_dir():
            raise InputError(f"{out} is a file", hint="give a directory path for --to wtalc")
        write_wtalc(dataset, out, subset_names=renames)
    console = Console()
    console.print(
        f"wrote {len(dataset.videos)} videos, {dataset.num_instances} instances, "
        f"{len(dataset.classes)} classes as {to.value} to {escape(str(out))}",
        highlight=False,
    )
    if dataset.problems:
        console.print(
            f"[yellow]note:[/] {len(dataset.problems)} problem(s) in {escape(str(src))} were "
            f"kept as written; see `talkit datasets inspect {escape(str(src))}`",
            highlight=False,
        )


@datasets_app.command("bundled")
def bundled_cmd(
    name: str | None = typer.Argument(
        None, metavar="[NAME]", help="One entry: print its installed path."
    ),
    copy_to: Path | None = typer.Option(
        None, "--copy-to", help="Copy the entry's files into this folder."
    ),
) -> None:
    """The public ground truths shipped with talkit; use them anywhere as bundled:NAME."""
    from talkit.datasets import bundled

    if name is None:
        if copy_to is not None:
            raise InputError(
                "--copy-to needs a NAME", hint="e.g. talkit datasets bundled thumos14 --copy-to gt/"
            )
        console = Console(highlight=False, soft_wrap=True)
        console.print(
            "[bold]Bundled annotations[/] (use as bundled:NAME, e.g. --gt bundled:thumos14)"
        )
        for entry in bundled.BUNDLED.values():
            console.print(f"[bold]{entry.name}[/] ({entry.format}): {entry.description}")
            console.print(f"    from {entry.origin}", markup=False)
        for key, why in bundled.NOT_BUNDLED.items():
            console.print(f"[bold]{key}[/]: {why}")
        return
    entry = bundled.get(name)
    damaged = bundled.verify(entry.name)
    if damaged:
        raise InputError(
            f"bundled {entry.name}: {', '.join(damaged)} differ from the shipped sha256",
            hint="reinstall talkit (pip install --force-reinstall talkit)",
        )
    if copy_to is None:
        typer.echo(str(entry.path))
        return
    written = bundled.copy_to(entry.name, copy_to)
    Console().print(
        f"copied {len(written)} file(s) of {entry.name} to {escape(str(copy_to))}", highlight=False
    )


def register(app: typer.Typer) -> None:
    """Add the ``datasets`` group to the root ``talkit`` app."""
    app.add_typer(datasets_app, name="datasets")
