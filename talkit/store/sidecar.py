"""The JSON sidecar that carries spec, attrs and timestamps where a format cannot.

Per-video ``.npy`` files and the W-TALC object array hold bare arrays. An export writes
``talkit.json`` next to them, and an import that finds it restores the feature set as it
was: same spec, same attrs, same timestamps (floats written with full precision).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from talkit.store.errors import StoreError
from talkit.store.reader import FeatureSet
from talkit.store.spec import RESERVED_VIDEO_ATTRS, FeatureSetSpec

SIDECAR_NAME = "talkit.json"
SIDECAR_FORMAT = "talkit-features-sidecar"
SIDECAR_VERSION = 1


def user_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    """A video's attrs without the ones the store sets itself."""
    return {k: v for k, v in attrs.items() if k not in RESERVED_VIDEO_ATTRS}


def build_sidecar(fs: FeatureSet, layout: str, video_ids: list[str]) -> dict[str, Any]:
    """Sidecar content for the given videos of a feature set."""
    videos = {}
    for vid in video_ids:
        video = fs.video(vid)
        videos[vid] = {
            "attrs": user_attrs(video.attrs),
            "timestamps": video.timestamps.tolist(),
        }
    return {
        "format": SIDECAR_FORMAT,
        "version": SIDECAR_VERSION,
        "feature_set": fs.key,
        "layout": layout,
        "spec": fs.spec.to_attrs(),
        "videos": videos,
    }


def sidecar_path(target: Path) -> Path:
    """Where the sidecar of an export folder or file lives (export and import both ask).

    A folder of per-video files has ``talkit.json`` inside it; a single-file export
    (W-TALC) has ``<file>.talkit.json`` beside it.
    """
    if target.is_dir():
        return target / SIDECAR_NAME
    return target.with_name(f"{target.name}.{SIDECAR_NAME}")


def write_sidecar(target: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as the sidecar of ``target`` (an export folder or file)."""
    sidecar_path(target).write_text(json.dumps(data, indent=1, allow_nan=False))


class Sidecar:
    """A parsed sidecar: spec plus per-video attrs and timestamps."""

    def __init__(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise StoreError(f"cannot read sidecar {path}: {exc}") from exc
        if not isinstance(data, dict) or data.get("format") != SIDECAR_FORMAT:
            raise StoreError(f"{path} is not a talkit sidecar (no format '{SIDECAR_FORMAT}')")
        if int(data.get("version", 0)) > SIDECAR_VERSION:
            raise StoreError(
                f"sidecar {path} has version {data.get('version')}; this talkit reads up to "
                f"{SIDECAR_VERSION}",
                hint="upgrade talkit",
            )
        self.path = path
        self.layout: str = data.get("layout", "streams")
        self.spec = FeatureSetSpec.from_attrs(data["spec"], where=str(path))
        self._videos: dict[str, Any] = data.get("videos", {})

    def video_ids(self) -> list[str]:
        """The videos the export wrote, in its order (W-TALC: the order of the array)."""
        return list(self._videos)

    def attrs(self, video_id: str) -> dict[str, Any]:
        return dict(self._videos.get(video_id, {}).get("attrs", {}))

    def timestamps(self, video_id: str) -> np.ndarray | None:
        entry = self._videos.get(video_id)
        if entry is None or "timestamps" not in entry:
            return None
        return np.asarray(entry["timestamps"], dtype=np.float64).reshape(-1, 2)

    @classmethod
    def find(cls, source: Path) -> Sidecar | None:
        """The sidecar of ``source`` (an import folder or file), if there is one."""
        path = sidecar_path(source)
        return cls(path) if path.is_file() else None
