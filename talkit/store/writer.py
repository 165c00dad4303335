"""Writing videos: one transaction (one commit) per writer, forks for many processes.

A ``Writer`` wraps one writable session. Videos written through it are invisible until
the writer commits at the end of its ``with`` block; an exception (or a killed process)
discards them all. For several processes, the parent ``fork()``s the writer, sends the
picklable ``ForkWriter``s to workers, gets them back, ``merge()``s them and commits once::

    with store.writer(message="extract thumos14 i3d") as w:
        forks = [w.fork() for _ in range(n_workers)]
        done = pool.map(work, forks)          # each worker: fork.write_video(...); return fork
        w.merge(*done)
"""

from __future__ import annotations

import getpass
import hashlib
import json
import socket
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import zarr

from talkit import __version__
from talkit.store.codecs import array_codecs, quiet_codec_warnings, timestamps_codecs
from talkit.store.errors import (
    FeatureSetNotFoundError,
    StoreError,
    VideoExistsError,
    VideoNotFoundError,
)
from talkit.store.integrity import ATTRS_DIGEST, attrs_digest
from talkit.store.spec import (
    STATUS_COMPLETE,
    STATUS_WRITING,
    TIMESTAMPS,
    FeatureSetSpec,
    StorageOptions,
    check_name,
)
from talkit.store.validate import PreparedVideo, prepare_video, to_jsonable

if TYPE_CHECKING:
    from talkit.store.backend import Txn


class _VideoSink:
    """Shared by Writer and ForkWriter: validate, then write into a writable root group."""

    _kind: str
    _written: list[str]
    _specs: dict[str, tuple[FeatureSetSpec, StorageOptions]]

    def _root(self) -> zarr.Group:  # pragma: no cover - overridden
        raise NotImplementedError

    def _feature_set(self, dataset: str, feature_set: str) -> tuple[FeatureSetSpec, StorageOptions]:
        key = f"{dataset}/{feature_set}"
        if key not in self._specs:
            try:
                group = self._root()[key]
            except KeyError:
                group = None
            if not isinstance(group, zarr.Group) or "spec" not in group.attrs:
                raise FeatureSetNotFoundError(
                    f"feature set {key} does not exist in this store",
                    hint="create it first with store.create_feature_set(dataset, name, spec)",
                )
            spec = FeatureSetSpec.from_attrs(group.attrs["spec"], where=key)
            storage = StorageOptions.from_attrs(group.attrs.get("storage", {}))
            self._specs[key] = (spec, storage)
        return self._specs[key]

    def write_video(
        self,
        dataset: str,
        feature_set: str,
        video_id: str,
        *,
        streams: Mapping[str, Any],
        timestamps: Any = None,
        attrs: Mapping[str, Any] | None = None,
        overwrite: bool = False,
        allow_nonfinite: bool = False,
    ) -> None:
        """Validate and write one video's streams, timestamps and attrs.

        ``streams`` maps every stream of the spec to a (T, D) array; ``timestamps`` is
        (T, 2) seconds, derived from the spec's fps/clip_len/stride when omitted.
        Nothing is written if any check fails. Writing an existing video needs
        ``overwrite=True``.
        """
        key = f"{dataset}/{feature_set}"
        spec, storage = self._feature_set(dataset, feature_set)
        prepared = prepare_video(
            spec, key, video_id, streams, timestamps, attrs, allow_nonfinite=allow_nonfinite
        )
        fs_group = self._root()[key]
        assert isinstance(fs_group, zarr.Group)
        _replace_check(fs_group, key, video_id, overwrite)
        _write_prepared(fs_group, key, storage, prepared)
        self._written.append(f"{key}/{video_id}")
        self._after_write()

    def delete_video(self, dataset: str, feature_set: str, video_id: str) -> None:
        """Remove a video (recorded in this writer's commit)."""
        key = f"{dataset}/{feature_set}"
        self._feature_set(dataset, feature_set)
        fs_group = self._root()[key]
        assert isinstance(fs_group, zarr.Group)
        if video_id not in fs_group:
            raise VideoNotFoundError(f"cannot delete video {video_id!r}: not in {key}")
        del fs_group[video_id]
        self._written.append(f"{key}/{video_id}")
        self._after_write()

    def _after_write(self) -> None:
        return None

    @property
    def written(self) -> list[str]:
        """``dataset/feature_set/video`` keys written or deleted so far."""
        return list(self._written)


