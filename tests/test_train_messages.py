"""What `talkit train` tells a user who is not watching a terminal, and about empty results."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from cli_helpers import run_cli
from train_helpers import make_store, thumos_few_classes

TINY = [
    *("--set", "model.in_dim=64", "--set", "model.params.cas_dim=16"),
    *("--set", "model.params.filter_dim=8", "--set", "data.num_segments=16"),
    *("--set", "data.eval_num_segments=16", "--set", "data.val_fraction=0.25"),
    *("--set", "data.num_workers=0", "--device", "cpu", "--batch-size", "4"),
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory, real_data: Path) -> tuple[str, Path]:
    """6 training and 6 test THUMOS14 timelines (3 classes), 64-d synthetic features."""
    url, gt, _ = make_store(tmp_path_factory.mktemp("tiny"), thumos_few_classes(real_data), dim=64)
    return url, gt


@pytest.mark.slow
def test_train_without_a_terminal_logs_progress_lines_and_warns_on_no_detections(
    tiny, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """stderr is captured here, as in a log file: progress comes as plain lines. A class
    threshold no score can reach gives 0 detections: the run says so, and why."""
    url, gt = tiny
    run = tmp_path / "run"
    code, out, err = run_cli(
        capsys,
        *("train", "--config", "basnet_thumos14", "--store", url, "--annotations", str(gt)),
        *("--out", str(run), "--iterations", "4", "--eval-every", "2", *TINY),
        *("--set", "eval.postprocess_params.class_value=2"),
    )
    assert code == 0, err
    lines = [ln for ln in err.splitlines() if re.match(r"basnet_thumos14: \d+/4 it ", ln)]
    assert [int(re.search(r"(\d+)/4", ln).group(1)) for ln in lines] == [1, 2, 3, 4]
    assert all("it/s" in ln and "loss " in ln and "val " in ln and "ETA " in ln for ln in lines)
    assert "val 0.0" in lines[-1]  # the validation score shows up once measured

    text = " ".join(out.split())
    assert "warning: 0 detections on the test split, so every AP is 0" in text
    assert "no class passed the class-score threshold 2 of post-processing preset 'basnet'" in text
    highest = float(re.search(r"highest video-level class score was ([0-9.e-]+)", text).group(1))
    assert 0 <= highest < 2
    report = json.loads((run / "report_test.json").read_text())
    assert report["warnings"] and "class-score threshold 2" in report["warnings"][0]

    code, out, err = run_cli(capsys, "predict", "--run", str(run), "--device", "cpu")
    assert code == 0, err
    assert "warning: 0 detections on the test split" in " ".join(out.split())


def test_progress_lines_come_every_tenth_of_the_run_when_not_a_terminal() -> None:
    import io

    from rich.console import Console

    from talkit.wtal_heads.train_progress import TrainProgress

    sink = io.StringIO()
    console = Console(file=sink, width=200)
    assert not console.is_terminal
    with TrainProgress(console, name="lgbm", total=100, start=20, every_s=1e9) as progress:
        for done in range(21, 101):
            progress.update(done, loss=f"{1 / done:.4f}", val="-", rate=4.0)
    shown = [
        int(re.search(r"lgbm: (\d+)/100 it", ln).group(1)) for ln in sink.getvalue().splitlines()
    ]
    assert shown == [21, 28, 36, 44, 52, 60, 68, 76, 84, 92, 100]
    assert "lgbm: 60/100 it  4.00 it/s  loss 0.0167  val -  ETA 10s" in sink.getvalue()

    quiet = io.StringIO()
    with TrainProgress(Console(file=quiet), name="x", total=5, start=0, enabled=False) as progress:
        for done in range(1, 6):
            progress.update(done, loss="1", val="-", rate=1.0)
    assert quiet.getvalue() == ""
