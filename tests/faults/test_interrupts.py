"""Ctrl-C in `talkit train` and `talkit store import`: exit 130, one line on what was kept.

(`talkit extract` is in test_pipeline_faults.py.) The commands run as separate processes
and get a real SIGINT; where the moment matters, the test waits for a sign that the
command is in the middle of its work (training metrics written; the import blocked on
reading a named pipe) before sending it.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run_cli
from pipeline_fault_helpers import start, wait_until
from train_helpers import make_store, thumos_few_classes

from talkit.store import FeatureStore

pytestmark = pytest.mark.slow

TRAIN_SETTINGS = [
    "--config", "basnet_thumos14", "--iterations", "100000", "--eval-every", "100000",
    "--quiet", "--set", "train.log_every=1", "--set", "model.in_dim=64",
    "--set", "model.params.cas_dim=16", "--set", "model.params.filter_dim=8",
    "--set", "data.num_segments=16", "--set", "data.eval_num_segments=16",
    "--set", "data.val_fraction=0.25", "--set", "data.num_workers=0", "--device", "cpu",
    "--batch-size", "4",
]  # fmt: skip


def _iteration(run: Path) -> int:
    import torch

    return int(torch.load(run / "checkpoints" / "last.pt", weights_only=True)["iteration"])


def test_ctrl_c_in_train_saves_last_pt_and_prints_the_resume_command(
    tmp_path: Path, real_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, gt, _ = make_store(tmp_path, thumos_few_classes(real_data), dim=64)
    run = tmp_path / "run"
    args = ["train", *TRAIN_SETTINGS, "--store", url, "--annotations", str(gt), "--out", str(run)]
    proc = start(args)
    metrics = run / "metrics.jsonl"
    try:
        wait_until(
            lambda: metrics.is_file() and len(metrics.read_text().splitlines()) >= 3,
            proc,
            "three training iterations",
        )
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    text = err.decode()
    assert proc.returncode == 130, text[-3000:]
    lines = [ln for ln in text.splitlines() if ln.startswith("interrupted:")]
    assert len(lines) == 1, text
    saved = _iteration(run)
    assert saved >= 3
    assert f"{run / 'checkpoints' / 'last.pt'} (iteration {saved})" in lines[0]
    assert "resume with: talkit train --config basnet_thumos14" in lines[0]
    assert lines[0].rstrip(")").endswith("--resume")

    # The printed command, here with a stop two iterations on, continues from last.pt.
    code, _out, err = run_cli(capsys, *args, "--resume", "--stop-after", str(saved + 2))
    assert code == 0, err
    assert _iteration(run) == saved + 2


def _npy(path: Path, rows: int) -> None:
    np.save(path, np.arange(rows * 4, dtype=np.float32).reshape(rows, 4))


def _fifo_is_being_read(path: Path) -> bool:
    """Whether a process has the named pipe open for reading (opening it to write works)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # no reader yet
            return False
        raise
    os.close(fd)
    return True


@pytest.mark.skipif(sys.platform == "win32", reason="named pipes")
def test_ctrl_c_in_store_import_imports_nothing_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two videos are read; the third is a named pipe nobody writes, so the import is
    stuck reading it when the SIGINT comes."""
    src = tmp_path / "feats"
    src.mkdir()
    _npy(src / "a.npy", 5)
    _npy(src / "b.npy", 6)
    os.mkfifo(src / "z.npy")
    store = tmp_path / "s.store"
    FeatureStore.create(str(store))
    before = len(FeatureStore.open(str(store)).log())
    args = ["store", "import", str(src), str(store), "--format", "npy", "--dataset", "d",
            "--feature-set", "f"]  # fmt: skip
    proc = start(args)
    try:
        wait_until(lambda: _fifo_is_being_read(src / "z.npy"), proc, "the import reading z.npy")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    text = err.decode()
    assert proc.returncode == 130, text[-3000:]
    lines = [ln for ln in text.splitlines() if ln.startswith("interrupted:")]
    assert len(lines) == 1 and "nothing was imported into" in lines[0], text
    assert "run the same command again" in lines[0]
    assert len(FeatureStore.open(str(store)).log()) == before  # no commit
    assert "d/f" not in FeatureStore.open(str(store)).feature_sets()

    (src / "z.npy").unlink()
    _npy(src / "z.npy", 7)
    code, _out, err = run_cli(capsys, *args)  # the same command again
    assert code == 0, err
    assert FeatureStore.open(str(store)).feature_set("d/f").videos() == ["a", "b", "z"]
