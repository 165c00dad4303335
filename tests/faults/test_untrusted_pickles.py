"""A malicious pickle in any file talkit reads runs nothing: the command exits 2 with one line.

Every file format talkit reads that can hold a pickle gets a payload that would create a
marker file when unpickled (``os.system("touch MARKER")``), and is given to each command
that reads it: W-TALC annotation ``.npy`` files (datasets, eval, extract, train), backbone
checkpoints (extract), training checkpoints (predict, train --resume) and feature files
(store import of W-TALC, DGAM and per-video ``.npy`` features). The payload itself is
shown to be live: plain ``pickle.loads`` does create the marker.
"""

from __future__ import annotations

import io
import os
import pickle
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from cli_helpers import run_cli
from numpy.lib import format as npy_format
from pipeline_helpers import TINY_ARGS
from train_helpers import make_store, thumos_few_classes

from talkit.datasets.bundled import BUNDLED


class Exploit:
    """Unpickling this runs ``touch MARKER``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def object_npy(path: Path, payload: Any, shape: tuple[int, ...] = (1,)) -> Path:
    """A .npy file whose object-array pickle holds ``payload``."""
    array = np.empty(shape, dtype=object)
    array.flat[0] = payload
    buf = io.BytesIO()
    npy_format.write_array_header_1_0(
        buf, {"descr": "|O", "fortran_order": False, "shape": array.shape}
    )
    path.write_bytes(buf.getvalue() + pickle.dumps(array, protocol=3))
    return path


TRAIN_SETTINGS = [
    "--config", "basnet_thumos14", "--iterations", "2", "--eval-every", "2", "--quiet",
    "--set", "model.in_dim=64", "--set", "model.params.cas_dim=16",
    "--set", "model.params.filter_dim=8", "--set", "data.num_segments=16",
    "--set", "data.eval_num_segments=16", "--set", "data.val_fraction=0.25",
    "--set", "data.num_workers=0", "--device", "cpu", "--batch-size", "4",
]  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, real_data: Path) -> dict[str, Path]:
    """A 64-d feature store with its GT, a trained run directory, and a W-TALC folder."""
    from pipeline_fault_helpers import make_videos

    from talkit.cli import main

    root = tmp_path_factory.mktemp("world")
    url, gt, _ = make_store(root, thumos_few_classes(real_data), dim=64)
    run_dir = root / "run"
    try:
        main(["train", *TRAIN_SETTINGS, "--store", url, "--annotations", str(gt),
              "--out", str(run_dir)])  # fmt: skip
    except SystemExit as exc:
        assert exc.code in (0, None), exc
    wtalc = root / "wtalc"
    shutil.copytree(BUNDLED["thumos14_wtalc"].path.parent / "thumos14_wtalc", wtalc)
    return {
        "store": Path(url),
        "gt": gt,
        "run": run_dir,
        "wtalc": wtalc,
        "videos": make_videos(root / "v", 1),
    }


def test_the_payload_is_live(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(Exploit(marker)))
    assert marker.exists()


def _poisoned_wtalc(world: dict[str, Path], tmp_path: Path, marker: Path) -> Path:
    folder = tmp_path / "wtalc"
    shutil.copytree(world["wtalc"], folder)
    object_npy(folder / "segments.npy", [[0.0, 1.0], Exploit(marker)])
    return folder


def _checkpoint(path: Path, payload: dict[str, Any]) -> Path:
    torch.save(payload, path)
    return path


def _case(name: str, world: dict[str, Path], tmp: Path, marker: Path) -> list[str]:
    """The command line of one case, with its poisoned file in place."""
    extract = ["extract", "--dataset", "d", "--store", str(tmp / "s.store"), *TINY_ARGS,
               "--quiet", "--report", str(tmp / "r.json")]  # fmt: skip
    train = ["train", *TRAIN_SETTINGS, "--store", str(world["store"])]
    if name == "datasets-inspect":
        return ["datasets", "inspect", str(_poisoned_wtalc(world, tmp, marker))]
    if name == "eval-gt":
        det = tmp / "det.json"
        det.write_text('{"version": "1", "results": {}, "external_data": {}}')
        return ["eval", str(det), "--gt", str(_poisoned_wtalc(world, tmp, marker))]
    if name == "extract-annotations":
        wtalc = _poisoned_wtalc(world, tmp, marker)
        return [*extract, "--videos", str(wtalc), "--video-dir", str(world["videos"])]
    if name == "train-annotations":
        wtalc = _poisoned_wtalc(world, tmp, marker)
        return [*train, "--annotations", str(wtalc), "--out", str(tmp / "run")]
    if name == "extract-checkpoint":
        evil = _checkpoint(tmp / "rgb.pt", {"conv.weight": torch.zeros(1), "x": Exploit(marker)})
        i = extract.index("--random-weights")
        del extract[i : i + 2]
        streams = extract.index("--streams") + 1
        extract[streams] = "rgb"
        return [*extract, "--videos", str(world["videos"]), "--checkpoint", f"rgb={evil}"]
    if name in ("predict-best", "train-resume-last"):
        run = tmp / "run"
        shutil.copytree(world["run"], run)
        which = "best" if name == "predict-best" else "last"
        good = torch.load(run / "checkpoints" / f"{which}.pt", weights_only=True)
        _checkpoint(run / "checkpoints" / f"{which}.pt", {**good, "extra": Exploit(marker)})
        if name == "predict-best":
            return ["predict", "--run", str(run), "--device", "cpu"]
        return [*train, "--annotations", str(world["gt"]), "--out", str(run), "--resume"]
    target = ["--dataset", "d", "--feature-set", "f"]
    if name == "import-wtalc":
        feats = tmp / "wtalc" / "Thumos14-I3D-JOINTFeatures.npy"
        feats.parent.mkdir()
        object_npy(feats, Exploit(marker))
        return ["store", "import", str(feats), str(tmp / "s.store"), "--format", "wtalc",
                "--annotations", str(world["wtalc"]), *target]  # fmt: skip
    if name == "import-dgam":
        for stream in ("rgb_features", "flow_features"):
            (tmp / "dgam" / stream).mkdir(parents=True)
            object_npy(tmp / "dgam" / stream / "v1.npy", Exploit(marker))
        return ["store", "import", str(tmp / "dgam"), str(tmp / "s.store"), "--format", "dgam",
                *target]  # fmt: skip
    if name == "import-npy":
        (tmp / "npy").mkdir()
        object_npy(tmp / "npy" / "v1.npy", Exploit(marker))
        return ["store", "import", str(tmp / "npy"), str(tmp / "s.store"), "--format", "npy",
                *target]  # fmt: skip
    raise AssertionError(name)


CASES = [
    "datasets-inspect",
    "eval-gt",
    "extract-annotations",
    "train-annotations",
    "extract-checkpoint",
    "predict-best",
    "train-resume-last",
    "import-wtalc",
    "import-dgam",
    "import-npy",
]


@pytest.mark.parametrize("case", CASES)
def test_a_malicious_pickle_runs_nothing_and_exits_2_with_one_line(
    case: str, world: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "pwned"
    args = _case(case, world, tmp_path, marker)
    code, _out, err = run_cli(capsys, *args)
    assert not marker.exists(), "the pickle ran"
    assert code == 2, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and err.rstrip().endswith(errors[0]), err
    assert "Traceback" not in err
    # Refused for what it is, naming the file (not failing on something else first).
    assert "posix.system" in errors[0] or "holds pickled objects" in errors[0], errors[0]
    assert not (tmp_path / "s.store").exists() or case.startswith("extract")
