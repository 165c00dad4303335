"""What a read checks, and how damage it finds is named.

Why: a flipped byte in a chunk, a truncated object or a damaged manifest must never turn
into feature values that look valid. Three checks cover what talkit writes:

- every chunk of every array ends in a crc32c of its stored bytes (zarr v3's ``crc32c``
  codec, after the compressor), checked before the chunk is decoded or cached; shard
  indexes carry their own crc32c;
- every chunk is written (the writer stores all-zero chunks too), so a chunk the store
  does not have is damage, not the fill value;
- the store root, each feature set and each video carry ``attrs_sha256``, a digest of
  their attrs and their own path in the store, checked when they are opened; a video's
  attrs hold each array's length and dims, so an array whose metadata changed (shape,
  dtype, chunking, a codec chain without its crc32c) is caught too.

Videos written before these checks existed have none of them; a read of a whole array of
theirs is compared with the sha256 the writer recorded (``content_sha256``), and
``talkit store verify`` checks them completely.

Everything found is raised as :class:`CorruptDataError` naming the store, feature set,
video, array and chunk as far as known, with what to do next.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from zarr.codecs import Crc32cCodec, ShardingCodec

from talkit.errors import TalkitError
from talkit.store.errors import CorruptDataError, StoreError, StoreReadError

ATTRS_DIGEST = "attrs_sha256"
"""The video attr holding the digest of the other attrs (written by the writer, last)."""

# Words of an icechunk/object-store error that mean the stored bytes are wrong or gone
# (rather than a network or permission problem on object storage).
_DAMAGE_WORDS = re.compile(
    r"not found|no such|nosuchkey|invalid|magic|corrupt|checksum|deserializ|decompress|"
    r"range|out of bounds|unexpected end|flatbuffer|utf-8|decode|malformed|truncat",
    re.IGNORECASE,
)


def verify_hint(url: str) -> str:
    """What to do about damage: find all of it, or read a version from before it."""
    return (
        f"run `talkit store verify {url}` to list every damaged video, "
        "or read an older version with --version"
    )


def describe(path: str, chunk: int | None = None) -> str:
    """``thumos14/i3d/v/rgb`` as ``thumos14/i3d video v, array rgb`` (+ chunk)."""
    parts = [p for p in path.strip("/").split("/") if p]
    if not parts:
        text = "the store root"
    elif len(parts) <= 2:
        text = f"{'/'.join(parts)}"
    else:
        text = f"{'/'.join(parts[:2])} video {parts[2]}"
        if len(parts) > 3:
            text += f", array {'/'.join(parts[3:])}"
    return text if chunk is None else f"{text}, chunk {chunk}"


def corrupt(url: str, path: str, what: str, *, chunk: int | None = None) -> CorruptDataError:
    """A CorruptDataError for ``path`` (a zarr path in the store) in one line."""
    parts = [p for p in path.strip("/").split("/") if p]
    return CorruptDataError(
        f"damaged data in store {url}: {describe(path, chunk)}: {what}",
        hint=verify_hint(url),
        store=url,
        feature_set="/".join(parts[:2]) if len(parts) >= 2 else None,
        video=parts[2] if len(parts) >= 3 else None,
        array="/".join(parts[3:]) if len(parts) >= 4 else None,
        chunk=chunk,
        detail=what,
    )


def cause_line(exc: BaseException) -> str:
    """The one line of a library error worth showing (icechunk: its root cause)."""
    from talkit.store.backend import _first_line

    line = _first_line(exc) if type(exc).__module__.startswith("icechunk") else ""
    if not line:
        text = str(exc).strip()
        line = text.splitlines()[0].strip() if text else ""
    name = type(exc).__name__
    line = line or name
    return line if len(line) <= 200 else line[:197] + "..."


def read_error(url: str, path: str, exc: BaseException, chunk: int | None = None) -> StoreError:
    """The error for a library exception raised while reading ``path``.

    Damage (bytes that do not decode, objects that are gone) is a CorruptDataError; on
    object storage, an error that does not look like damage (a timeout, a refused
    request) is a plain StoreError that says to retry.
    """
    if isinstance(exc, TalkitError):
        return exc  # type: ignore[return-value]
    line = cause_line(exc)
    remote = "://" in url and not url.startswith("file://")
    is_icechunk = type(exc).__module__.startswith("icechunk")
    if remote and is_icechunk and not _DAMAGE_WORDS.search(str(exc)):
        return StoreReadError(
            f"cannot read {describe(path, chunk)} from store {url}: {line}",
            hint="check the connection and credentials, and retry; if it persists, "
            + verify_hint(url),
        )
    text = str(exc)
    if re.search(r"not found|no such file|nosuchkey", text, re.IGNORECASE):
        what = f"its stored object is missing ({line})"
    elif re.search(r"range", text, re.IGNORECASE):
        what = f"its stored object is shorter than recorded ({line})"
    else:
        what = f"it cannot be read ({line})"
    return corrupt(url, path, what, chunk=chunk)


def library_error(exc: BaseException) -> bool:
    """Whether ``exc`` is an error of a library (zarr, icechunk, a codec), not a signal.

    icechunk reports some damage as a Rust panic, ``pyo3_runtime.PanicException``, which
    is a BaseException so that ordinary handlers do not swallow it.
    """
    if isinstance(exc, TalkitError):
        return False
    return isinstance(exc, Exception) or type(exc).__name__ == "PanicException"


@contextlib.contextmanager
def reading(url: str, path: str) -> Iterator[None]:
    """Turn library errors raised while reading ``path`` into one-line store errors.

    The store's own errors pass through; anything else raised by zarr, icechunk or a
    codec inside the block means the stored data could not be read as written.
    """
    try:
        yield
    except BaseException as exc:
        if not library_error(exc):
            raise
        raise read_error(url, path, exc) from exc


def canonical_json(value: Any) -> bytes:
    """A stable byte form of JSON attrs (sorted keys, no whitespace)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def attrs_digest(path: str, attrs: Mapping[str, Any]) -> str:
    """sha256 of a group's path in the store and its attrs (all but the digest itself).

    The store root (path ""), each feature set and each video carry one, so a damaged
    attr, or a group whose name changed, is found when the group is opened.
    """
    body = {k: v for k, v in attrs.items() if k != ATTRS_DIGEST}
    digest = hashlib.sha256(f"{path.strip('/')}\n".encode())
    digest.update(canonical_json(body))
    return digest.hexdigest()


