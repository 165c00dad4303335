"""Chunking and compression of feature arrays, and the float16 storage option.

Defaults (StorageOptions) were chosen by measurement with ``benchmarks/store_io.py
--sweep`` on realistic synthetic I3D-like features; the README (store section) has the
table. In short: float32 mantissas are close to random, so byte-oriented codecs
(Blosc-zstd/lz4 with shuffle) reach only 1.1-1.25x; pcodec, a numerical codec, models
the value distribution and reaches ~1.34x losslessly while decoding as fast as
Blosc-zstd. 256-snippet chunks were as fast as any size for 750-snippet crops and for
whole videos; packing them into one shard per stream per video (StorageOptions.shard_t)
makes a crop one request per stream, which cuts its CPU by about a quarter on a local
icechunk store. pcodec is outside the zarr v3 core spec, so plain-zarr exports default to
Blosc-zstd, which every zarr v3 reader has.

Every chunk ends in a crc32c of its stored bytes (zarr v3's core ``crc32c`` codec, last in
the chain), which reads check before decoding (:mod:`talkit.store.integrity`).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
from zarr.codecs import BloscCodec, Crc32cCodec, ShardingCodec, TransposeCodec, ZstdCodec

from talkit.store.errors import StoreError
from talkit.store.spec import StorageOptions

_SPEC_WARNING = "Numcodecs codecs are not in the Zarr version 3"


@contextlib.contextmanager
def quiet_codec_warnings() -> Iterator[None]:
    """Silence zarr's 'numcodecs codecs are not in the v3 spec' on each pcodec array open.

    The choice was made, and documented, when the feature set was created.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_SPEC_WARNING)
        yield


# Chunks that are all fill value are stored too: a chunk the store lacks is then damage.
WRITE_CONFIG = {"write_empty_chunks": True}


def timestamps_codecs() -> dict[str, Any]:
    """Keyword arguments for ``create_array`` of a video's (T, 2) timestamps."""
    return {"compressors": [ZstdCodec(level=3), Crc32cCodec()], "config": dict(WRITE_CONFIG)}


def array_codecs(options: StorageOptions, dtype: np.dtype) -> dict[str, Any]:
    """Keyword arguments for ``zarr.Group.create_array`` implementing ``options``.

    The chain ends in a crc32c of each chunk's stored bytes; every chunk is written.
    """
    options = options.resolved()
    assert options.clevel is not None
    filters: list[Any] = [TransposeCodec(order=(1, 0))] if options.transpose else []
    config = dict(WRITE_CONFIG)
    if options.codec == "pcodec":
        return {
            "filters": filters,
            "compressors": [Crc32cCodec()],
            "serializer": _pcodec(options.clevel),
            "config": config,
        }
    if options.codec == "none":
        compressors: list[Any] = []
    elif options.codec == "zstd":
        compressors = [ZstdCodec(level=options.clevel)]
    else:
        cname = options.codec.split("-", 1)[1]
        compressors = [
            BloscCodec(
                cname=cname,
                clevel=options.clevel,
                shuffle=options.shuffle,
                typesize=np.dtype(dtype).itemsize,
            )
        ]
    return {"filters": filters, "compressors": [*compressors, Crc32cCodec()], "config": config}


def _pcodec(level: int) -> Any:
    """pcodec (numerical compression; lossless for floats), an optional dependency."""
    try:
        import pcodec  # noqa: F401
        from zarr.codecs.numcodecs import PCodec
    except ImportError as exc:
        raise StoreError(
            "storage codec 'pcodec' needs the pcodec package, which is not installed",
            hint="pip install pcodec, or choose codec='blosc-zstd'",
        ) from exc
    with quiet_codec_warnings():
        return PCodec(level=level)


def describe_codecs(array: Any) -> str:
    """A one-line human description of an array's codec chain, e.g. ``transpose|blosc-zstd3-shuffle``."""
    return "|".join(_describe(getattr(array.metadata, "codecs", ()))) or "none"


def _describe(codecs: Any) -> list[str]:
    parts: list[str] = []
    for codec in codecs:
        name = type(codec).__name__
        if isinstance(codec, ShardingCodec):
            parts.append("sharded")
            parts.extend(_describe(codec.codecs))
            continue
        if isinstance(codec, TransposeCodec):
            parts.append("transpose")
        elif isinstance(codec, BloscCodec):
            shuffle = getattr(codec.shuffle, "value", codec.shuffle)
            cname = getattr(codec.cname, "value", codec.cname)
            parts.append(f"blosc-{cname}{codec.clevel}-{shuffle}")
        elif isinstance(codec, ZstdCodec):
            parts.append(f"zstd{codec.level}")
        elif name == "PCodec":
            parts.append(f"pcodec{codec.codec_config.get('level', '')}")
        elif name == "BytesCodec":
            continue
        else:
            parts.append(name.removesuffix("Codec").lower())
    return parts


def to_storage_dtype(array: np.ndarray, dtype: str) -> tuple[np.ndarray, dict[str, float] | None]:
    """Cast features to the storage dtype; for float16 also measure what the cast lost.

    Returns the array to store and, for float16, ``{"max_abs": .., "max_rel": ..,
    "rmse": ..}`` where ``max_rel`` is relative to the largest magnitude in the array, the
    error a user compares against their feature scale.
    """
    target = np.dtype(dtype)
    if array.dtype == target:
        return np.ascontiguousarray(array), None
    with np.errstate(over="ignore"):  # overflow becomes inf, which validation reports
        stored = np.ascontiguousarray(array, dtype=target)
    if target != np.float16:
        return stored, None
    reference = array.astype(np.float64, copy=False)
    err = np.abs(stored.astype(np.float64) - reference)
    scale = float(np.max(np.abs(reference))) if reference.size else 0.0
    max_abs = float(err.max()) if err.size else 0.0
    return stored, {
        "max_abs": max_abs,
        "max_rel": max_abs / scale if scale > 0 else 0.0,
        "rmse": float(np.sqrt(np.mean(err**2))) if err.size else 0.0,
    }
