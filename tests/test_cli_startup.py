"""Quick commands stay quick: they do not import the heavy libraries other commands need.

Each command runs in a fresh interpreter (as a user runs it), and the test reads which
top-level packages ended up in ``sys.modules``. Torch, Ray, OpenCV & co. belong to
extraction, training and plotting; a user asking for ``--help`` or a store summary should
not wait seconds for them. No timings here: benchmarks/cli_startup.py measures those.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from store_helpers import KEY, make_store

# Loaded only by the commands that use them (extract, train, eval plots, import/export).
HEAVY = {
    "torch",
    "ray",
    "cv2",
    "matplotlib",
    "av",
    "decord",
    "scipy",
    "timm",
    "pytorchvideo",
    "h5py",
}
# Needed by the store commands, and by nothing else here.
STORE_LIBS = {"zarr", "icechunk"}

# Runs `talkit ARGS` in this fresh interpreter, then writes the top-level names of every
# module it imported to OUT, whether the command exited normally or through SystemExit.
_RUNNER = """
import json, sys
out, args = sys.argv[1], json.loads(sys.argv[2])
try:
    from talkit.cli import main
    main(args)
finally:
    with open(out, "w") as fh:
        json.dump(sorted({name.split(".")[0] for name in sys.modules}), fh)
"""


def _run(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``talkit ARGS`` in a new process; return it and the top-level modules it loaded."""
    out = tmp_path / f"modules-{len(list(tmp_path.glob('modules-*')))}.json"
    proc = subprocess.run(
        [sys.executable, "-c", _RUNNER, str(out), json.dumps(list(args))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc, set(json.loads(out.read_text()))


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("startup") / "tiny.store"
    make_store(path, {"vid_a": 5, "vid_b": 7})
    return str(path)


def test_help_imports_neither_heavy_nor_store_libraries(tmp_path):
    proc, loaded = _run(tmp_path, "--help")
    assert "store" in proc.stdout and "datasets" in proc.stdout and "extract" in proc.stdout
    assert loaded & (HEAVY | STORE_LIBS) == set()


def test_store_info_imports_no_heavy_library(tmp_path, tiny_store):
    proc, loaded = _run(tmp_path, "store", "info", tiny_store)
    assert KEY in proc.stdout and "2  (12 snippets)" in proc.stdout
    assert loaded >= STORE_LIBS  # the check sees what the command imported on its way
    assert loaded & HEAVY == set()


def test_store_log_imports_no_heavy_library(tmp_path, tiny_store):
    proc, loaded = _run(tmp_path, "store", "log", tiny_store, "--json")
    messages = [c["message"] for c in json.loads(proc.stdout)]
    assert "initial videos" in messages
    assert loaded >= STORE_LIBS
    assert loaded & HEAVY == set()


@pytest.mark.parametrize(
    ("name", "text"),
    [
        (
            "gt.json",
            json.dumps(
                {
                    "database": {
                        "v1": {
                            "subset": "validation",
                            "duration": 12.0,
                            "annotations": [{"label": "HighJump", "segment": [1.0, 2.5]}],
                        }
                    }
                }
            ),
        ),
        ("HighJump_val.txt", "video_validation_0000001 1.0 2.5\n"),
    ],
    ids=["activitynet-json", "thumos-class-file"],
)
def test_datasets_inspect_imports_neither_heavy_nor_store_libraries(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    proc, loaded = _run(tmp_path, "datasets", "inspect", str(path), "--json")
    summary = json.loads(proc.stdout)
    assert (summary["videos"], summary["instances"], summary["class_names"]) == (
        1,
        1,
        ["HighJump"],
    )
    assert loaded & (HEAVY | STORE_LIBS) == set()


def test_the_talkit_command_exits_fast_with_its_code_and_all_its_output(tmp_path):
    """``talkit`` (cli.entry_point) ends the process right after the exit handlers, with
    the command's exit code and its whole output flushed, as a normal exit would."""
    listing = subprocess.run(
        [sys.executable, "-m", "talkit.cli", "presets", "extract"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    same, _ = _run(tmp_path, "presets", "extract")
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout == same.stdout and "hacs_lgbm_ensemble" in listing.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "talkit.cli", "store", "info", str(tmp_path / "nothing.store")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert missing.returncode == 2
    assert missing.stderr.startswith("error:") and "nothing.store" in missing.stderr
    usage = subprocess.run(
        [sys.executable, "-m", "talkit.cli", "store", "--no-such-flag"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert usage.returncode == 2 and "--no-such-flag" in usage.stderr
