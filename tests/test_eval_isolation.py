"""Evaluation is its own room: it imports nothing of training, and train/predict are apart."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import talkit

HEADS = Path(talkit.__file__).parent / "wtal_heads"
TRAINING = (
    "torch",
    "talkit.wtal_heads.config",
    "talkit.wtal_heads.data",
    "talkit.wtal_heads.head",
    "talkit.wtal_heads.basnet",
    "talkit.wtal_heads.lgbm",
    "talkit.wtal_heads.parts",
    "talkit.wtal_heads.train",
    "talkit.wtal_heads.predict",
    "talkit.wtal_heads.report",
    "talkit.wtal_heads.inference",
    "talkit.wtal_heads.rundir",
    "talkit.wtal_heads.device",
)

_PROBE = """
import importlib, importlib.abc, pkgutil, sys
BLOCKED = {blocked!r}

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            raise ImportError(f"evaluation imported {{name}}")
        return None

sys.meta_path.insert(0, Block())
import talkit.wtal_heads.evaluation as ev
names = [m.name for m in pkgutil.iter_modules(ev.__path__, ev.__name__ + ".")]
for name in names:
    importlib.import_module(name)
from talkit.wtal_heads.evaluation import evaluate  # the documented path
loaded = sorted(m for m in sys.modules if any(m == b or m.startswith(b + ".") for b in BLOCKED))
print(len(names), loaded)
"""


def test_evaluation_imports_without_training_modules_or_torch() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(blocked=TRAINING)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    count, loaded = out.stdout.split(" ", 1)
    assert int(count) >= 10  # every module of the subpackage was imported
    assert loaded.strip() == "[]"


def _imports(module: Path) -> set[str]:
    tree = ast.parse(module.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def test_train_and_predict_do_not_import_each_other() -> None:
    assert not any(m.startswith("talkit.wtal_heads.predict") for m in _imports(HEADS / "train.py"))
    assert not any(m.startswith("talkit.wtal_heads.train") for m in _imports(HEADS / "predict.py"))
