"""Bringing features from existing code into a store.

Formats (``fmt``), named as ``talkit store export`` names them:
  - ``npy`` (also ``npy-dir``): per-video ``.npy`` files. Either one folder per stream (BaSNet:
    ``rgb/<vid>.npy`` + ``flow/<vid>.npy``) or the files directly in SRC, one (T, D) array
    per video (ActionFormer), split into streams by ``split`` (default: one stream).
  - ``dgam``: DGAM's ``rgb_features/`` and ``flow_features/`` folders.
  - ``wtalc``: the W-TALC single-file object array (``*-I3D-JOINTFeatures.npy``, or the
    folder a ``wtalc`` export wrote), read with a restricted unpickler, named by
    ``videoname.npy`` in its annotation folder (default: beside the file, else the order
    the export's sidecar records).
  - ``h5``: an HDF5 file with one dataset per video (or one group per video holding a
    dataset per stream, as ``talkit store export --format h5`` writes).
  - ``zarr``: a plain zarr v3 directory (or another talkit store) in the talkit layout.

The whole import is one transaction: if any video fails validation, nothing is written.
A ``talkit.json`` sidecar (written by our exports) restores spec, attrs and timestamps.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from talkit.errors import Interrupted
from talkit.store.errors import StoreError
from talkit.store.sidecar import Sidecar, user_attrs
from talkit.store.spec import TIMESTAMPS, FeatureSetSpec, StorageOptions, split_feature_set
from talkit.store.store import FeatureStore

FORMATS = ("npy", "wtalc", "dgam", "h5", "zarr")
# Older names still accepted: ``npy-dir`` was the import name of ``npy``.
FORMAT_ALIASES = {"npy-dir": "npy"}
H5_SPEC_ATTR = "talkit_spec"
H5_ATTRS_ATTR = "talkit_attrs"


@dataclass
class SourceVideo:
    """One video as a source format gives it: streams by name, or one array to split."""

    video_id: str
    data: dict[str, np.ndarray] | np.ndarray
    timestamps: np.ndarray | None = None
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Source:
    """A format reader: the spec it carries (if any) and its videos."""

    spec: FeatureSetSpec | None
    videos: Iterator[SourceVideo]


def parse_streams(text: str | None) -> dict[str, int] | None:
    """``"rgb=1024,flow=1024"`` -> ``{"rgb": 1024, "flow": 1024}``."""
    if not text:
        return None
    out: dict[str, int] = {}
    for part in text.split(","):
        name, _, dim = part.strip().partition("=")
        try:
            out[name.strip()] = int(dim)
        except ValueError:
            raise StoreError(
                f"cannot parse stream {part!r} in {text!r}",
                hint="write NAME=DIM pairs separated by commas, e.g. rgb=1024,flow=1024",
            ) from None
    return out


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise StoreError(
            f"{path} holds pickled objects, not a plain feature array; refused",
            hint="W-TALC object arrays are imported with --format wtalc",
        ) from exc
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc}") from exc


def _stream_order(names: list[str]) -> list[str]:
    """rgb before flow (the joint-feature convention), the rest alphabetically."""
    rank = {"rgb": 0, "flow": 1}
    return sorted(names, key=lambda n: (rank.get(n, 2), n))


def _per_stream_dirs(src: Path, dirs: dict[str, Path], sidecar: Sidecar | None) -> Source:
    files = {name: {p.stem: p for p in d.glob("*.npy")} for name, d in dirs.items()}
    ids = sorted(set().union(*(set(f) for f in files.values())))
    for name, found in files.items():
        missing = [v for v in ids if v not in found]
        if missing:
            raise StoreError(
                f"{dirs[name]} lacks {len(missing)} videos that other streams have "
                f"(e.g. {missing[0]}.npy)",
                hint="every stream folder needs one .npy per video",
            )

    def videos() -> Iterator[SourceVideo]:
        for vid in ids:
            data = {name: _load_npy(found[vid]) for name, found in files.items()}
            yield _with_sidecar(SourceVideo(vid, data), sidecar)

    return Source(sidecar.spec if sidecar else None, videos())


def _with_sidecar(video: SourceVideo, sidecar: Sidecar | None) -> SourceVideo:
    if sidecar is not None:
        video.attrs = sidecar.attrs(video.video_id)
        video.timestamps = sidecar.timestamps(video.video_id)
    return video


def open_npy_dir(src: Path) -> Source:
    """Per-video .npy files: stream folders, or single (T, D) files directly in SRC."""
    if not src.is_dir():
        raise StoreError(f"{src} is not a directory", hint="--format npy takes a folder")
    sidecar = Sidecar.find(src)
    direct = sorted(src.glob("*.npy"))
    if direct and (sidecar is None or sidecar.layout == "concat"):

        def videos() -> Iterator[SourceVideo]:
            for path in direct:
                yield _with_sidecar(SourceVideo(path.stem, _load_npy(path)), sidecar)

        return Source(sidecar.spec if sidecar else None, videos())
    subdirs = [
        d
        for d in src.iterdir()
        if d.is_dir() and not d.name.startswith(".") and any(d.glob("*.npy"))
    ]
    if not subdirs:
        raise StoreError(
            f"no .npy files in {src} or in folders directly under it",
            hint="expected <vid>.npy files, or one folder per stream (rgb/, flow/)",
        )
    names = list(sidecar.spec.streams) if sidecar else _stream_order([d.name for d in subdirs])
    dirs = {name: src / name for name in names}
    return _per_stream_dirs(src, dirs, sidecar)


def open_dgam(src: Path) -> Source:
    """DGAM's ``rgb_features/`` and ``flow_features/`` per-video .npy folders."""
    dirs = {"rgb": src / "rgb_features", "flow": src / "flow_features"}
    absent = [str(d) for d in dirs.values() if not d.is_dir()]
    if absent:
        raise StoreError(
            f"DGAM feature folders not found: {', '.join(absent)}",
            hint="--format dgam expects SRC/rgb_features/ and SRC/flow_features/",
        )
    return _per_stream_dirs(src, dirs, Sidecar.find(src))


