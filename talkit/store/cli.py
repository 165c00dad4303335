"""`talkit store ...`: history, tags, diffs, summaries, import and export of feature stores."""

from __future__ import annotations

import json
import shutil
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from talkit.store.errors import StoreError

store_app = typer.Typer(
    name="store",
    help="Feature stores: history (log, tag, diff), summary (info), checks (verify), "
    "import and export.",
    no_args_is_help=True,
)


class ImportFormat(StrEnum):
    """What import reads: the names export writes, plus DGAM's folders."""

    npy = "npy"
    wtalc = "wtalc"
    dgam = "dgam"
    h5 = "h5"
    zarr = "zarr"
    npy_dir = "npy-dir"  # the old import name of npy


class ExportFormat(StrEnum):
    """What export writes; import reads each back under the same name."""

    npy = "npy"
    wtalc = "wtalc"
    h5 = "h5"
    zarr = "zarr"
    npy_dir = "npy-dir"  # accepted so that both directions take the same names


_ALIASES = {"npy-dir": "npy"}


def _format_name(fmt: StrEnum) -> str:
    return _ALIASES.get(fmt.value, fmt.value)


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _human(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1000
    return str(n)


@store_app.command("log")
def log_cmd(
    store: str = typer.Argument(..., help="Store path or URL."),
    version: str | None = typer.Option(None, "--version", "-v", help="Branch, tag or snapshot."),
    limit: int = typer.Option(0, "--limit", "-n", help="Show at most N commits (0: all)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """History of a store, newest first: id, time, message, videos written, tags."""
    from talkit.store.store import FeatureStore

    commits = FeatureStore.open(store, version=version).log()
    if limit > 0:
        commits = commits[:limit]
    if as_json:
        typer.echo(
            json.dumps(
                [{**c.__dict__, "written_at": c.written_at.isoformat()} for c in commits],
                indent=1,
                default=str,
            )
        )
        return
    console = _console()
    for c in commits:
        meta = c.metadata.get("talkit", {}) if isinstance(c.metadata, dict) else {}
        refs = [f"tag:{escape(t)}" for t in c.tags] + [f"branch:{escape(b)}" for b in c.branches]
        videos = f"{meta['videos']} videos" if "videos" in meta else ""
        console.print(
            f"[yellow]{c.id}[/]  {c.written_at:%Y-%m-%d %H:%M:%S}  "
            + (f"[cyan]({', '.join(refs)})[/]  " if refs else "")
            + escape(c.message)
            + (f"  [dim]{videos}[/]" if videos else "")
        )


@store_app.command("tag")
def tag_cmd(
    store: str = typer.Argument(..., help="Store path or URL."),
    name: str = typer.Argument(..., help="Tag name (tags never move)."),
    version: str | None = typer.Option(
        None, "--version", "-v", help="What to tag (default: main)."
    ),
) -> None:
    """Give a version a name, e.g. before re-extracting a feature set."""
    from talkit.store.store import FeatureStore

    opened = FeatureStore.open(store, version=version)
    snapshot = opened.tag(name)
    _console().print(f"tagged {snapshot} as [bold]{escape(name)}[/]")


@store_app.command("diff")
def diff_cmd(
    store: str = typer.Argument(..., help="Store path or URL."),
    a: str = typer.Argument(..., help="From version (branch, tag or snapshot)."),
    b: str = typer.Argument(..., help="To version."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Feature sets and videos added, removed or changed from A to B, and spec changes."""
    from talkit.store.store import FeatureStore

    result = FeatureStore.open(store).diff(a, b)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=1, default=str))
        return
    console = _console()
    console.print(f"[bold]diff {escape(a)} -> {escape(b)}[/]")
    if result.is_empty():
        console.print("no differences")
        return
    for key in result.feature_sets_added:
        console.print(f"[green]+ feature set {escape(key)}[/]")
    for key in result.feature_sets_removed:
        console.print(f"[red]- feature set {escape(key)}[/]")
    for key, entry in result.feature_sets.items():
        console.print(f"[bold]~ feature set {escape(key)}[/]")
        for field, (old, new) in entry.spec_changes.items():
            console.print(escape(f"    spec {field}: {old!r} -> {new!r}"))
        for label, ids, style in (
            ("added", entry.videos_added, "green"),
            ("removed", entry.videos_removed, "red"),
            ("changed", entry.videos_changed, "yellow"),
        ):
            if ids:
                console.print(f"    [{style}]{label} ({len(ids)}):[/] {escape(', '.join(ids))}")


@store_app.command("info")
def info_cmd(
    store: str = typer.Argument(..., help="Store path or URL."),
    version: str | None = typer.Option(None, "--version", "-v", help="Branch, tag or snapshot."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Feature sets: their spec (backbone, snippet, input, feature, weights, flow), then
    videos, dims, dtype, chunking, compression, bytes and ratio."""
    from talkit.store.describe import spec_rows
    from talkit.store.store import FeatureStore

    info = FeatureStore.open(store, version=version).info()
    if as_json:
        typer.echo(json.dumps(info, indent=1, default=str))
        return
    console = _console()
    console.print(
        f"[bold]{escape(info['url'])}[/]  engine={info['engine']}  "
        f"format={info['format_version']}  version={escape(info['version'] or '-')}  "
        f"snapshot={info['snapshot_id'] or '-'}  "
        f"on disk={_human(info['bytes_on_disk'])} (all versions)"
    )
    if not info["feature_sets"]:
        console.print("no feature sets")
    for key, fs in info["feature_sets"].items():
        spec, err = fs["spec"], fs["float16_error"]
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold")
        grid.add_column(overflow="fold")
        for label, text in spec_rows(spec):
            grid.add_row(label, escape(text))
        incomplete = f"  (+{fs['incomplete']} incomplete)" if fs["incomplete"] else ""
        grid.add_row("videos", f"{fs['videos']}{incomplete}  ({fs['snippets']} snippets)")
        grid.add_row(
            "streams",
            escape(", ".join(f"{n}={d}" for n, d in fs["streams"].items()))
            + f"  dtype {fs['dtype']}",
        )
        chunks = escape(", ".join(f"{n} {c[0]}x{c[1]}" for n, c in fs["chunks"].items()) or "-")
        grid.add_row("chunks", f"{chunks}  (snippets x dims)")
        grid.add_row("compression", escape(str(fs["compression"])))
        ratio = f"{fs['compression_ratio']:.2f}x" if fs["compression_ratio"] else "-"
        grid.add_row(
            "stored",
            f"{_human(fs['bytes_stored'])} of {_human(fs['bytes_logical'])}  ratio {ratio}",
        )
        if err:
            grid.add_row(
                "float16 error",
                f"max abs {err['max_abs']:.2e}, max rel {err['max_rel']:.2e}, rmse {err['rmse']:.2e}",
            )
        console.print(f"[bold cyan]{escape(key)}[/]")
        console.print(grid)


@store_app.command("verify")
def verify_cmd(
    store: str = typer.Argument(..., help="Store path or URL."),
    version: str | None = typer.Option(None, "--version", "-v", help="Branch, tag or snapshot."),
    feature_set: str | None = typer.Option(
        None, "--feature-set", "-f", help="Check only DATASET/NAME (default: all)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Read every video and check every checksum and hash; list each damaged video.

    Exits 1 if anything is damaged, 0 if everything read back as it was written.
    """
    from talkit.cli_progress import video_progress
    from talkit.store.spec import split_feature_set
    from talkit.store.store import FeatureStore
    from talkit.store.verify import count_videos, verify_store

    opened = FeatureStore.open(store, version=version)
    keys = None
    if feature_set is not None:
        dataset, name = split_feature_set(feature_set)
        opened.feature_set(dataset, name)  # a name that is not there: exit 2, as elsewhere
        keys = [f"{dataset}/{name}"]
    total = count_videos(opened, keys if keys is not None else opened.feature_sets())
    with video_progress("verify", total=total) as on_video:
        report = verify_store(opened, keys, on_video=on_video)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=1, default=str))
    else:
        console = _console()
        for damage in report.damaged:
            console.print(f"[red]damaged[/] {escape(damage.line())}")
        for key in report.incomplete:
            console.print(f"[yellow]incomplete[/] {escape(key)} (half-written; not read)")
        what = f"{report.videos_checked} videos in {len(report.feature_sets)} feature sets"
        label = escape(report.version or report.snapshot_id or "-")
        if report.ok:
            console.print(f"verified {what} of {escape(store)} at {label}: no damage found")
        else:
            console.print(
                f"[red]{len(report.damaged)} damaged[/] of {what} of {escape(store)} at {label}; "
                "read an older version with --version, or write the damaged videos again"
            )
    if not report.ok:
        raise typer.Exit(1)


@store_app.command("import")
def import_cmd(
    src: str = typer.Argument(..., help="Features to import (folder, file or zarr store)."),
    store: str = typer.Argument(..., help="Store to import into (created if absent)."),
    dataset: str = typer.Option(..., "--dataset", "-d", help="Dataset name, e.g. thumos14."),
    feature_set: str = typer.Option(..., "--feature-set", "-f", help="Feature set name, e.g. i3d."),
    fmt: ImportFormat = typer.Option(
        ..., "--format", help="Source format (the names export uses; npy-dir = npy)."
    ),
    streams: str | None = typer.Option(
        None, "--streams", help="Split single arrays into streams, e.g. rgb=1024,flow=1024."
    ),
    annotations: Path | None = typer.Option(
        None,
        "--annotations",
        help="W-TALC annotation folder (with videoname.npy); default: the one beside SRC, "
        "as a wtalc export writes it.",
    ),
    source_feature_set: str | None = typer.Option(
        None, "--source-feature-set", help="For --format zarr: which DATASET/NAME to copy."
    ),
    backbone: str = typer.Option("unknown", "--backbone", help="Spec: backbone that made them."),
    fps: float | None = typer.Option(25.0, "--fps", help="Spec: snippet sampling fps."),
    clip_len: int | None = typer.Option(16, "--clip-len", help="Spec: frames per snippet."),
    stride: int | None = typer.Option(16, "--stride", help="Spec: frames between snippets."),
    dtype: str | None = typer.Option(None, "--dtype", help="Storage dtype: float32 or float16."),
    chunk_t: int | None = typer.Option(
        None,
        "--chunk-t",
        help=(
            "Snippets per chunk (default 256). Chunks are packed into shards of up to 4096 "
            "snippets, whole chunks each, so a crop is one request per stream."
        ),
    ),
    codec: str = typer.Option(
        "auto",
        "--codec",
        help="auto (pcodec if installed), pcodec, blosc-zstd, blosc-lz4, zstd, none.",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace videos already stored."),
    allow_nonfinite: bool = typer.Option(
        False, "--allow-nonfinite", help="Store NaN/Inf instead of rejecting them."
    ),
    message: str | None = typer.Option(None, "--message", "-m", help="Commit message."),
) -> None:
    """Import features of existing code (npy folders, W-TALC, DGAM, HDF5, zarr) in one commit.

    Spec options describe features whose source has no spec (the defaults are the I3D
    convention: 25 fps, 16-frame snippets, stride 16, which also gives the timestamps).
    A talkit sidecar, HDF5 attrs or a zarr source carry their own spec and timestamps.
    """
    from talkit.cli_progress import video_progress
    from talkit.store.backend import local_path, remove_store
    from talkit.store.importers import import_features, parse_streams
    from talkit.store.spec import StorageOptions
    from talkit.store.store import FeatureStore

    local = local_path(store)
    if local is None:
        created = not FeatureStore.exists(store)
    else:
        created = not (local.exists() and any(local.iterdir()))
    target = FeatureStore.create(store) if created else FeatureStore.open(store, mode="a")
    base_spec: dict[str, Any] = {
        "backbone": backbone,
        "fps": fps,
        "clip_len": clip_len,
        "stride": stride,
        "params": {"imported_from": _format_name(fmt)},
    }
    try:
        storage = StorageOptions(codec=codec, **({"chunk_t": chunk_t} if chunk_t else {}))
    except ValueError as exc:
        raise StoreError(f"invalid storage options: {exc}") from exc
    try:
        with video_progress(f"import {_format_name(fmt)}") as on_video:
            count = import_features(
                src,
                target,
                dataset=dataset,
                feature_set=feature_set,
                fmt=_format_name(fmt),
                base_spec=base_spec,
                split=parse_streams(streams),
                dtype=dtype,
                annotations=annotations,
                source_feature_set=source_feature_set,
                storage=storage,
                overwrite=overwrite,
                allow_nonfinite=allow_nonfinite,
                message=message,
                on_video=on_video,
            )
    except BaseException:
        if created:
            remove_store(store)  # a store we made for a failed import
        raise
    target.refresh()
    _console().print(
        f"imported {count} videos into {escape(store)} as {escape(dataset)}/{escape(feature_set)} "
        f"(snapshot {target.snapshot_id or '-'})"
    )


@store_app.command("export")
def export_cmd(
    store: str = typer.Argument(..., help="Store path or URL."),
    out: str = typer.Argument(
        ..., help="Output folder (npy, zarr, wtalc) or file (h5; wtalc also takes a .npy path)."
    ),
    fmt: ExportFormat = typer.Option(
        ..., "--format", help="Output format (import reads it back under the same name)."
    ),
    feature_set: str | None = typer.Option(
        None, "--feature-set", "-f", help="DATASET/NAME (needed when the store has several)."
    ),
    version: str | None = typer.Option(None, "--version", "-v", help="Branch, tag or snapshot."),
    layout: str = typer.Option(
        "streams", "--layout", help="npy: 'streams' (folder per stream) or 'concat' (one file)."
    ),
    annotations: Path | None = typer.Option(
        None, "--annotations", help="wtalc: order videos as this folder's videoname.npy."
    ),
) -> None:
    """Export a feature set as per-video .npy, HDF5, plain zarr v3 or a W-TALC array."""
    from talkit.cli_progress import video_progress
    from talkit.store.backend import local_path
    from talkit.store.exporters import export_features
    from talkit.store.store import FeatureStore

    out_path = local_path(out)
    if out_path is None:
        raise StoreError(
            f"export target {out} is not a local path: exports are local files",
            hint="to copy a feature set into another store, even on object storage, use "
            "`talkit store import STORE DEST --format zarr`",
        )
    source = FeatureStore.open(store, version=version)
    if out_path.exists() and not (out_path.is_dir() and not any(out_path.iterdir())):
        raise StoreError(f"export target {out} already exists", hint="pick a new path")
    try:
        with video_progress(f"export {_format_name(fmt)}") as on_video:
            count = export_features(
                source,
                out_path,
                fmt=_format_name(fmt),
                feature_set=feature_set,
                layout=layout,
                annotations=annotations,
                on_video=on_video,
            )
    except BaseException:
        if out_path.is_dir():
            shutil.rmtree(out_path, ignore_errors=True)
        elif out_path.exists():
            out_path.unlink()
        raise
    _console().print(f"exported {count} videos to {escape(str(out))} ({_format_name(fmt)})")


def register(app: typer.Typer) -> None:
    """Add this component's commands to the root ``talkit`` app."""
    app.add_typer(store_app, name="store")
