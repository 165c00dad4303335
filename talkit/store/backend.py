"""Storage engines behind a FeatureStore: an icechunk repository or a plain zarr v3 directory.

Both hand out zarr groups, so reading and writing code is shared. icechunk adds what a
plain directory cannot give: transactions (a video appears only with its commit), many
writers merged into one commit, and history (log, tags, diff, time travel). A plain zarr
directory is there for interoperability with tools that know only zarr; it has no
history, and its per-video atomicity rests on the ``status`` attr written last.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import gc
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import icechunk
import zarr
from zarr.storage import LocalStore

from talkit.store.errors import (
    CommitConflictError,
    StoreError,
    StoreFormatError,
    VersionNotFoundError,
)

icechunk.set_logs_filter("error")  # its local-storage concurrency warning is handled by our lock
# icechunk objects held in reference cycles are otherwise freed in the interpreter's final
# teardown, after its native runtime may be gone: processes that wrote a store concurrently
# then aborted at exit now and then (SIGABRT, after their commit had landed; ~5% of spawned
# writers here, none in 180 with this collection while the interpreter is still whole).
atexit.register(gc.collect)

Engine = Literal["icechunk", "zarr"]
_SNAPSHOT_RE = re.compile(r"^[0-9A-Z]{20}$")
_LOCK_NAME = ".talkit-commit.lock"
DEFAULT_BRANCH = "main"


@dataclass(frozen=True)
class CommitInfo:
    """One entry of a store's history."""

    id: str
    parent_id: str | None
    message: str
    metadata: dict[str, Any]
    written_at: datetime
    tags: list[str] = field(default_factory=list)
    branches: list[str] = field(default_factory=list)


def local_path(url: str) -> Path | None:
    """The local directory a URL names (None for object storage)."""
    if url.startswith("file://"):
        return Path(url.removeprefix("file://")).expanduser().resolve()
    if "://" in url:
        return None
    return Path(url).expanduser().resolve()


def _icechunk_storage(url: str) -> icechunk.Storage:
    local = local_path(url)
    if local is not None:
        return icechunk.local_filesystem_storage(str(local))
    scheme, _, rest = url.partition("://")
    bucket, _, prefix = rest.partition("/")
    if scheme == "s3":
        from talkit import s3

        cfg = s3.resolve_config()
        region = s3.check_bucket(url, StoreError)  # one clear line, not a 30 s retry loop
        return icechunk.s3_storage(
            bucket=bucket,
            prefix=prefix.strip("/") or None,
            from_env=True,
            endpoint_url=cfg.endpoint_url,
            region=region,
            allow_http=bool(cfg.endpoint_url and cfg.endpoint_url.startswith("http://")),
            force_path_style=cfg.addressing_style == "path",
        )
    if scheme in ("gs", "gcs"):
        return icechunk.gcs_storage(bucket=bucket, prefix=prefix or None, from_env=True)
    raise StoreError(
        f"unsupported store URL {url!r}",
        hint="use a local path, file://, s3://bucket/prefix or gs://bucket/prefix",
    )


def remove_store(url: str) -> None:
    """Delete a store that this process has just created (for an operation that failed)."""
    local = local_path(url)
    if local is not None:
        shutil.rmtree(local, ignore_errors=True)
    elif url.startswith("s3://"):
        from talkit import s3

        with contextlib.suppress(*s3.errors()):
            s3.delete_prefix(url)


def detect_engine(url: str) -> Engine:
    """Which engine holds the store at ``url`` (raises if there is none)."""
    local = local_path(url)
    if local is not None:
        if (local / "refs").is_dir() and (local / "snapshots").is_dir():
            return "icechunk"
        if (local / "zarr.json").is_file():
            return "zarr"
        what = "does not exist" if not local.exists() else "is neither a talkit store nor zarr"
        raise StoreFormatError(
            f"cannot open store {url}: the path {what}",
            hint="create one with FeatureStore.create(path) or `talkit store import`",
        )
    if not IcechunkBackend.exists(url):
        raise StoreFormatError(
            f"no talkit store at {url}",
            hint="check the URL; `talkit extract` and `talkit store import` create stores",
        )
    return "icechunk"


def _first_line(exc: BaseException) -> str:
    """The one line of an icechunk error worth showing: its root cause when it has one.

    icechunk errors are Rust reports: a summary ("error getting object from object store
    service error"), a span trace, then the chain of causes (``|->``, last ```->``), whose
    last entry says what happened ("NoSuchBucket: The specified bucket does not exist").
    """
    lines = [ln.strip() for ln in str(exc).strip().splitlines()]
    causes = [ln.lstrip("|`").strip().removeprefix("->").strip() for ln in lines]
    causes = [c for ln, c in zip(lines, causes, strict=True) if ln.startswith(("|->", "`->")) and c]
    if causes:
        return causes[-1]
    for line in lines:
        line = line.strip(" x|`->")
        if line:
            return line
    return type(exc).__name__