def _decode_names(array: np.ndarray) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.ravel(array)]


def _wtalc_file(src: Path) -> Path:
    """The joint-feature file of a W-TALC export folder (or ``src`` itself, a file)."""
    if not src.is_dir():
        return src
    exported = [p.with_name(p.name.removesuffix(".talkit.json")) for p in src.glob("*.talkit.json")]
    candidates = [p for p in exported if p.is_file()] or sorted(src.glob("*JOINTFeatures.npy"))
    if len(candidates) != 1:
        found = ", ".join(p.name for p in candidates) or "none"
        raise StoreError(
            f"{src} is a folder, and it does not hold exactly one W-TALC feature file "
            f"(found: {found})",
            hint="give the *-JOINTFeatures.npy file itself",
        )
    return candidates[0]


def _wtalc_names(src: Path, annotations: Path | None, sidecar: Sidecar | None) -> list[str]:
    """Video names of a W-TALC array: ``annotations``/videoname.npy, else the one beside
    the file (what an export writes), else the order the export's sidecar records."""
    from talkit.datasets import load_wtalc_npy

    folder = annotations if annotations is not None else src.parent
    names_path = folder / "videoname.npy"
    if names_path.is_file():
        return _decode_names(load_wtalc_npy(names_path))
    if annotations is None and sidecar is not None:
        return sidecar.video_ids()
    if annotations is None:
        raise StoreError(
            f"--format wtalc needs the video names: no videoname.npy beside {src}",
            hint="give the annotation folder with --annotations DIR (the folder with "
            "videoname.npy, e.g. Thumos14reduced-Annotations/)",
        )
    raise StoreError(f"{names_path} not found", hint="point --annotations at the W-TALC folder")


