"""Comparing two versions of a store, and summarising one (``diff`` and ``info``).

``diff`` compares trees, not commit logs, so it works between any two versions (also
across branches): feature sets by their spec, videos by the content hashes the writer
records (sha256 of every array) plus their attrs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import zarr

from talkit.store.codecs import describe_codecs
from talkit.store.errors import StoreError
from talkit.store.integrity import ATTRS_DIGEST, corrupt, reading
from talkit.store.reader import FeatureSet, ReadContext
from talkit.store.spec import split_feature_set

# Attrs that change on every write without the video changing.
_VOLATILE_ATTRS = frozenset({"written_at", ATTRS_DIGEST})


def list_feature_sets(
    root: zarr.Group, context: ReadContext | None = None
) -> dict[str, FeatureSet]:
    """All ``dataset/feature_set`` groups (those with a spec) under a store root."""
    context = context or ReadContext()
    out: dict[str, FeatureSet] = {}
    sets = []
    with reading(context.url, ""):
        for ds_name, ds_group in sorted(root.groups()):
            _check_placement(context.url, ds_name, ds_group.attrs, ("spec", "status"))
            for fs_name, fs_group in sorted(ds_group.groups()):
                if "spec" in fs_group.attrs:
                    sets.append((ds_name, fs_name, fs_group))
                else:
                    _check_placement(
                        context.url, f"{ds_name}/{fs_name}", fs_group.attrs, ("status",)
                    )
    for ds_name, fs_name, fs_group in sets:
        key = f"{ds_name}/{fs_name}"
        try:
            split_feature_set(key)
        except StoreError:  # talkit checks every name it writes: this one changed since
            raise corrupt(context.url, key, "its name is not one talkit writes") from None
        out[key] = FeatureSet(fs_group, ds_name, fs_name, context)
    return out


def _check_placement(url: str, path: str, attrs: Any, foreign: tuple[str, ...]) -> None:
    """A feature-set or video group at another depth than talkit writes it is damage.

    Dataset groups have no attrs; a group with a spec or a status is a feature set or a
    video, and one found where a dataset (or a feature set) belongs means a damaged path.
    """
    found = [k for k in (*foreign, ATTRS_DIGEST) if k in attrs]
    if found:
        raise corrupt(url, path, f"a group with {found[0]!r} attrs where talkit writes none")


@dataclass
class FeatureSetDiff:
    """What changed inside one feature set present in both versions."""

    spec_changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    videos_added: list[str] = field(default_factory=list)
    videos_removed: list[str] = field(default_factory=list)
    videos_changed: list[str] = field(default_factory=list)

    def is_empty(self) -> bool:
        return not (
            self.spec_changes or self.videos_added or self.videos_removed or self.videos_changed
        )


@dataclass
class StoreDiff:
    """Differences from version ``a`` to version ``b``."""

    a: str
    b: str
    feature_sets_added: list[str] = field(default_factory=list)
    feature_sets_removed: list[str] = field(default_factory=list)
    feature_sets: dict[str, FeatureSetDiff] = field(default_factory=dict)

    def is_empty(self) -> bool:
        return not (self.feature_sets_added or self.feature_sets_removed or self.feature_sets)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (spec changes as ``{key: [old, new]}``)."""
        data = asdict(self)
        for entry in data["feature_sets"].values():
            entry["spec_changes"] = {k: list(v) for k, v in entry["spec_changes"].items()}
        return data


def diff_roots(root_a: zarr.Group, root_b: zarr.Group, a: str, b: str) -> StoreDiff:
    """Compare two store roots (two versions of one store, or two stores)."""
    sets_a, sets_b = list_feature_sets(root_a), list_feature_sets(root_b)
    result = StoreDiff(
        a=a,
        b=b,
        feature_sets_added=sorted(set(sets_b) - set(sets_a)),
        feature_sets_removed=sorted(set(sets_a) - set(sets_b)),
    )
    for key in sorted(set(sets_a) & set(sets_b)):
        fs_a, fs_b = sets_a[key], sets_b[key]
        entry = FeatureSetDiff(spec_changes=fs_a.spec.diff(fs_b.spec))
        vids_a, vids_b = set(fs_a.videos()), set(fs_b.videos())
        entry.videos_added = sorted(vids_b - vids_a)
        entry.videos_removed = sorted(vids_a - vids_b)
        entry.videos_changed = [
            vid for vid in sorted(vids_a & vids_b) if _video_changed(fs_a, fs_b, vid)
        ]
        if not entry.is_empty():
            result.feature_sets[key] = entry
    return result


def _video_changed(fs_a: FeatureSet, fs_b: FeatureSet, video_id: str) -> bool:
    va, vb = fs_a.video(video_id), fs_b.video(video_id)
    attrs_a = {k: v for k, v in va.attrs.items() if k not in _VOLATILE_ATTRS}
    attrs_b = {k: v for k, v in vb.attrs.items() if k not in _VOLATILE_ATTRS}
    if "content_sha256" in attrs_a and "content_sha256" in attrs_b:
        return attrs_a != attrs_b
    # Written by another tool: compare the arrays themselves.
    if attrs_a != attrs_b or va.streams != vb.streams:
        return True
    if not np.array_equal(va.timestamps, vb.timestamps):
        return True
    return any(
        not np.array_equal(va.stream(s).read(), vb.stream(s).read(), equal_nan=True)
        for s in va.streams
    )


def feature_set_info(fs: FeatureSet) -> dict[str, Any]:
    """Counts, dims, dtype, chunking, codecs, stored bytes and float16 error of one set."""
    videos = fs.videos()
    logical = stored = snippets = 0
    chunks: dict[str, list[int]] = {}
    shards: dict[str, list[int] | None] = {}  # per stream, of the first video (varies with T)
    compression = "n/a"
    f16_max_abs = f16_max_rel = f16_sq = 0.0
    f16_count = 0
    has_f16 = False
    for vid in videos:
        video = fs.video(vid)
        snippets += video.num_snippets
        for name in video.streams:
            array = video.stream(name).zarr_array
            logical += int(array.nbytes)
            with reading(fs.context.url, f"{fs.key}/{vid}/{name}"):
                stored += int(array.nbytes_stored())
            if name not in chunks:
                chunks[name] = list(array.chunks)
                shards[name] = None if array.shards is None else list(array.shards)
                compression = describe_codecs(array)
        for err in (video.attrs.get("float16_error") or {}).values():
            has_f16 = True
            f16_max_abs = max(f16_max_abs, err["max_abs"])
            f16_max_rel = max(f16_max_rel, err["max_rel"])
            n = video.num_snippets
            f16_sq += err["rmse"] ** 2 * n
            f16_count += n
    return {
        "videos": len(videos),
        "incomplete": len(fs.incomplete()),
        "snippets": snippets,
        "streams": dict(fs.spec.streams),
        "dtype": fs.spec.dtype,
        "spec": fs.spec.to_attrs(),
        "storage": fs.storage.model_dump(),
        "chunks": chunks,
        "shards": shards,
        "compression": compression,
        "bytes_logical": logical,
        "bytes_stored": stored,
        "compression_ratio": (logical / stored) if stored else None,
        "float16_error": (
            {
                "max_abs": f16_max_abs,
                "max_rel": f16_max_rel,
                "rmse": math.sqrt(f16_sq / f16_count) if f16_count else 0.0,
            }
            if has_f16
            else None
        ),
    }
