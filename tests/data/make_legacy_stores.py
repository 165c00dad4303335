"""Write the stores in tests/data/legacy/: what talkit wrote before chunks had checksums.

Run with the talkit of commit 8a961f5 (the last one before crc32c chunks and attrs
digests) first on the path, from the repository root::

    git archive 8a961f5 talkit tests/store_helpers.py | tar -x -C /tmp/old
    PYTHONPATH=/tmp/old:/tmp/old/tests python tests/data/make_legacy_stores.py

The values are ``store_helpers.features(i, T)`` of the i-th video, so tests recompute them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from store_helpers import DS, FS, features, spec

from talkit.store import FeatureStore, StorageOptions

VIDEOS = {"a": 150, "b": 40, "c": 260}
OUT = Path(__file__).parent / "legacy"


def main() -> None:
    for engine in ("icechunk", "zarr"):
        path = OUT / engine
        shutil.rmtree(path, ignore_errors=True)
        store = FeatureStore.create(str(path), engine=engine)
        store.create_feature_set(DS, FS, spec(), storage=StorageOptions(chunk_t=64))
        with store.writer(message="videos written before checksums") as w:
            for i, (vid, t) in enumerate(VIDEOS.items()):
                w.write_video(DS, FS, vid, streams=features(i, t), attrs={"duration": t * 0.64})
        (path / ".talkit-commit.lock").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
