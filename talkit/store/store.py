"""FeatureStore: the few verbs users need to keep snippet features like datasets.

    store = FeatureStore.create("feats.store")
    store.create_feature_set("thumos14", "i3d", spec)
    with store.writer(message="extract", metadata={"run": 3}) as w:
        w.write_video("thumos14", "i3d", "video_test_0000004", streams={...})
    fs = store.feature_set("thumos14", "i3d")
    crop = store.video(fs, "video_test_0000004").stream("rgb")[100:850]
    old = FeatureStore.open("feats.store", version="v1")      # a tag, branch or snapshot

A store is an icechunk repository (transactions, history) or, for interoperability, a
plain zarr v3 directory with the same layout (``engine="zarr"``; no history).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Literal

import zarr
from zarr.errors import GroupNotFoundError

from talkit import __version__
from talkit.store.backend import (
    DEFAULT_BRANCH,
    Backend,
    CommitInfo,
    Engine,
    IcechunkBackend,
    ZarrBackend,
    detect_engine,
    local_path,
)
from talkit.store.chunk_cache import CacheStats, ChunkCache
from talkit.store.errors import (
    CommitConflictError,
    FeatureSetNotFoundError,
    StoreError,
    StoreFormatError,
)
from talkit.store.integrity import (
    ATTRS_DIGEST,
    attrs_digest,
    check_attrs,
    corrupt,
    library_error,
    read_error,
    reading,
)
from talkit.store.reader import FeatureSet, ReadContext, VideoFeatures
from talkit.store.spec import (
    FORMAT_VERSION,
    ROOT_KEY,
    FeatureSetSpec,
    StorageOptions,
    check_name,
    split_feature_set,
)
from talkit.store.versions import StoreDiff, diff_roots, feature_set_info, list_feature_sets
from talkit.store.writer import Writer

Mode = Literal["r", "a"]


class FeatureStore:
    """A versioned store of snippet features (see module docstring)."""

    def __init__(
        self,
        backend: Backend,
        version: str | None,
        mode: Mode,
        cache_bytes: int = 0,
        verify: bool = True,
    ) -> None:
        if mode not in ("r", "a"):
            raise StoreError(
                f"unknown mode {mode!r}", hint="use 'r' (read) or 'a' (read and write)"
            )
        if not isinstance(cache_bytes, int) or isinstance(cache_bytes, bool) or cache_bytes < 0:
            raise StoreError(
                f"cache_bytes must be a whole number >= 0, got {cache_bytes!r}",
                hint="use 0 for no chunk cache, or e.g. 2 << 30 for 2 GiB",
            )
        self._chunk_cache = ChunkCache(cache_bytes) if cache_bytes else None
        self._backend = backend
        self.url = backend.url
        self.verify = bool(verify)
        self.mode: Mode = mode
        self.version = version
        self.snapshot_id, self.branch = backend.resolve(version)
        self._root = self._open_root(self.snapshot_id)
        self._sets: dict[str, FeatureSet] = {}

    # -- opening ----------------------------------------------------------------------
    @classmethod
    def create(
        cls, url: str, *, exist_ok: bool = False, engine: Engine = "icechunk"
    ) -> FeatureStore:
        """Create an empty store at ``url``: a local path, or ``s3://bucket/prefix`` (or gs://).

        ``exist_ok`` opens the store if there is one, also one that another process is
        creating at this moment (object storage: two runs may start together).
        """
        local = local_path(url)
        if local is not None and local.exists() and any(local.iterdir()):
            if exist_ok:
                # Another process may be creating a repository here right now: icechunk
                # writes snapshots/ first, then refs/, then the root group's commit, so
                # every step of that is waited for, not only the last.
                creating = (local / "snapshots").is_dir() or (local / "refs").is_dir()
                return cls._open_created(url) if creating else cls.open(url, mode="a")
            raise StoreError(
                f"cannot create store at {url}: the path exists and is not empty",
                hint="open it with FeatureStore.open, or pick a new path",
            )
        if url.startswith("s3://") and not url.removeprefix("s3://").partition("/")[2].strip("/"):
            # icechunk checks that a prefix is empty before creating a repository there, but
            # not a bucket's root; and a failed import deletes the store it created.
            raise StoreError(
                f"cannot create a store at the root of a bucket ({url})",
                hint="give it a prefix of its own, e.g. s3://BUCKET/features",
            )
        if local is None and engine == "icechunk" and IcechunkBackend.exists(url):
            if exist_ok:
                return cls._open_created(url)
            raise StoreError(
                f"cannot create store at {url}: a store already exists there",
                hint="open it with FeatureStore.open, or pick a new prefix",
            )
        attrs: dict[str, Any] = {
            ROOT_KEY: {"format_version": FORMAT_VERSION, "created_by": f"talkit {__version__}"}
        }
        attrs[ATTRS_DIGEST] = attrs_digest("", attrs)
        if engine == "icechunk":
            try:
                backend: Backend = IcechunkBackend.create(url)
            except StoreError:
                # Another process may have created it a moment ago (two runs starting
                # together on one new store, local or on object storage).
                if exist_ok and _appears(url):
                    return cls._open_created(url)
                raise
            txn = backend.begin(DEFAULT_BRANCH)
            zarr.open_group(store=txn.session.store, mode="w", attributes=attrs)
            txn.commit("create talkit store", {"talkit": {"format_version": FORMAT_VERSION}})
        elif engine == "zarr":
            backend = ZarrBackend.create(url)
            backend.path.mkdir(parents=True, exist_ok=True)
            zarr.open_group(store=str(backend.path), mode="w", attributes=attrs, zarr_format=3)
        else:
            raise StoreError(f"unknown engine {engine!r}", hint="use 'icechunk' or 'zarr'")
        return cls(backend, None, "a")

    @classmethod
    def open(
        cls,
        url: str,
        version: str | None = None,
        *,
        mode: Mode = "r",
        cache_bytes: int = 0,
        verify: bool = True,
    ) -> FeatureStore:
        """Open a store at a version (branch, tag or snapshot id; default: branch main).

        Every read is checked against the checksums and hashes written with the data, and
        damage raises :class:`~talkit.store.errors.CorruptDataError` instead of returning
        values (docs/store.md, "What every read checks"). ``verify=False`` skips the
        checksum and hash arithmetic, to measure what it costs (up to about a tenth of
        a random crop's time): missing or undecodable chunks are still errors.

        ``cache_bytes``: keep up to this many bytes of compressed chunks in memory, for
        this open store only (least recently used dropped first). Fetching a chunk from a
        local icechunk store costs nearly as much CPU as decoding it, so a training loop
        that crops the same features every epoch reads them 2-3x faster from a cache that
        holds them: about as many bytes as the feature arrays on disk (``info``). Off by
        default: unlike the page cache that serves ``.npy`` files, it is per process
        (per DataLoader worker) and the OS cannot reclaim it. Arrays in layouts the lean
        read path does not decode (:mod:`talkit.store.fastread`) are not cached.
        """
        engine = detect_engine(str(url))
        backend: Backend = (
            IcechunkBackend.open(str(url)) if engine == "icechunk" else ZarrBackend.open(str(url))
        )
        return cls(backend, version, mode, cache_bytes=cache_bytes, verify=verify)

    @classmethod
    def _open_created(cls, url: str, wait_s: float = 30.0) -> FeatureStore:
        """Open a store that another process is creating: its root commit may be a moment away."""
        deadline = time.monotonic() + wait_s
        while True:
            try:
                return cls.open(url, mode="a")
            except StoreFormatError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    @staticmethod
    def exists(url: str) -> bool:
        """Whether a store (icechunk or plain zarr) is at ``url``."""
        try:
            detect_engine(str(url))
        except StoreFormatError:
            return False
        return True

    def _open_root(self, snapshot_id: str) -> zarr.Group:
        try:
            root = self._backend.read_root(snapshot_id)
            attrs = dict(root.attrs)
        except (GroupNotFoundError, FileNotFoundError) as exc:
            # icechunk answers "no such key" when it cannot read the snapshot at all.
            self._backend.check_snapshot(snapshot_id, self._label())
            raise StoreFormatError(
                f"{self.url} has no zarr root group, so it is not a talkit feature store",
                hint="create stores with FeatureStore.create or `talkit store import`",
            ) from exc
        except BaseException as exc:  # a root group whose metadata does not parse
            if not library_error(exc):
                raise
            raise read_error(self.url, "", exc) from exc
        check_attrs(self.url, "", attrs, verify=self.verify)
        meta = attrs.get(ROOT_KEY)
        if ATTRS_DIGEST in attrs and not isinstance(meta, Mapping):
            raise corrupt(self.url, "", f"its root attrs lack '{ROOT_KEY}'")
        if not isinstance(meta, Mapping) or "format_version" not in meta:
            raise StoreFormatError(
                f"{self.url} is a zarr store but not a talkit feature store "
                f"(its root attrs lack '{ROOT_KEY}')",
                hint="import it with `talkit store import SRC STORE --format zarr`",
            )
        found = meta["format_version"]
        if not isinstance(found, int) or found > FORMAT_VERSION or found < 1:
            raise StoreFormatError(
                f"store {self.url} has format version {found!r}; this talkit "
                f"({__version__}) reads format versions 1..{FORMAT_VERSION}",
                hint="upgrade talkit to read it",
            )
        return root

    def refresh(self) -> None:
        """Re-read the branch tip (after another writer committed)."""
        if self.branch is not None or self._backend.kind == "zarr":
            self.snapshot_id, self.branch = self._backend.resolve(self.version)
            self._root = self._open_root(self.snapshot_id)
            self._sets.clear()
            if self._chunk_cache is not None:  # handles opened before keep the old one
                self._chunk_cache.clear()
                self._chunk_cache = ChunkCache(self._chunk_cache.max_bytes)

    @property
    def engine(self) -> Engine:
        return self._backend.kind

    def cache_stats(self) -> CacheStats | None:
        """Hits, misses and bytes held by the chunk cache (None when opened without one)."""
        return None if self._chunk_cache is None else self._chunk_cache.stats()

    @property
    def format_version(self) -> int:
        return int(self._root.attrs[ROOT_KEY]["format_version"])

    # -- reading ----------------------------------------------------------------------
    def _context(self) -> ReadContext:
        return ReadContext(url=self.url, verify=self.verify, cache=self._chunk_cache)

    def feature_sets(self) -> list[str]:
        """``dataset/feature_set`` keys in this version."""
        return sorted(list_feature_sets(self._root, self._context()))

    def feature_set(self, dataset: str, name: str | None = None) -> FeatureSet:
        """A feature set by ``(dataset, name)`` or by ``"dataset/name"``."""
        if name is None:
            dataset, name = split_feature_set(dataset)
        key = f"{dataset}/{name}"
        if key not in self._sets:
            with reading(self.url, key):
                try:
                    group = self._root[key]
                except KeyError:
                    group = None
            if not isinstance(group, zarr.Group):
                have = ", ".join(self.feature_sets()) or "none"
                raise FeatureSetNotFoundError(
                    f"feature set {key} not found in {self.url} at {self._label()}",
                    hint=f"feature sets here: {have}",
                )
            self._sets[key] = FeatureSet(group, dataset, name, self._context())
        return self._sets[key]

    def video(self, feature_set: FeatureSet | str, video_id: str) -> VideoFeatures:
        """One video's features; ``feature_set`` is a FeatureSet or ``"dataset/name"``."""
        fs = feature_set if isinstance(feature_set, FeatureSet) else self.feature_set(feature_set)
        return fs.video(video_id)

    def _label(self) -> str:
        return self.version or (self.branch or "") or self.snapshot_id or "HEAD"

    # -- writing ----------------------------------------------------------------------
    def _check_writable(self) -> str:
        if self.mode != "a":
            raise StoreError(
                f"store {self.url} was opened read-only",
                hint="open it with mode='a' to write",
            )
        if self._backend.kind == "icechunk" and self.branch is None:
            raise StoreError(
                f"store {self.url} is open at the fixed version {self.version!r}; "
                "only a branch can be written",
                hint="open it without version (branch main) to write",
            )
        return self.branch or DEFAULT_BRANCH

    def writer(
        self, message: str = "write features", metadata: Mapping[str, Any] | None = None
    ) -> Writer:
        """A transaction on this store's branch; use it as a context manager."""
        branch = self._check_writable()
        return Writer(
            self._backend.begin(branch), message=message, metadata=metadata, on_commit=self.refresh
        )

    def create_feature_set(
        self,
        dataset: str,
        name: str,
        spec: FeatureSetSpec,
        *,
        storage: StorageOptions | None = None,
        exist_ok: bool = False,
    ) -> FeatureSet:
        """Create ``dataset/name`` with its spec (its own commit) and return it."""
        check_name(dataset, "dataset")
        check_name(name, "feature set")
        try:
            with self.writer(
                message=f"create feature set {dataset}/{name}",
                metadata={"spec": spec.to_attrs()},
            ) as w:
                w.create_feature_set(dataset, name, spec, storage=storage, exist_ok=exist_ok)
        except CommitConflictError:
            # A concurrent writer created it first; fine if it is the same feature set.
            self.refresh()
            key = f"{dataset}/{name}"
            if not (exist_ok and key in self.feature_sets()):
                raise
            if self.feature_set(dataset, name).spec != spec:
                raise
        self.refresh()
        return self.feature_set(dataset, name)

    # -- versions ---------------------------------------------------------------------
    def log(self, version: str | None = None) -> list[CommitInfo]:
        """History leading to ``version`` (default: this store's version), newest first."""
        snapshot = self._backend.resolve(version)[0] if version else self.snapshot_id
        return self._backend.log(snapshot)

    def tag(self, name: str, version: str | None = None) -> str:
        """Tag a version (default: this store's version); returns the snapshot id."""
        check_name(name, "tag")
        snapshot = self._backend.resolve(version)[0] if version else self.snapshot_id
        self._backend.tag(name, snapshot)
        return snapshot

    def tags(self) -> dict[str, str]:
        """Tag name -> snapshot id."""
        return self._backend.tags()

    def resolve(self, version: str | None) -> str:
        """Snapshot id of a branch, tag or snapshot id."""
        return self._backend.resolve(version)[0]

    def diff(self, a: str, b: str | None = None) -> StoreDiff:
        """Feature sets and videos added, removed or changed from version ``a`` to ``b``."""
        root_a = self._open_root(self._backend.resolve(a)[0])
        root_b = self._open_root(self._backend.resolve(b)[0]) if b else self._root
        return diff_roots(root_a, root_b, a, b or self._label())

    def info(self, version: str | None = None) -> dict[str, Any]:
        """Feature sets with video counts, dims, dtype, chunking, codecs, bytes, ratio."""
        if version is None:
            root, snapshot = self._root, self.snapshot_id
        else:
            snapshot = self._backend.resolve(version)[0]
            root = self._open_root(snapshot)
        sets = list_feature_sets(root, self._context())
        return {
            "url": self.url,
            "engine": self.engine,
            "format_version": int(root.attrs[ROOT_KEY]["format_version"]),
            "version": version or self.version or self.branch,
            "snapshot_id": snapshot or None,
            "bytes_on_disk": self._backend.bytes_on_disk(),
            "feature_sets": {key: feature_set_info(fs) for key, fs in sets.items()},
        }

    def __repr__(self) -> str:
        return f"FeatureStore({self.url!r}, engine={self.engine}, version={self._label()})"


def _appears(url: str, wait_s: float = 5.0) -> bool:
    """Whether a repository shows up at ``url`` within ``wait_s`` (another process's create)."""
    deadline = time.monotonic() + wait_s
    while not IcechunkBackend.exists(url):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True