def check_attrs(url: str, path: str, attrs: Mapping[str, Any], *, verify: bool = True) -> None:
    """Raise CorruptDataError if ``attrs`` carry a digest that they do not match."""
    digest = attrs.get(ATTRS_DIGEST)
    if digest is None or not verify:
        return
    if attrs_digest(path, attrs) != digest:
        raise corrupt(url, path, f"its attrs do not match their digest ({ATTRS_DIGEST})")


def has_checksum(codecs: Sequence[Any]) -> bool:
    """Whether an array's codec chain ends its chunks with a crc32c (inside shards too)."""
    codecs = list(codecs)
    if len(codecs) == 1 and isinstance(codecs[0], ShardingCodec):
        codecs = list(codecs[0].codecs)
    return bool(codecs) and isinstance(codecs[-1], Crc32cCodec)


def check_array(
    url: str,
    path: str,
    array: Any,
    *,
    shape: tuple[int, int] | None,
    dtype: np.dtype,
    sealed: bool,
    layout: tuple[tuple[int, int], tuple[int, int] | None] | None,
) -> None:
    """Raise CorruptDataError if an array's metadata disagrees with what its video says.

    ``shape`` and ``dtype``: from the video's attrs and its feature set's spec. A
    ``sealed`` video (one with an attrs digest) was written with crc32c in every chain
    and with the chunks and shards (``layout``) its feature set's storage options give;
    an unsealed one must have no checksums (it was written before them).
    """
    got_shape = tuple(int(x) for x in array.shape)
    if shape is not None and got_shape != shape:
        raise corrupt(url, path, f"its shape {got_shape} differs from the video's {shape}")
    if np.dtype(array.dtype) != dtype:
        raise corrupt(url, path, f"its dtype {array.dtype} is not {dtype}")
    checksum = has_checksum(array.metadata.codecs)
    if not sealed:
        if checksum:  # written with a digest that is gone now
            raise corrupt(
                url, path, f"its video's attrs lack the {ATTRS_DIGEST} it was written with"
            )
        return
    if not checksum:
        raise corrupt(url, path, "its codecs lack the crc32c its video was written with")
    got = (tuple(array.chunks), None if array.shards is None else tuple(array.shards))
    if layout is not None and got != (
        tuple(layout[0]),
        None if layout[1] is None else tuple(layout[1]),
    ):
        raise corrupt(
            url,
            path,
            f"its chunks {got[0]} / shards {got[1]} are not the ones its feature set writes "
            f"({layout[0]} / {layout[1]})",
        )


def check_content(url: str, path: str, data: np.ndarray, expected: Any) -> None:
    """Raise CorruptDataError if a whole array differs from the sha256 its writer recorded."""
    if not isinstance(expected, str):
        return  # not written by talkit: nothing recorded to compare with
    from talkit.store.validate import content_hash

    if content_hash(data) != expected:
        raise corrupt(url, path, "its values differ from the sha256 recorded when it was written")