def open_wtalc(src: Path, annotations: Path | None) -> Source:
    """The W-TALC joint-feature object array, one (T, D) array per video of videoname.npy."""
    from talkit.datasets import load_wtalc_npy

    src = _wtalc_file(src)
    sidecar = Sidecar.find(src)
    names = _wtalc_names(src, annotations, sidecar)
    folder = annotations if annotations is not None else src.parent
    feats = load_wtalc_npy(src)
    if len(feats) != len(names):
        raise StoreError(
            f"{src} has {len(feats)} videos but its video names ({folder}) list {len(names)}",
            hint="use the annotation folder that belongs to this feature file",
        )
    extra: dict[str, list[Any]] = {}
    for key in ("duration", "subset"):
        path = folder / f"{key}.npy"
        if path.is_file():
            values = np.ravel(load_wtalc_npy(path))
            if len(values) == len(names):
                extra[key] = [v.decode() if isinstance(v, bytes) else v.item() for v in values]

    def videos() -> Iterator[SourceVideo]:
        for i, vid in enumerate(names):
            array = np.asarray(feats[i])
            attrs = {key: values[i] for key, values in extra.items()}
            yield _with_sidecar(SourceVideo(vid, array, attrs=attrs), sidecar)

    return Source(sidecar.spec if sidecar else None, videos())


def open_h5(src: Path) -> Source:
    """HDF5: a dataset per video, or a group per video with one dataset per stream."""
    try:
        handle = h5py.File(src, "r")
    except OSError as exc:
        raise StoreError(f"cannot open HDF5 file {src}: {exc}") from exc
    spec = None
    if H5_SPEC_ATTR in handle.attrs:
        spec = FeatureSetSpec.from_attrs(json.loads(handle.attrs[H5_SPEC_ATTR]), where=str(src))

    def videos() -> Iterator[SourceVideo]:
        with handle:
            for vid, item in handle.items():
                if isinstance(item, h5py.Dataset):
                    yield SourceVideo(vid, item[...])
                    continue
                names = [
                    n for n, d in item.items() if isinstance(d, h5py.Dataset) and n != TIMESTAMPS
                ]
                order = [n for n in spec.streams if n in names] if spec else _stream_order(names)
                attrs = json.loads(item.attrs[H5_ATTRS_ATTR]) if H5_ATTRS_ATTR in item.attrs else {}
                ts = item[TIMESTAMPS][...] if TIMESTAMPS in item else None
                yield SourceVideo(vid, {n: item[n][...] for n in order}, ts, attrs)

    return Source(spec, videos())


def choose_feature_set(store: FeatureStore, key: str | None, *, where: str, option: str) -> str:
    """``key`` when given, else the store's only feature set (import and export both ask).

    ``where`` names the store in the message and ``option`` is the flag that picks one.
    """
    if key is not None:
        return key
    keys = store.feature_sets()
    if len(keys) != 1:
        raise StoreError(
            f"{where} has {len(keys)} feature sets ({', '.join(keys) or 'none'})",
            hint=f"choose one with {option} DATASET/NAME",
        )
    return keys[0]


def open_zarr(src: str, source_feature_set: str | None) -> Source:
    """A plain zarr v3 directory (or any talkit store) in the talkit layout."""
    store = FeatureStore.open(src)
    key = choose_feature_set(store, source_feature_set, where=src, option="--source-feature-set")
    fs = store.feature_set(*split_feature_set(key))

    def videos() -> Iterator[SourceVideo]:
        for video in fs:
            yield SourceVideo(video.id, video.read(), video.timestamps, user_attrs(video.attrs))

    return Source(fs.spec, videos())


def _split(video: SourceVideo, streams: dict[str, int]) -> dict[str, np.ndarray]:
    if isinstance(video.data, dict):
        return video.data
    array = video.data
    if array.ndim != 2 or array.shape[1] != sum(streams.values()):
        raise StoreError(
            f"video {video.video_id}: array of shape {array.shape} cannot be split into "
            f"streams {streams} (total {sum(streams.values())})",
            hint="set --streams to match the feature dim, e.g. rgb=1024,flow=1024",
        )
    out, start = {}, 0
    for name, dim in streams.items():
        out[name] = array[:, start : start + dim]
        start += dim
    return out