def _replace_check(fs_group: zarr.Group, key: str, video_id: str, overwrite: bool) -> None:
    if video_id not in fs_group:
        return
    existing = fs_group[video_id]
    complete = isinstance(existing, zarr.Group) and existing.attrs.get("status") == STATUS_COMPLETE
    if complete and not overwrite:
        raise VideoExistsError(
            f"video {video_id!r} already exists in {key}",
            hint="pass overwrite=True, or --overwrite on the command line, to replace it",
        )
    del fs_group[video_id]


def _chunking(storage: StorageOptions, shape: tuple[int, ...]) -> dict[str, Any]:
    """``chunks`` (and ``shards``) for one (T, D) array; tiny videos get one short chunk."""
    chunks, shards = storage.chunking(int(shape[0]), int(shape[1]))
    return {"chunks": chunks} if shards is None else {"chunks": chunks, "shards": shards}


def _write_prepared(
    fs_group: zarr.Group, key: str, storage: StorageOptions, video: PreparedVideo
) -> None:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    attrs = {**video.attrs, "status": STATUS_WRITING, "written_at": now}
    group = fs_group.create_group(video.video_id, attributes=attrs)
    for name, data in video.streams.items():
        with quiet_codec_warnings():
            group.create_array(
                name,
                data=data,
                **_chunking(storage, data.shape),
                dimension_names=("snippet", "dim"),
                **array_codecs(storage, data.dtype),
            )
    group.create_array(
        TIMESTAMPS,
        data=video.timestamps,
        chunks=video.timestamps.shape,
        dimension_names=("snippet", "bound"),
        **timestamps_codecs(),
    )
    # Written last: a plain zarr reader sees the video only once this attr says so. The
    # digest covers the final attrs and the video's path (talkit.store.integrity).
    attrs["status"] = STATUS_COMPLETE
    digest = attrs_digest(f"{key}/{video.video_id}", attrs)
    group.attrs.update({"status": STATUS_COMPLETE, ATTRS_DIGEST: digest})


def spec_digest(spec: FeatureSetSpec) -> str:
    """Short stable hash of a spec, recorded in commit metadata."""
    return hashlib.sha256(json.dumps(spec.to_attrs(), sort_keys=True).encode()).hexdigest()[:16]


class ForkWriter(_VideoSink):
    """A picklable piece of a Writer for another process; send it back to be merged."""

    def __init__(self, kind: str, fork: Any, specs: dict[str, Any], fork_root: Any) -> None:
        self._kind = kind
        self._fork = fork
        self._specs = dict(specs)
        self._written = []
        self._fork_root = fork_root
        self._group: zarr.Group | None = None

    def _root(self) -> zarr.Group:
        if self._group is None:
            self._group = self._fork_root(self._fork)
        return self._group

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_group"] = None
        return state


