"""Taking features out of a store, in the formats existing code reads.

  - ``npy``: per-video ``.npy``; one folder per stream (BaSNet layout, default) or one
    (T, sum D) file per video with streams concatenated (``layout="concat"``, ActionFormer).
    A ``talkit.json`` sidecar carries spec, attrs and timestamps.
  - ``h5``: one HDF5 file, a group per video with a dataset per stream plus ``timestamps``;
    spec and attrs in HDF5 attrs (JSON).
  - ``zarr``: a plain zarr v3 directory in the talkit layout, readable by any zarr v3 tool
    and by ``FeatureStore.open``.
  - ``wtalc``: the W-TALC joint-feature object array (streams concatenated in spec order),
    in the order of ``videoname.npy`` from ``annotations`` (or sorted, with a
    ``videoname.npy`` written beside it). ``out`` is a folder that receives
    ``<dataset>-<name>-JOINTFeatures.npy`` (W-TALC's naming), or a ``.npy`` file path.
    Sidecar: ``<file>.talkit.json``. ``talkit store import OUT --format wtalc`` reads it
    back with no other option.

Arrays are written exactly as stored (float32 stays bit-identical; float16 stays float16).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

from talkit.store.errors import StoreError
from talkit.store.importers import H5_ATTRS_ATTR, H5_SPEC_ATTR, _decode_names, choose_feature_set
from talkit.store.reader import FeatureSet
from talkit.store.sidecar import build_sidecar, user_attrs, write_sidecar
from talkit.store.spec import TIMESTAMPS
from talkit.store.store import FeatureStore

FORMATS = ("npy", "h5", "zarr", "wtalc")
# The import command's old name for ``npy``, accepted here too so both directions agree.
FORMAT_ALIASES = {"npy-dir": "npy"}

Progress = Callable[[str], None] | None


def _prepare_out(out: Path, *, is_dir: bool, overwrite: bool) -> None:
    if out.exists():
        if is_dir and out.is_dir() and not any(out.iterdir()):
            return
        if not overwrite:
            raise StoreError(
                f"export target {out} already exists",
                hint="pick a new path (exports never overwrite silently)",
            )
    if is_dir:
        out.mkdir(parents=True, exist_ok=True)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)


def export_npy(
    fs: FeatureSet, out: Path, *, layout: str = "streams", on_video: Progress = None
) -> int:
    """Per-video .npy files plus the talkit.json sidecar."""
    if layout not in ("streams", "concat"):
        raise StoreError(f"unknown npy layout {layout!r}", hint="use 'streams' or 'concat'")
    _prepare_out(out, is_dir=True, overwrite=False)
    ids = fs.videos()
    if layout == "streams":
        for name in fs.spec.streams:
            (out / name).mkdir(exist_ok=True)
    for vid in ids:
        video = fs.video(vid)
        if layout == "streams":
            for name, array in video.read().items():
                np.save(out / name / f"{vid}.npy", array)
        else:
            np.save(out / f"{vid}.npy", video.features())
        if on_video:
            on_video(vid)
    write_sidecar(out, build_sidecar(fs, layout, ids))
    return len(ids)


def export_h5(fs: FeatureSet, out: Path, *, on_video: Progress = None) -> int:
    """One HDF5 file: a group per video with its streams and timestamps."""
    _prepare_out(out, is_dir=False, overwrite=False)
    ids = fs.videos()
    with h5py.File(out, "w") as handle:
        handle.attrs[H5_SPEC_ATTR] = json.dumps(fs.spec.to_attrs())
        handle.attrs["talkit_feature_set"] = fs.key
        for vid in ids:
            video = fs.video(vid)
            group = handle.create_group(vid)
            for name, array in video.read().items():
                group.create_dataset(name, data=array)
            group.create_dataset(TIMESTAMPS, data=video.timestamps)
            group.attrs[H5_ATTRS_ATTR] = json.dumps(user_attrs(video.attrs), allow_nan=False)
            if on_video:
                on_video(vid)
    return len(ids)


def export_zarr(fs: FeatureSet, out: Path, *, on_video: Progress = None) -> int:
    """A plain zarr v3 directory with the same layout, spec and attrs.

    Chunking is kept; the codec becomes Blosc-zstd when the store used pcodec, which is
    outside the zarr v3 core spec, so that any zarr v3 reader can open the export.
    """
    _prepare_out(out, is_dir=True, overwrite=False)
    storage = fs.storage
    if storage.codec == "pcodec":
        storage = storage.model_copy(update={"codec": "blosc-zstd", "clevel": 3})
    target = FeatureStore.create(str(out), exist_ok=True, engine="zarr")
    target.create_feature_set(fs.dataset, fs.name, fs.spec, storage=storage)
    with target.writer(message=f"export {fs.key}") as writer:
        for video in fs:
            writer.write_video(
                fs.dataset,
                fs.name,
                video.id,
                streams=video.read(),
                timestamps=video.timestamps,
                attrs=user_attrs(video.attrs),
                allow_nonfinite=True,
            )
            if on_video:
                on_video(video.id)
    return len(fs)


def export_wtalc(
    fs: FeatureSet, out: Path, *, annotations: Path | None = None, on_video: Progress = None
) -> int:
    """The W-TALC joint-feature object array, in the annotation folder's video order.

    ``out`` ending in ``.npy`` is the file to write; anything else is a folder to write
    ``<dataset>-<name>-JOINTFeatures.npy`` (and ``videoname.npy``, the sidecar) into.
    """
    if out.suffix != ".npy":
        _prepare_out(out, is_dir=True, overwrite=False)
        out = out / f"{fs.dataset}-{fs.name}-JOINTFeatures.npy"
    _prepare_out(out, is_dir=False, overwrite=False)
    if annotations is None and out.with_name("videoname.npy").exists():
        raise StoreError(
            f"{out.with_name('videoname.npy')} already exists",
            hint="export into a new folder (exports never overwrite silently)",
        )
    if annotations is not None:
        from talkit.datasets import load_wtalc_npy

        order = _decode_names(load_wtalc_npy(annotations / "videoname.npy"))
        missing = [v for v in order if v not in fs]
        if missing:
            raise StoreError(
                f"{len(missing)} videos of {annotations / 'videoname.npy'} are not in "
                f"{fs.key} (e.g. {missing[0]})",
                hint="W-TALC needs features for every video it names",
            )
    else:
        order = fs.videos()
    joint = np.empty(len(order), dtype=object)
    for i, vid in enumerate(order):
        joint[i] = fs.video(vid).features()
        if on_video:
            on_video(vid)
    np.save(out, joint, allow_pickle=True)
    if annotations is None:
        np.save(out.with_name("videoname.npy"), np.array([v.encode() for v in order]))
    write_sidecar(out, build_sidecar(fs, "wtalc", list(order)))
    return len(order)


def export_features(
    store: FeatureStore,
    out: str | Path,
    *,
    fmt: str,
    feature_set: str | None = None,
    layout: str = "streams",
    annotations: Path | None = None,
    on_video: Progress = None,
) -> int:
    """Export one feature set (the only one, or ``feature_set``) in ``fmt``."""
    key = choose_feature_set(store, feature_set, where=f"store {store.url}", option="--feature-set")
    fs = store.feature_set(key)
    path = Path(out)
    fmt = FORMAT_ALIASES.get(fmt, fmt)
    if fmt == "npy":
        return export_npy(fs, path, layout=layout, on_video=on_video)
    if fmt == "h5":
        return export_h5(fs, path, on_video=on_video)
    if fmt == "zarr":
        return export_zarr(fs, path, on_video=on_video)
    if fmt == "wtalc":
        return export_wtalc(fs, path, annotations=annotations, on_video=on_video)
    raise StoreError(f"unknown export format {fmt!r}", hint=f"use one of: {', '.join(FORMATS)}")
