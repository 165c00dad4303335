"""Checkpoints holding more than tensors are refused in talkit's words, never torch's."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch

from talkit.errors import CheckpointError
from talkit.wtal_heads.rundir import CHECKPOINT_FORMAT, load_checkpoint_file


def test_training_checkpoint_with_objects_is_refused_for_safety(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    torch.save(
        {"format": CHECKPOINT_FORMAT, "model": {"w": torch.zeros(2)}, "args": argparse.Namespace()},
        path,
    )
    with pytest.raises(CheckpointError) as err:
        load_checkpoint_file(path)
    message = str(err.value)
    assert str(path) in message
    assert "contains objects other than tensors (e.g. argparse.Namespace)" in message
    assert "for safety" in message and "talkit train" in message
    assert "weights_only" not in message and "Re-running" not in message
    assert err.value.exit_code == 2


def test_training_checkpoint_of_tensors_loads(tmp_path: Path) -> None:
    path = tmp_path / "best.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "model": {"w": torch.ones(2)}, "iteration": 3}, path)
    payload = load_checkpoint_file(path)
    assert payload["iteration"] == 3 and torch.equal(payload["model"]["w"], torch.ones(2))


def test_unreadable_training_checkpoint_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    path.write_bytes(b"not a torch file at all")
    with pytest.raises(CheckpointError, match="is not a readable talkit checkpoint") as err:
        load_checkpoint_file(path)
    assert "\n" not in str(err.value) and "weights_only" not in str(err.value)


def test_garbage_backbone_checkpoint_is_corrupt_not_unsafe(tmp_path: Path) -> None:
    from talkit.extractors.checkpoints import read_state_dict

    path = tmp_path / "rgb.pt"
    path.write_bytes(b"not a torch file at all")
    with pytest.raises(CheckpointError, match="looks truncated or corrupt") as err:
        read_state_dict(path)
    assert "weights_only" not in str(err.value) and "\n" not in str(err.value)
