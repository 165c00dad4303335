"""Training reads through the store API: damage stops it with the one-line error.

The flip tests read the training feature source in-process; here a damaged store is read
by a DataLoader worker process, as ``talkit train`` does, and the error that reaches the
training loop is still the store's one line (torch re-raises it with its traceback).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from fault_helpers import VIDEOS, icechunk_files, write_store

from talkit.datasets.feature_sources import StoreFeatureSource
from talkit.datasets.model import Dataset, Segment, Video
from talkit.datasets.store_dataset import SnippetDataset, collate_items
from talkit.store.errors import CorruptDataError


@pytest.mark.slow
def test_a_dataloader_worker_reports_damage_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "s"
    write_store(path)
    for obj in icechunk_files(path)["chunk"]:
        data = bytearray(obj.read_bytes())
        data[len(data) // 3] ^= 0x01
        obj.write_bytes(bytes(data))
    labels = [Segment(label="jump", start_s=0.0, end_s=1.0)]
    annotations = Dataset(
        classes=["jump"],
        videos={v: Video(id=v, subset="train", annotations=labels) for v in VIDEOS},
    )
    dataset = SnippetDataset(
        StoreFeatureSource(str(path), ["thumos14/i3d"]), annotations, sorted(VIDEOS)
    )
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=3,
        num_workers=1,
        collate_fn=collate_items,
        multiprocessing_context="spawn",
    )
    with pytest.raises(CorruptDataError) as info:
        next(iter(loader))
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"damaged data in store {path}: ")
    assert "talkit store verify" in message and info.value.exit_code == 1
