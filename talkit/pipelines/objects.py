"""Videos in object storage: listing them, and spooling one at a time for a worker.

``talkit extract --videos s3://bucket/prefix/`` extracts every video object under the
prefix (by extension, as for a local folder; the id is the file stem of the key), and a
text list may name ``s3://`` URLs among its lines. Planning lists (or, for a list, HEADs)
the objects once, so each item carries the object's size and ETag: resume compares those
with what the store recorded and reads nothing.

A worker copies one object to a local spool file, decodes it like any local file, and
deletes the file when the video is done, failed or not (:func:`spooled`). A spool
directory left by a worker that was killed is removed by the next worker that starts on
that machine. Spool files go to ``$TALKIT_SPOOL_DIR`` or the system temp dir; each worker
needs room there for the largest video it gets. FFmpeg seeks freely inside containers
(an MP4 whose index sits at the end is read from both ends), so decoding from a local copy
is both simpler and faster than decoding from a stream of range requests.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Any

from talkit import s3
from talkit.errors import InputError, WorkFailedError

SPOOL_ENV = "TALKIT_SPOOL_DIR"
_SPOOL_PREFIX = "talkit-spool-"
_SPOOL_RE = re.compile(rf"^{_SPOOL_PREFIX}(\d+)-")


class ObjectReadError(WorkFailedError):
    """A video object could not be read from object storage (recorded per video)."""


def object_stem(url: str) -> str:
    """The video id an object gets: its key's file name without the extension."""
    return PurePosixPath(s3.split_url(url)[1]).stem


def object_suffix(url: str) -> str:
    return PurePosixPath(s3.split_url(url)[1]).suffix.lower()


def list_video_objects(url: str, extensions: Iterable[str]) -> list[tuple[str, int, str]]:
    """(url, size, etag) of the video objects under prefix ``url``, sorted by key.

    Keys whose file name or any folder starts with ``.`` are skipped, as in a local scan.
    """
    wanted = frozenset(extensions)
    bucket, _ = s3.split_url(url)
    s3.check_bucket(url)
    found: list[tuple[str, int, str]] = []
    try:
        for key, size, etag in s3.list_objects(url):
            parts = PurePosixPath(key).parts
            if any(p.startswith(".") for p in parts):
                continue
            if PurePosixPath(key).suffix.lower() in wanted:
                found.append((s3.join_url(bucket, key), size, etag))
    except s3.errors() as exc:
        raise s3.raise_as(InputError, exc, url) from exc
    return found


def head_objects(urls: list[str], threads: int = 16) -> dict[str, tuple[int, str] | None]:
    """(size, etag) of each object URL, None where there is no such object."""
    import botocore.exceptions as bx

    for bucket in sorted({s3.split_url(u)[0] for u in urls}):
        s3.check_bucket(s3.join_url(bucket, ""))

    def one(url: str) -> tuple[int, str] | None:
        try:
            return s3.head_object(url)
        except bx.ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return None
            raise s3.raise_as(InputError, exc, url) from exc
        except bx.BotoCoreError as exc:
            raise s3.raise_as(InputError, exc, url) from exc

    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(urls)))) as pool:
        return dict(zip(urls, pool.map(one, urls), strict=True))


def spool_root() -> Path:
    """Where spool directories go: ``$TALKIT_SPOOL_DIR`` or the system temp dir."""
    return Path(os.environ.get(SPOOL_ENV) or tempfile.gettempdir())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def clean_stale_spools(root: Path | None = None) -> int:
    """Remove spool directories of processes that no longer run (killed workers)."""
    root = root or spool_root()
    removed = 0
    with contextlib.suppress(OSError):
        for entry in root.iterdir():
            match = _SPOOL_RE.match(entry.name)
            if match and entry.is_dir() and not _alive(int(match.group(1))):
                shutil.rmtree(entry, ignore_errors=True)
                removed += 1
    return removed


@contextlib.contextmanager
def spooled(url: str) -> Iterator[tuple[Path, int, str]]:
    """A local copy of the object at ``url``: (path, size, etag), deleted on exit.

    The size and ETag describe the bytes copied (the download is conditional on the ETag
    read first), so the fingerprint recorded for the features is that of their input.
    """
    root = spool_root()
    root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f"{_SPOOL_PREFIX}{os.getpid()}-", dir=root))
    try:
        target = folder / f"video{object_suffix(url)[:16]}"
        try:
            size, etag = s3.download(url, target)
        except s3.errors() as exc:
            message, hint = s3.explain(exc, url)
            raise ObjectReadError(f"cannot read video {url}: {message}", hint=hint) from exc
        except OSError as exc:
            raise ObjectReadError(
                f"cannot spool video {url} to {root}: {exc}",
                hint=f"set {SPOOL_ENV} to a folder with room for the largest video",
            ) from exc
        yield target, size, etag
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def relabel(value: Any, local: str, url: str) -> Any:
    """``value`` with every mention of the spool path replaced by the object's URL.

    Decoders name the file they read in attrs (damage reports) and messages; those must
    name the object, and stay the same from one run to the next.
    """
    if isinstance(value, str):
        return value.replace(local, url)
    if isinstance(value, dict):
        return {k: relabel(v, local, url) for k, v in value.items()}
    if isinstance(value, list):
        return [relabel(v, local, url) for v in value]
    if isinstance(value, tuple):
        return tuple(relabel(v, local, url) for v in value)
    return value