class IcechunkBackend:
    """An icechunk repository: sessions, commits, branches, tags."""

    kind: Engine = "icechunk"

    def __init__(self, url: str, repo: icechunk.Repository) -> None:
        self.url = url
        self.repo = repo
        self._local = local_path(url)

    @classmethod
    def create(cls, url: str) -> IcechunkBackend:
        try:
            repo = icechunk.Repository.create(_icechunk_storage(url))
        except icechunk.IcechunkError as exc:
            raise StoreError(
                f"cannot create store at {url}: {_first_line(exc)}",
                hint="a new store needs an empty folder or prefix; pick a new one",
            ) from exc
        return cls(url, repo)

    @staticmethod
    def exists(url: str) -> bool:
        """Whether an icechunk repository is at ``url``."""
        try:
            return bool(icechunk.Repository.exists(_icechunk_storage(url)))
        except icechunk.IcechunkError as exc:
            raise StoreError(f"cannot reach store {url}: {_first_line(exc)}") from exc

    @classmethod
    def open(cls, url: str) -> IcechunkBackend:
        try:
            repo = icechunk.Repository.open(_icechunk_storage(url))
        except icechunk.IcechunkError as exc:
            raise StoreFormatError(f"cannot open store {url}: {_first_line(exc)}") from exc
        return cls(url, repo)

    # -- versions -------------------------------------------------------------------
    def resolve(self, version: str | None) -> tuple[str, str | None]:
        """Snapshot id for a branch, tag or snapshot id; and the branch name if it is one."""
        name = DEFAULT_BRANCH if version is None else version
        branches = self.repo.list_branches()
        if name in branches:
            return self.repo.lookup_branch(name), name
        tags = self.repo.list_tags()
        if name in tags:
            return self.repo.lookup_tag(name), None
        if _SNAPSHOT_RE.match(name):
            try:
                self.repo.lookup_snapshot(name)
                return name, None
            except icechunk.IcechunkError:
                pass
        raise VersionNotFoundError(
            f"version {name!r} not found in store {self.url}: it is no branch "
            f"({', '.join(sorted(branches)) or 'none'}), tag "
            f"({', '.join(sorted(tags)) or 'none'}) or snapshot id",
            hint="`talkit store log STORE` lists the snapshots",
        )

    def read_root(self, snapshot_id: str) -> zarr.Group:
        session = self.repo.readonly_session(snapshot_id=snapshot_id)
        return zarr.open_group(store=session.store, mode="r")

    def log(self, snapshot_id: str) -> list[CommitInfo]:
        tags: dict[str, list[str]] = {}
        for tag in self.repo.list_tags():
            tags.setdefault(self.repo.lookup_tag(tag), []).append(tag)
        branches: dict[str, list[str]] = {}
        for branch in self.repo.list_branches():
            branches.setdefault(self.repo.lookup_branch(branch), []).append(branch)
        return [
            CommitInfo(
                id=info.id,
                parent_id=info.parent_id,
                message=info.message,
                metadata=dict(info.metadata),
                written_at=info.written_at,
                tags=sorted(tags.get(info.id, [])),
                branches=sorted(branches.get(info.id, [])),
            )
            for info in self.repo.ancestry(snapshot_id=snapshot_id)
        ]

    def tag(self, name: str, snapshot_id: str) -> None:
        if name in self.repo.list_tags():
            raise StoreError(
                f"tag {name!r} already exists in {self.url}",
                hint="tags never move; pick a new name",
            )
        try:
            self.repo.create_tag(name, snapshot_id)
        except icechunk.IcechunkError as exc:
            raise StoreError(f"cannot create tag {name!r}: {_first_line(exc)}") from exc

    def tags(self) -> dict[str, str]:
        return {t: self.repo.lookup_tag(t) for t in sorted(self.repo.list_tags())}

    def bytes_on_disk(self) -> int:
        """Bytes of every object of the repository (all versions), as stored."""
        if self._local is not None:
            return sum(p.stat().st_size for p in self._local.rglob("*") if p.is_file())
        if self.url.startswith("s3://"):
            from talkit import s3

            try:
                return sum(size for _key, size, _etag in s3.list_objects(self.url))
            except s3.errors() as exc:
                raise s3.raise_as(StoreError, exc, self.url) from exc
        return int(self.repo.chunk_storage_stats().native_bytes)

    # -- writing --------------------------------------------------------------------
    def begin(self, branch: str) -> IcechunkTxn:
        return IcechunkTxn(self, self.repo.writable_session(branch))

    @contextlib.contextmanager
    def commit_lock(self) -> Iterator[None]:
        """Serialise commits of processes on one machine (local storage has no atomic ref swap).

        Object storage needs no lock: icechunk updates the branch ref with a conditional
        write (If-Match / If-None-Match), so of two racing commits one fails and rebases
        onto the other (``commit`` passes ``rebase_with``); writers on any machine are safe.
        """
        if self._local is None:
            yield
            return
        with (self._local / _LOCK_NAME).open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


