"""Checking a video's arrays against its feature set before a single byte is written.

Everything that can be wrong with the input (missing or extra streams, mismatched
snippet counts, dims that differ from the spec, NaN/Inf, malformed timestamps or attrs)
is found here, so a failed write never leaves anything behind. The result carries the
arrays already cast to the storage dtype, with their content hashes (used by ``diff``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

import numpy as np
from pydantic import BaseModel

from talkit.store.codecs import to_storage_dtype
from talkit.store.errors import FeatureValidationError
from talkit.store.spec import RESERVED_VIDEO_ATTRS, TIMESTAMPS, FeatureSetSpec, check_video_id


@dataclass(frozen=True)
class PreparedVideo:
    """A validated video, ready to write: arrays in storage dtype plus the attrs to store."""

    video_id: str
    streams: dict[str, np.ndarray]
    timestamps: np.ndarray
    attrs: dict[str, Any]

    @property
    def num_snippets(self) -> int:
        return int(self.timestamps.shape[0])


def content_hash(array: np.ndarray) -> str:
    """sha256 of an array's dtype, shape and bytes: equal hashes mean bit-identical arrays."""
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()


def prepare_video(
    spec: FeatureSetSpec,
    where: str,
    video_id: str,
    streams: Mapping[str, Any],
    timestamps: Any = None,
    attrs: Mapping[str, Any] | None = None,
    *,
    allow_nonfinite: bool = False,
) -> PreparedVideo:
    """Validate and cast one video's arrays; raise FeatureValidationError on any problem."""
    check_video_id(video_id)
    label = f"video {video_id!r} in {where}"
    _check_stream_names(spec, label, streams)

    cast: dict[str, np.ndarray] = {}
    float16_error: dict[str, dict[str, float]] = {}
    lengths: dict[str, int] = {}
    for name, dim in spec.streams.items():
        array = np.asarray(streams[name])
        if array.ndim != 2:
            raise FeatureValidationError(
                f"{label}: stream {name!r} has shape {array.shape}, expected (T, {dim})"
            )
        if not np.issubdtype(array.dtype, np.floating):
            raise FeatureValidationError(
                f"{label}: stream {name!r} has dtype {array.dtype}, expected floating point",
                hint="features are float32 (or float16); convert with .astype(np.float32)",
            )
        if array.shape[1] != dim:
            raise FeatureValidationError(
                f"{label}: stream {name!r} has D={array.shape[1]} but the feature set's "
                f"spec says {name}={dim}",
                hint="write it to a feature set whose spec matches these features",
            )
        if array.shape[0] == 0:
            raise FeatureValidationError(f"{label}: stream {name!r} has no snippets (T=0)")
        lengths[name] = int(array.shape[0])
        stored, err = to_storage_dtype(array, spec.dtype)
        if not allow_nonfinite:
            _check_finite(stored, f"{label}: stream {name!r}", spec.dtype)
        cast[name] = stored
        if err is not None:
            float16_error[name] = err

    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{n}: T={t}" for n, t in lengths.items())
        raise FeatureValidationError(
            f"{label}: streams have different numbers of snippets ({detail})",
            hint="every stream of a video must have one row per snippet",
        )
    num_snippets = next(iter(lengths.values()))
    ts = _prepare_timestamps(spec, label, timestamps, num_snippets)
    user_attrs = _prepare_attrs(label, attrs)

    hashes = {name: content_hash(a) for name, a in cast.items()}
    hashes[TIMESTAMPS] = content_hash(ts)
    full_attrs: dict[str, Any] = {
        **user_attrs,
        "num_snippets": num_snippets,
        "streams": {n: int(a.shape[1]) for n, a in cast.items()},
        "content_sha256": hashes,
    }
    if float16_error:
        full_attrs["float16_error"] = float16_error
    return PreparedVideo(video_id, cast, ts, full_attrs)


def _check_stream_names(spec: FeatureSetSpec, label: str, streams: Mapping[str, Any]) -> None:
    if not isinstance(streams, Mapping):
        raise FeatureValidationError(
            f"{label}: streams must be a mapping of stream name to (T, D) array, "
            f"got {type(streams).__name__}"
        )
    missing = [n for n in spec.streams if n not in streams]
    extra = [n for n in streams if n not in spec.streams]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if extra:
            parts.append(f"unexpected {', '.join(map(str, extra))}")
        raise FeatureValidationError(
            f"{label}: streams do not match the spec ({'; '.join(parts)})",
            hint=f"the feature set has streams: {', '.join(spec.streams)}",
        )


def _check_finite(array: np.ndarray, label: str, dtype: str) -> None:
    finite = np.isfinite(array)
    if finite.all():
        return
    bad = np.argwhere(~finite)
    row, col = (int(v) for v in bad[0])
    overflow = " (too large for float16)" if dtype == "float16" else ""
    raise FeatureValidationError(
        f"{label} has {len(bad)} NaN/Inf values{overflow}, first at snippet {row}, dim {col}",
        hint="fix the extraction, or pass allow_nonfinite=True to store them anyway",
    )


def _prepare_timestamps(
    spec: FeatureSetSpec, label: str, timestamps: Any, num_snippets: int
) -> np.ndarray:
    if timestamps is None:
        return spec.snippet_timestamps(num_snippets)
    ts = np.asarray(timestamps, dtype=np.float64)
    if ts.shape != (num_snippets, 2):
        raise FeatureValidationError(
            f"{label}: timestamps have shape {ts.shape}, expected ({num_snippets}, 2)",
            hint="one (start, end) pair in seconds per snippet",
        )
    if not np.isfinite(ts).all():
        raise FeatureValidationError(f"{label}: timestamps contain NaN or Inf")
    if (ts[:, 1] < ts[:, 0]).any():
        row = int(np.argmax(ts[:, 1] < ts[:, 0]))
        raise FeatureValidationError(
            f"{label}: snippet {row} ends before it starts ({ts[row, 0]} > {ts[row, 1]} s)"
        )
    return np.ascontiguousarray(ts)


def to_jsonable(value: Any) -> Any:
    """Turn numpy scalars/arrays, paths and pydantic models into plain JSON values."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


def _prepare_attrs(label: str, attrs: Mapping[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in (attrs or {}).items():
        if key in RESERVED_VIDEO_ATTRS:
            raise FeatureValidationError(
                f"{label}: attr {key!r} is set by the store and cannot be given",
                hint=f"reserved attrs: {', '.join(sorted(RESERVED_VIDEO_ATTRS))}",
            )
        out[key] = to_jsonable(value)
    try:
        json.dumps(out, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise FeatureValidationError(
            f"{label}: attrs must be JSON-serialisable: {exc}",
            hint="use str, int, float (finite), bool, None, lists and dicts",
        ) from exc
    return out
