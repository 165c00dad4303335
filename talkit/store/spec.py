"""What a feature set *is*: the extraction spec and the store's layout names.

The spec travels with the features (it is the feature set group's attrs), so a reader
always knows which backbone, checkpoint and sampling made them. Extractors fill it from
their backbone config; importers fill what the source format tells them.

Layout (a zarr v3 group tree, see design.md "The store contract")::

    <store>/                      attrs: {"talkit_store": {"format_version": 1, ...}}
      <dataset>/<feature_set>/    attrs: {"spec": FeatureSetSpec, "storage": StorageOptions}
        <video_id>/               attrs: source, native fps, frame count, duration, status, ...
          <stream>                (T, D) array per stream
          timestamps              (T, 2) float64, snippet start/end in seconds
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from talkit import __version__ as _talkit_version
from talkit.store.errors import StoreError

FORMAT_VERSION = 1
"""Version of the group layout above; bumped on any incompatible change."""

ROOT_KEY = "talkit_store"
TIMESTAMPS = "timestamps"
STATUS_COMPLETE = "complete"
STATUS_WRITING = "writing"

# Attrs the writer owns; user attrs may not set them.
RESERVED_VIDEO_ATTRS = frozenset(
    {
        "status",
        "num_snippets",
        "streams",
        "content_sha256",
        "written_at",
        "float16_error",
        "attrs_sha256",
    }
)

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+=@,-]*$")
# Video ids come from the datasets: YouTube ids (ActivityNet, HACS) may start with '-'.
_VIDEO_ID_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.+=@,-]*$")

StorageDtype = Literal["float32", "float16"]


class FeatureSetSpec(BaseModel):
    """The full extraction spec of a feature set, stored in its group attrs.

    ``streams`` maps stream name to feature dim (``{"rgb": 1024, "flow": 1024}``) in the
    order a joint feature concatenates them. ``checkpoints`` maps a stream (or model part)
    to the sha256 of the weights used, ``"random:<seed>"`` for untrained weights, or None
    when unknown (imported features). Everything backbone-specific that is not a named
    field (resize, crop, normalisation, flow method and its parameters, ...) goes in
    ``params``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    backbone: str = Field(min_length=1)
    streams: dict[str, int] = Field(min_length=1)
    dtype: StorageDtype = "float32"
    fps: float | None = Field(default=None, gt=0)
    clip_len: int | None = Field(default=None, gt=0)
    stride: int | None = Field(default=None, gt=0)
    params: dict[str, Any] = Field(default_factory=dict)
    checkpoints: dict[str, str | None] = Field(default_factory=dict)
    talkit_version: str = _talkit_version

    @field_validator("streams")
    @classmethod
    def _check_streams(cls, streams: dict[str, int]) -> dict[str, int]:
        for name, dim in streams.items():
            check_name(name, "stream")
            if name == TIMESTAMPS:
                raise ValueError(f"'{TIMESTAMPS}' is reserved and cannot be a stream name")
            if not isinstance(dim, int) or dim <= 0:
                raise ValueError(f"stream {name!r} must have a positive integer dim, got {dim!r}")
        return streams

    @field_validator("params")
    @classmethod
    def _check_params_json(cls, params: dict[str, Any]) -> dict[str, Any]:
        try:
            json.dumps(params, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"params must be JSON-serialisable: {exc}") from exc
        return params

    @property
    def dim(self) -> int:
        """Total dim of the joint feature (all streams concatenated)."""
        return sum(self.streams.values())

    def snippet_timestamps(self, num_snippets: int) -> Any:
        """(T, 2) snippet start/end seconds from fps, clip length and stride.

        Snippet i covers ``[i*stride/fps, (i*stride + clip_len)/fps)``, the I3D convention.
        """
        import numpy as np

        if self.fps is None or self.clip_len is None or self.stride is None:
            raise StoreError(
                f"cannot derive timestamps for backbone {self.backbone!r}: "
                "the spec lacks fps, clip_len or stride",
                hint="pass explicit timestamps or set fps, clip_len and stride in the spec",
            )
        start = np.arange(num_snippets, dtype=np.float64) * self.stride / self.fps
        return np.stack([start, start + self.clip_len / self.fps], axis=1)

    def to_attrs(self) -> dict[str, Any]:
        """The JSON form stored in zarr attrs."""
        return self.model_dump(mode="json")

    @classmethod
    def from_attrs(cls, data: Any, *, where: str) -> FeatureSetSpec:
        """Parse a stored spec, with an error that names the feature set."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise StoreError(
                f"feature set {where} has an invalid spec: {exc.errors()[0]['msg']}",
                hint="the store may come from a newer talkit; upgrade, or re-create it",
            ) from exc

    def diff(self, other: FeatureSetSpec) -> dict[str, tuple[Any, Any]]:
        """Fields that differ, as ``{dotted.key: (self_value, other_value)}``."""
        return _dict_diff(self.to_attrs(), other.to_attrs())


class StorageOptions(BaseModel):
    """How a feature set's arrays are chunked and compressed (see talkit.store.codecs).

    The defaults were chosen by measurement (README, store section): 256-snippet chunks
    packed into shards of up to 4096 snippets, and pcodec level 8, the only lossless codec
    that reached 1.3x on float32 snippet features and also among the fastest to decode.
    ``codec="auto"`` means pcodec when it is installed and Blosc-zstd otherwise; the
    resolved choice is what gets stored.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    chunk_t: int = Field(default=256, gt=0, description="Snippets per chunk along time.")
    codec: Literal["auto", "pcodec", "blosc-zstd", "blosc-lz4", "zstd", "none"] = "auto"
    clevel: int | None = Field(
        default=None, ge=0, le=12, description="Codec level; None: 8 for pcodec, 3 otherwise."
    )
    shuffle: Literal["shuffle", "bitshuffle", "noshuffle"] = "shuffle"
    transpose: bool = Field(
        default=False,
        description="Store each chunk dim-major (helps Blosc compress, costs decode time).",
    )
    shard_t: int | None = Field(
        default=4096,
        gt=0,
        description=(
            "Snippets per stored object: chunks are packed into shards of up to this many "
            "snippets (whole chunks, at least one), so a crop is one request per stream; "
            "None stores every chunk as its own object."
        ),
    )

    @classmethod
    def from_attrs(cls, attrs: Any) -> StorageOptions:
        """The options a feature set recorded; sets written before sharding were unsharded."""
        data = dict(attrs or {})
        if data and "shard_t" not in data:
            data["shard_t"] = None
        return cls.model_validate(data)

    def shard_rows(self, num_snippets: int) -> int | None:
        """Snippets per shard for a video of ``num_snippets``: whole chunks, no more than needed."""
        if self.shard_t is None:
            return None
        per_shard = max(1, self.shard_t // self.chunk_t)
        needed = -(-max(num_snippets, 1) // self.chunk_t)
        return min(per_shard, needed) * self.chunk_t

    def chunking(self, rows: int, dim: int) -> tuple[tuple[int, int], tuple[int, int] | None]:
        """(chunk shape, shard shape or None) of a (rows, dim) array; tiny videos get one chunk."""
        chunk = max(1, min(self.chunk_t, rows))
        shard = self.shard_rows(rows)
        if shard is None:
            return (chunk, dim), None
        return (chunk, dim), (chunk if rows < self.chunk_t else shard, dim)

    def resolved(self) -> StorageOptions:
        """Concrete options: ``auto`` codec and ``None`` level replaced by what is used."""
        codec = self.codec
        if codec == "auto":
            try:
                import pcodec  # noqa: F401

                codec = "pcodec"
            except ImportError:
                codec = "blosc-zstd"
        clevel = self.clevel if self.clevel is not None else (8 if codec == "pcodec" else 3)
        return self.model_copy(update={"codec": codec, "clevel": clevel})


class SourceInfo(BaseModel):
    """Where a video's features came from: the file, its size and content hash."""

    model_config = ConfigDict(extra="forbid")

    path: str
    size: int | None = None
    sha256: str | None = None

    @classmethod
    def of_file(cls, path: str | Path) -> SourceInfo:
        """Describe a file on disk, hashing its content (so renamed copies still match)."""
        p = Path(path)
        digest = hashlib.sha256()
        with p.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        return cls(path=str(p), size=p.stat().st_size, sha256=digest.hexdigest())


def check_name(name: str, what: str) -> str:
    """Reject names that would break the group tree (slashes, dot-files, empty)."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise StoreError(
            f"invalid {what} name {name!r}",
            hint="use letters, digits and _ . + = @ , - only, not starting with '.' or '-'",
        )
    return name


def check_video_id(video_id: str) -> str:
    """Like ``check_name``, but a leading '-' is allowed (YouTube ids such as '-0ds4HFnJWA')."""
    if not isinstance(video_id, str) or not _VIDEO_ID_RE.match(video_id):
        raise StoreError(
            f"invalid video id {video_id!r}",
            hint="use letters, digits and _ . + = @ , - only, not starting with '.'",
        )
    return video_id


def split_feature_set(key: str) -> tuple[str, str]:
    """``"thumos14/i3d"`` -> ``("thumos14", "i3d")``, with a clear error otherwise."""
    parts = key.strip("/").split("/")
    if len(parts) != 2:
        raise StoreError(
            f"feature set {key!r} is not of the form DATASET/FEATURE_SET",
            hint="e.g. thumos14/i3d",
        )
    return check_name(parts[0], "dataset"), check_name(parts[1], "feature set")


def _dict_diff(
    a: dict[str, Any], b: dict[str, Any], prefix: str = ""
) -> dict[str, tuple[Any, Any]]:
    out: dict[str, tuple[Any, Any]] = {}
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        path = f"{prefix}{key}"
        if isinstance(va, dict) and isinstance(vb, dict):
            out.update(_dict_diff(va, vb, path + "."))
        elif va != vb:
            out[path] = (va, vb)
    return out
