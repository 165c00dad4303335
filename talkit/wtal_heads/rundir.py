"""The run directory: what a training run leaves behind, and how it is read back.

    RUN/
      config.yaml              the resolved config (preset + overrides)
      run.json                 store URL and version, annotation file, classes, members
      metrics.jsonl            one JSON object per logged train step and per validation
      checkpoints/last.pt      resumable: weights, optimizer, RNG, sampler position, best
      checkpoints/best.pt      weights at the best validation score
      detections_<split>.json  ActivityNet result format
      report_<split>.json/.md  mAP per threshold and averages (and the trivial baseline)
      plots/                   training curves, mAP per threshold
      members/<name>/          ensemble: one such tree (checkpoints, metrics) per model

Checkpoints hold only tensors and plain Python values, so they load with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from talkit.errors import CheckpointError, InputError
from talkit.torch_load import load_weights_only, torch_reason
from talkit.wtal_heads.config import RunConfig, dump_config, load_config

CHECKPOINT_FORMAT = 1


def config_digest(config: RunConfig) -> str:
    """Hash of everything that shapes the weights except the iteration budget.

    A run may be resumed with more iterations, but not with another model, data or seed.
    """
    doc = config.model_dump(mode="json")
    doc["train"].pop("iterations", None)
    doc["train"].pop("eval_every", None)
    doc["train"].pop("checkpoint_every", None)
    doc["train"].pop("log_every", None)
    doc["data"].pop("num_workers", None)
    doc["data"].pop("cache_mb", None)
    doc["train"].pop("device", None)
    doc.pop("eval", None)
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


class RunDir:
    """Paths and read/write helpers of one run (or one ensemble member) directory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    # -- layout -------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.root / "config.yaml"

    @property
    def info_path(self) -> Path:
        return self.root / "run.json"

    @property
    def metrics_path(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    def checkpoint(self, which: str = "last") -> Path:
        return self.checkpoints / f"{which}.pt"

    def detections(self, split: str) -> Path:
        return self.root / f"detections_{split}.json"

    def report(self, split: str, ext: str = "json") -> Path:
        return self.root / f"report_{split}.{ext}"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    def member(self, name: str) -> RunDir:
        return RunDir(self.root / "members" / name.replace("/", "__"))

    # -- config and run info ------------------------------------------------------------
    def write_config(self, config: RunConfig) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(dump_config(config))

    def read_config(self) -> RunConfig:
        if not self.config_path.is_file():
            raise InputError(
                f"{self.root} is not a talkit run directory (no config.yaml)",
                hint="pass the --out directory of a `talkit train` run",
            )
        return load_config(self.config_path)

    def write_info(self, info: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.info_path.write_text(json.dumps(info, indent=2))

    def read_info(self) -> dict[str, Any]:
        if not self.info_path.is_file():
            raise InputError(f"{self.root} has no run.json", hint="was the run started?")
        return json.loads(self.info_path.read_text())

    # -- metrics ------------------------------------------------------------------------
    def log_metrics(self, record: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with self.metrics_path.open("a") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_path.is_file():
            return []
        return [json.loads(line) for line in self.metrics_path.read_text().splitlines() if line]

    def truncate_metrics(self, iteration: int) -> None:
        """Drop records after ``iteration`` (a resumed run logs them again)."""
        kept = [m for m in self.read_metrics() if m.get("iteration", 0) <= iteration]
        self.metrics_path.write_text("".join(json.dumps(m, sort_keys=True) + "\n" for m in kept))

    # -- checkpoints --------------------------------------------------------------------
    def save_checkpoint(self, which: str, payload: dict[str, Any]) -> Path:
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        path = self.checkpoint(which)
        tmp = path.with_suffix(".tmp")
        torch.save({"format": CHECKPOINT_FORMAT, **payload}, tmp)
        tmp.replace(path)  # never leave a half-written checkpoint under the real name
        return path

    def load_checkpoint(self, which: str = "last") -> dict[str, Any]:
        return load_checkpoint_file(self.checkpoint(which))


def load_checkpoint_file(path: Path) -> dict[str, Any]:
    """Load a talkit checkpoint safely (tensors and plain values only)."""
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {path} does not exist",
            hint="train first, or check --run / --checkpoint",
        )
    try:
        payload = load_weights_only(
            path, hint="give a checkpoint written by `talkit train` (RUN/checkpoints/*.pt)"
        )
    except CheckpointError:
        raise
    except Exception as exc:
        raise CheckpointError(
            f"{path} is not a readable talkit checkpoint ({torch_reason(exc)})",
            hint="it may be truncated or from another program",
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} is not a talkit checkpoint of format {CHECKPOINT_FORMAT}",
            hint="re-train with this talkit version",
        )
    return payload