class Writer(_VideoSink):
    """One transaction on a store branch; commits once when its ``with`` block ends."""

    def __init__(
        self,
        txn: Txn,
        *,
        message: str,
        metadata: Mapping[str, Any] | None = None,
        on_commit: Any = None,
    ) -> None:
        self._txn = txn
        self._kind = txn.backend.kind
        self._message = message
        self._metadata = to_jsonable(dict(metadata or {}))
        self._written = []
        self._specs = {}
        self._closed = False
        self._on_commit = on_commit
        self.snapshot_id: str | None = None

    def _root(self) -> zarr.Group:
        self._check_open()
        return self._txn.root

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("this writer is closed (it already committed or was aborted)")

    def _after_write(self) -> None:
        if hasattr(self._txn, "mark_changed"):
            self._txn.mark_changed()

    def create_feature_set(
        self,
        dataset: str,
        name: str,
        spec: FeatureSetSpec,
        *,
        storage: StorageOptions | None = None,
        exist_ok: bool = False,
    ) -> None:
        """Create ``dataset/name`` with its spec inside this transaction."""
        key = f"{check_name(dataset, 'dataset')}/{check_name(name, 'feature set')}"
        storage = storage or StorageOptions()
        if self._kind == "zarr" and storage.codec == "auto":
            # Plain zarr is for interoperability: stay within the zarr v3 core codecs.
            storage = storage.model_copy(update={"codec": "blosc-zstd"})
        storage = storage.resolved()
        root = self._root()
        if key in root:
            existing = root[key]
            if isinstance(existing, zarr.Group) and "spec" in existing.attrs:
                old = FeatureSetSpec.from_attrs(existing.attrs["spec"], where=key)
                if exist_ok and old == spec:
                    return
                changes = ", ".join(old.diff(spec)) or "none"
                raise StoreError(
                    f"feature set {key} already exists (spec fields that differ: {changes})",
                    hint="use a new feature-set name for features made differently",
                )
        ds_group = root.require_group(dataset)
        attrs = {"spec": spec.to_attrs(), "storage": storage.model_dump()}
        attrs[ATTRS_DIGEST] = attrs_digest(key, attrs)
        ds_group.create_group(name, attributes=attrs)
        self._specs[key] = (spec, storage)
        self._written.append(key)
        self._after_write()

    def delete_feature_set(self, dataset: str, name: str) -> None:
        """Remove ``dataset/name`` and all its videos (older versions keep them)."""
        key = f"{dataset}/{name}"
        self._feature_set(dataset, name)
        ds_group = self._root()[dataset]
        assert isinstance(ds_group, zarr.Group)
        del ds_group[name]
        self._specs.pop(key, None)
        self._written.append(key)
        self._after_write()

    def fork(self) -> ForkWriter:
        """A picklable writer for a worker process; pass what it returns to ``merge``."""
        self._check_open()
        return ForkWriter(self._kind, self._txn.fork(), self._specs, self._txn.fork_root)

    def merge(self, *forks: ForkWriter) -> None:
        """Take in the videos that workers wrote through their forks."""
        self._check_open()
        seen = set(self._written)
        for fork in forks:
            dup = seen.intersection(fork._written)
            if dup:
                raise StoreError(
                    f"two writers wrote the same video: {', '.join(sorted(dup))}",
                    hint="give each worker a disjoint list of videos",
                )
            seen.update(fork._written)
        self._txn.merge([f._fork for f in forks])
        for fork in forks:
            self._written.extend(fork._written)
            self._specs.update(fork._specs)

    def _commit_metadata(self) -> dict[str, Any]:
        per_set: dict[str, dict[str, Any]] = {}
        for item in self._written:
            parts = item.split("/")
            key = "/".join(parts[:2])
            entry = per_set.setdefault(key, {"videos": 0})
            if len(parts) == 3:
                entry["videos"] += 1
            if key in self._specs:
                spec = self._specs[key][0]
                entry["backbone"] = spec.backbone
                entry["spec_sha256"] = spec_digest(spec)
        try:
            user = f"{getpass.getuser()}@{socket.gethostname()}"
        except (KeyError, OSError):
            user = "unknown"
        talkit_meta = {
            "user": user,
            "talkit_version": __version__,
            "videos": sum(1 for w in self._written if w.count("/") == 2),
            "feature_sets": per_set,
        }
        return {**self._metadata, "talkit": talkit_meta}

    def commit(self) -> str | None:
        """Commit everything written so far; returns the new snapshot id (None if nothing)."""
        self._check_open()
        self._closed = True
        if not self._txn.has_changes():
            self._txn.abort()
            return None
        self.snapshot_id = self._txn.commit(self._message, self._commit_metadata())
        if self._on_commit is not None:
            self._on_commit()
        return self.snapshot_id

    def abort(self) -> None:
        """Discard everything written through this writer."""
        if not self._closed:
            self._closed = True
            self._txn.abort()

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.abort()
            return
        if not self._closed:
            self.commit()
