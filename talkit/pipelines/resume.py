"""Resume: which videos of a plan are already in the store, extracted from the same file.

A video is skipped on a re-run when the store holds it complete, in a feature set whose
spec equals this run's (the store refuses a feature set whose spec changed), and with the
same source fingerprint:

- ``path``: the absolute path of the file;
- ``size``: its size in bytes;
- ``content_hash``: ``qsha256:`` + sha256 over the size and the first and last MiB of the
  file (the whole file when it is at most 2 MiB). Reading 2 MiB instead of gigabytes keeps
  a resume over 50k videos cheap, and still catches re-encodes, truncation and
  replacement, which change the header, the tail or the size. A frame folder hashes its
  file names and sizes.

A video object (``s3://...``) is fingerprinted by its URL, size and ``etag:`` + its ETag:
S3 gives every new version of an object a new ETag, and the listing that planned the run
already carries both, so resuming over object storage reads no video at all.

Everything else (a missing, incomplete or differently sourced video) is extracted again;
``force`` extracts everything again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from talkit.pipelines.plan import VideoItem

HASH_BLOCK = 1 << 20
HASH_PREFIX = "qsha256:"
ETAG_PREFIX = "etag:"
SOURCE_ATTR = "source"


@dataclass(frozen=True)
class Fingerprint:
    """Identity of a source file as the store records it (``attrs["source"]``)."""

    path: str
    size: int
    content_hash: str

    def to_attrs(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "content_hash": self.content_hash}

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any] | None) -> Fingerprint | None:
        """The fingerprint a stored video carries, or None if it has none (imported)."""
        if not isinstance(attrs, Mapping):
            return None
        try:
            return cls(str(attrs["path"]), int(attrs["size"]), str(attrs["content_hash"]))
        except (KeyError, TypeError, ValueError):
            return None


def quick_hash(path: Path) -> tuple[int, str]:
    """(size, ``qsha256:<hex>``) of a file or a frame folder (see module docstring)."""
    digest = hashlib.sha256()
    if path.is_dir():
        size = 0
        for f in sorted(path.iterdir()):
            if f.is_file():
                n = f.stat().st_size
                size += n
                digest.update(f"{f.name}\0{n}\n".encode())
        return size, HASH_PREFIX + digest.hexdigest()
    with path.open("rb") as fh:
        size = int(fh.seek(0, 2))
        digest.update(size.to_bytes(8, "little"))
        fh.seek(0)
        if size <= 2 * HASH_BLOCK:
            digest.update(fh.read())
        else:
            digest.update(fh.read(HASH_BLOCK))
            fh.seek(size - HASH_BLOCK)
            digest.update(fh.read(HASH_BLOCK))
    return size, HASH_PREFIX + digest.hexdigest()


def object_fingerprint(url: str, size: int, etag: str) -> Fingerprint:
    """The fingerprint of an object (URL, size, ETag)."""
    return Fingerprint(url, int(size), ETAG_PREFIX + etag.strip('"'))


def fingerprint(path: str | Path) -> Fingerprint:
    """The fingerprint of a source file as it is now."""
    p = Path(path).expanduser().resolve()
    size, digest = quick_hash(p)
    return Fingerprint(str(p), size, digest)


@dataclass
class ResumeDecision:
    """The plan split into what to extract and what is already done."""

    todo: list[VideoItem]
    done: list[VideoItem]
    redo: list[str]  # stored but from a different source: extracted again (overwritten)


def decide(
    items: Iterable[VideoItem],
    stored_sources: Mapping[str, Mapping[str, Any] | None],
    *,
    force: bool = False,
    threads: int = 8,
) -> ResumeDecision:
    """Split ``items`` against ``stored_sources`` (video id -> stored ``source`` attrs).

    Only videos that are stored with the same path and size are hashed (in a thread
    pool), so a fresh run reads nothing and a resume reads 2 MiB per finished video
    (nothing for objects, whose listed ETag is compared).
    """
    items = list(items)
    if force:
        return ResumeDecision(
            todo=items, done=[], redo=[i.video_id for i in items if i.video_id in stored_sources]
        )
    candidates: list[tuple[VideoItem, Fingerprint]] = []
    todo: list[VideoItem] = []
    done: list[VideoItem] = []
    redo: list[str] = []
    for item in items:
        if item.video_id not in stored_sources:
            todo.append(item)
            continue
        old = Fingerprint.from_attrs(stored_sources[item.video_id])
        if isinstance(item.path, str):  # an object: its listing is its fingerprint
            now = (
                object_fingerprint(item.path, item.size, item.etag)
                if item.size is not None and item.etag is not None
                else None
            )
            if now is not None and now == old:
                done.append(item)
            else:
                todo.append(item)
                redo.append(item.video_id)
            continue
        path = str(item.path.expanduser().resolve())
        try:
            size = _size(item.path)
        except OSError:
            size = -1
        if old is None or old.path != path or old.size != size:
            todo.append(item)
            redo.append(item.video_id)
            continue
        candidates.append((item, old))
    if candidates:
        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            hashes = list(pool.map(lambda c: _safe_hash(Path(c[0].path)), candidates))
        for (item, old), now in zip(candidates, hashes, strict=True):
            if now == old.content_hash:
                done.append(item)
            else:
                todo.append(item)
                redo.append(item.video_id)
    order = {item.video_id: i for i, item in enumerate(items)}
    todo.sort(key=lambda it: order[it.video_id])
    return ResumeDecision(todo=todo, done=done, redo=redo)


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.iterdir() if f.is_file())
    return path.stat().st_size


def _safe_hash(path: Path) -> str | None:
    try:
        return quick_hash(path)[1]
    except OSError:
        return None