def _spec_for(
    first: SourceVideo, base: dict[str, Any], split: dict[str, int] | None
) -> FeatureSetSpec:
    if isinstance(first.data, dict):
        streams = {n: int(np.asarray(a).shape[-1]) for n, a in first.data.items()}
    elif split is not None:
        streams = split
    else:
        streams = {"features": int(np.asarray(first.data).shape[-1])}
    return FeatureSetSpec(**{**base, "streams": streams})


def open_source(
    fmt: str,
    src: str | Path,
    *,
    annotations: Path | None = None,
    source_feature_set: str | None = None,
) -> Source:
    """The reader for one of FORMATS."""
    if fmt != "zarr" and "://" in str(src) and not str(src).startswith("file://"):
        raise StoreError(
            f"import source {src} is a URL, but --format {fmt} reads local files",
            hint="copy the files here first; only --format zarr (a talkit store) imports "
            "from object storage",
        )
    path = Path(src)
    fmt = FORMAT_ALIASES.get(fmt, fmt)
    if fmt != "zarr" and not path.exists():
        raise StoreError(f"import source {src} does not exist")
    if fmt == "npy":
        return open_npy_dir(path)
    if fmt == "dgam":
        return open_dgam(path)
    if fmt == "wtalc":
        return open_wtalc(path, annotations)
    if fmt == "h5":
        return open_h5(path)
    if fmt == "zarr":
        return open_zarr(str(src), source_feature_set)
    raise StoreError(f"unknown import format {fmt!r}", hint=f"use one of: {', '.join(FORMATS)}")


def import_features(
    src: str | Path,
    store: FeatureStore,
    *,
    dataset: str,
    feature_set: str,
    fmt: str,
    base_spec: dict[str, Any] | None = None,
    split: dict[str, int] | None = None,
    dtype: str | None = None,
    annotations: Path | None = None,
    source_feature_set: str | None = None,
    storage: StorageOptions | None = None,
    overwrite: bool = False,
    allow_nonfinite: bool = False,
    message: str | None = None,
    on_video: Callable[[str], None] | None = None,
) -> int:
    """Import every video of ``src`` into ``dataset/feature_set`` in one commit.

    The spec comes from the source when it carries one (sidecar, HDF5 attrs, zarr);
    otherwise from ``base_spec`` (backbone, fps, clip_len, stride, ...) with streams from
    the source's folders or ``split``. Returns the number of videos imported.
    """
    writer = None
    try:
        source = open_source(
            fmt, src, annotations=annotations, source_feature_set=source_feature_set
        )
        first = next(source.videos, None)
        if first is None:
            raise StoreError(f"no videos found in {src}")
        spec = source.spec or _spec_for(first, base_spec or {"backbone": "unknown"}, split)
        if dtype is not None and dtype != spec.dtype:
            spec = spec.model_copy(update={"dtype": dtype})
        count = 0
        writer = store.writer(
            message=message or f"import {fmt} features from {src}",
            metadata={"import": {"format": fmt, "source": str(src)}},
        )
        with writer:
            writer.create_feature_set(dataset, feature_set, spec, storage=storage, exist_ok=True)
            for video in chain([first], source.videos):
                writer.write_video(
                    dataset,
                    feature_set,
                    video.video_id,
                    streams=_split(video, dict(spec.streams)),
                    timestamps=video.timestamps,
                    attrs=video.attrs,
                    overwrite=overwrite,
                    allow_nonfinite=allow_nonfinite,
                )
                count += 1
                if on_video is not None:
                    on_video(video.video_id)
    except KeyboardInterrupt:
        if writer is not None and writer.snapshot_id:  # Ctrl-C just after the commit
            return count
        raise Interrupted(
            f"interrupted: nothing was imported into {store.url} (an import is one commit, "
            "made at its end)",
            hint="run the same command again",
        ) from None
    return count