# Rebase a commit over a concurrent one only where they touched different nodes. icechunk's
# default solver also "resolves" two overwrites of one video (each deleted and re-created
# its group): the commit lands, and the video ends up with one writer's rgb and the other's
# flow and attrs. Any overlap fails instead, and the caller decides again.
_SOLVER = icechunk.BasicConflictSolver(
    on_chunk_conflict=icechunk.VersionSelection.Fail,
    fail_on_delete_of_updated_array=True,
    fail_on_delete_of_updated_group=True,
)


class IcechunkTxn:
    """A writable icechunk session: all writes become visible together at commit."""

    def __init__(self, backend: IcechunkBackend, session: icechunk.Session) -> None:
        self.backend = backend
        self.session = session
        self._root: zarr.Group | None = None

    @property
    def root(self) -> zarr.Group:
        """The writable root group (opened on first use: a new store has none yet)."""
        if self._root is None:
            self._root = zarr.open_group(store=self.session.store, mode="r+")
        return self._root

    def fork(self) -> Any:
        return self.session.fork()

    @staticmethod
    def fork_root(fork: Any) -> zarr.Group:
        return zarr.open_group(store=fork.store, mode="r+")

    def merge(self, forks: list[Any]) -> None:
        try:
            self.session.merge(*forks)
        except icechunk.IcechunkError as exc:
            raise StoreError(f"cannot merge worker sessions: {_first_line(exc)}") from exc

    def has_changes(self) -> bool:
        return bool(self.session.has_uncommitted_changes)

    def commit(self, message: str, metadata: dict[str, Any]) -> str:
        with self.backend.commit_lock():
            try:
                return self.session.commit(message, metadata=metadata, rebase_with=_SOLVER)
            except (icechunk.ConflictError, icechunk.RebaseFailedError) as exc:
                raise CommitConflictError(
                    f"commit to {self.backend.url} conflicts with a concurrent writer: "
                    f"{_first_line(exc)}",
                    hint="two writers changed the same video; re-run one of them",
                ) from exc
            except icechunk.IcechunkError as exc:  # storage: network, permissions, disk
                raise StoreError(
                    f"cannot commit to {self.backend.url}: {_first_line(exc)}",
                    hint="nothing of this commit is visible; fix the storage and re-run",
                ) from exc

    def abort(self) -> None:
        with contextlib.suppress(icechunk.IcechunkError):
            self.session.discard_changes()


class ZarrBackend:
    """A plain zarr v3 directory: no history; videos become visible by their status attr."""

    kind: Engine = "zarr"

    def __init__(self, url: str) -> None:
        local = local_path(url)
        if local is None:
            raise StoreError(
                f"plain zarr stores must be local directories, got {url!r}",
                hint="use an icechunk store for object storage",
            )
        self.url = url
        self.path = local

    @classmethod
    def create(cls, url: str) -> ZarrBackend:
        return cls(url)

    open = create

    def resolve(self, version: str | None) -> tuple[str, str | None]:
        if version is not None:
            raise VersionNotFoundError(
                f"store {self.url} is a plain zarr directory and has no versions "
                f"(asked for {version!r})",
                hint="import it into an icechunk store to get history",
            )
        return "", None

    def read_root(self, snapshot_id: str) -> zarr.Group:
        return zarr.open_group(store=LocalStore(self.path, read_only=True), mode="r")

    def _no_history(self, what: str) -> StoreError:
        return StoreError(
            f"store {self.url} is a plain zarr directory: it has no {what}",
            hint="use an icechunk store (FeatureStore.create) for versions",
        )

    def log(self, snapshot_id: str) -> list[CommitInfo]:
        raise self._no_history("history")

    def tag(self, name: str, snapshot_id: str) -> None:
        raise self._no_history("tags")

    def tags(self) -> dict[str, str]:
        return {}

    def bytes_on_disk(self) -> int:
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())

    def begin(self, branch: str) -> ZarrTxn:
        return ZarrTxn(self)


class ZarrTxn:
    """Direct writes to a zarr directory; 'commit' is a no-op."""

    def __init__(self, backend: ZarrBackend) -> None:
        self.backend = backend
        self.root = zarr.open_group(store=LocalStore(backend.path), mode="r+")
        self._changed = False

    def fork(self) -> Any:
        return str(self.backend.path)

    @staticmethod
    def fork_root(fork: Any) -> zarr.Group:
        return zarr.open_group(store=LocalStore(fork), mode="r+")

    def merge(self, forks: list[Any]) -> None:
        self._changed = self._changed or bool(forks)

    def has_changes(self) -> bool:
        return self._changed

    def mark_changed(self) -> None:
        self._changed = True

    def commit(self, message: str, metadata: dict[str, Any]) -> str | None:
        return None

    def abort(self) -> None:
        return None


Backend = IcechunkBackend | ZarrBackend
Txn = IcechunkTxn | ZarrTxn
