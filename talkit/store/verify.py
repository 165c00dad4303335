"""``talkit store verify``: read everything of a store version and check every check.

Why: a read checks what it touches (:mod:`talkit.store.integrity`), so damage in a video
nobody reads stays unseen, and videos written before chunks had checksums are checked
only when read whole. This reads every array of every video, checks every chunk's
crc32c and shard index, and compares every array with the sha256 recorded when it was
written, then lists each damaged video on one line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from talkit.store.errors import CorruptDataError, StoreError
from talkit.store.reader import FeatureSet, VideoFeatures
from talkit.store.spec import TIMESTAMPS
from talkit.store.store import FeatureStore


@dataclass(frozen=True)
class Damage:
    """One damaged video (or feature set, when it could not even be listed)."""

    feature_set: str
    video: str | None
    array: str | None
    chunk: int | None
    message: str

    def line(self) -> str:
        """``thumos14/i3d/video_1 rgb chunk 3: <what>``."""
        where = self.feature_set + (f"/{self.video}" if self.video else "")
        if self.array:
            where += f" {self.array}"
        if self.chunk is not None:
            where += f" chunk {self.chunk}"
        return f"{where}: {self.message}"


@dataclass
class VerifyReport:
    """What ``verify_store`` checked and what it found."""

    url: str
    version: str | None
    snapshot_id: str | None
    feature_sets: list[str] = field(default_factory=list)
    videos_checked: int = 0
    damaged: list[Damage] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)  # plain zarr: half-written videos

    @property
    def ok(self) -> bool:
        return not self.damaged

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def verify_video(video: VideoFeatures) -> None:
    """Read every array of one video; raise CorruptDataError at the first damage found.

    Chunk checksums and shard indexes are checked on the way; every array is then
    compared with its recorded sha256, checksummed or not.
    """
    for name in [*video.streams, TIMESTAMPS]:
        view = video.timestamps_view() if name == TIMESTAMPS else video.stream(name)
        data = view.read()
        video.check_whole(name, data, view.plan, force=True)


def count_videos(store: FeatureStore, keys: list[str]) -> int | None:
    """How many videos ``verify_store`` will read (None if a feature set cannot be listed)."""
    try:
        return sum(len(store.feature_set(key).videos()) for key in keys)
    except CorruptDataError:
        return None


def verify_store(
    store: FeatureStore,
    feature_sets: list[str] | None = None,
    *,
    on_video: Callable[[str], None] | None = None,
) -> VerifyReport:
    """Check every video of ``feature_sets`` (default: all) of an open store.

    A store whose root or snapshot cannot be read raises (there is nothing to list); a
    feature set that cannot be listed, and each damaged video, become entries of the
    report's ``damaged`` list, and the others are still checked.
    """
    keys = feature_sets if feature_sets is not None else store.feature_sets()
    report = VerifyReport(store.url, store.version or store.branch, store.snapshot_id or None)
    report.feature_sets = list(keys)
    for key in keys:
        try:
            fs = store.feature_set(key)
            videos = fs.videos()
            report.incomplete.extend(f"{key}/{v}" for v in fs.incomplete())
        except CorruptDataError as exc:
            report.damaged.append(Damage(key, exc.video, exc.array, exc.chunk, exc.detail))
            continue
        for video_id in videos:
            damage = _check_one(fs, video_id)
            report.videos_checked += 1
            if damage is not None:
                report.damaged.append(damage)
            if on_video is not None:
                on_video(f"{key}/{video_id}")
    return report


def _check_one(fs: FeatureSet, video_id: str) -> Damage | None:
    try:
        verify_video(fs.video(video_id))
    except CorruptDataError as exc:
        return Damage(fs.key, video_id, exc.array, exc.chunk, exc.detail)
    except StoreError as exc:  # e.g. an array that is missing from an older video
        return Damage(fs.key, video_id, None, None, exc.message)
    return None
