"""The typed training configuration, and YAML presets in configs/train/.

One :class:`RunConfig` says everything a run needs except where the data lives (store URL
and annotation file are command arguments, recorded in the run directory). A preset
names the head and its builder arguments; it never builds objects by string.

Overrides use dotted keys (``train.iterations=200``, ``model.params.cas_dim=512``); the
command line's ``--iterations`` and friends are shorthands for the common ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from talkit.errors import ConfigError
from talkit.presets import read_preset, validate_config


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Strict):
    """Which features, which videos, and how snippets are sampled."""

    feature_sets: list[str] = Field(min_length=1, description="e.g. [thumos14/i3d]")
    streams: str = Field("both", description="rgb, flow, both (rgb+flow), all, or a,b names")
    store_version: str | None = Field(None, description="branch, tag or snapshot to read")
    train_subset: str = Field("train", description="subset name as written, or canonical split")
    test_subset: str = "test"
    val_fraction: float = Field(
        0.1, gt=0, lt=1, description="share of training videos held out for model selection"
    )
    val_seed: int = 0
    sampling: Literal["stratified", "crop"] = "stratified"
    num_segments: int = Field(750, gt=0, description="T: sampled length, or max crop length")
    eval_sampling: Literal["uniform", "full"] = "uniform"
    eval_num_segments: int = Field(750, gt=0)
    standardize: bool = Field(
        False,
        description="standardize each feature dim with the training videos' mean and std "
        "(not in the authors' code; helps features that are not centred)",
    )
    alignment_tolerance_s: float = Field(0.01, ge=0)
    num_workers: int = Field(0, ge=0)
    cache_mb: float = Field(
        2048, ge=0, description="decoded videos kept in memory per loader process (0: none)"
    )


class ModelConfig(_Strict):
    """The head by registered name, the feature dim it expects, and its builder kwargs."""

    head: str = Field(description="basnet or lgbm (see talkit.wtal_heads.head)")
    in_dim: int | None = Field(None, gt=0, description="expected feature dim; None: from store")
    params: dict[str, Any] = Field(default_factory=dict)


class OptimConfig(_Strict):
    name: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(5e-4, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    momentum: float = 0.9


class LoopConfig(_Strict):
    iterations: int = Field(1500, gt=0)
    batch_size: int = Field(16, gt=0)
    seed: int = 0
    device: str = Field("auto", description="cpu, cuda, cuda:N, or auto")
    eval_every: int = Field(100, gt=0, description="validate every N iterations (and at the end)")
    checkpoint_every: int | None = Field(
        None, gt=0, description="also save a resumable checkpoint every N iterations"
    )
    log_every: int = Field(10, gt=0)
    grad_clip: float | None = Field(None, gt=0)


class EvalConfig(_Strict):
    """Detection and scoring: post-processing preset, tIoU thresholds, which split to report."""

    postprocess: str | None = Field(None, description="preset name; None: the head's own")
    postprocess_params: dict[str, Any] = Field(default_factory=dict)
    thresholds: str | list[float] = "thumos14"
    select_metric: str | None = Field(
        None, description="average used for best-checkpoint selection; None: the preset's first"
    )
    predict_split: str | None = Field("test", description="split to predict after training")
    exclude_videos: list[str] = Field(default_factory=list)
    ensemble_nms: float = Field(0.5, gt=0, le=1, description="tIoU of the NMS merging members")
    ensemble_mode: Literal["merge", "average"] = Field(
        "merge",
        description="merge: pool the members' detections, then NMS; average: average their "
        "class scores and CAS, then post-process once",
    )


class RunConfig(_Strict):
    """Everything a training run needs except the store URL and annotation file."""

    name: str = "run"
    data: DataConfig
    model: ModelConfig
    optim: OptimConfig = Field(default_factory=OptimConfig)
    train: LoopConfig = Field(default_factory=LoopConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    ensemble: bool = Field(
        False, description="one model per feature set; detections merged and NMS'd"
    )

    @model_validator(mode="after")
    def _check(self) -> RunConfig:
        if self.ensemble and len(self.data.feature_sets) < 2:
            raise ValueError("ensemble: true needs at least two data.feature_sets")
        return self

    def members(self) -> list[RunConfig]:
        """One config per model: each feature set alone when ensembling, else itself."""
        if not self.ensemble:
            return [self]
        out = []
        for key in self.data.feature_sets:
            data = self.data.model_copy(update={"feature_sets": [key]})
            model = self.model.model_copy(update={"in_dim": None})
            out.append(
                self.model_copy(
                    update={"data": data, "model": model, "ensemble": False, "name": key}
                )
            )
        return out


def _set_dotted(doc: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = doc
    for p in parts[:-1]:
        nxt = node.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"override {key!r}: {p!r} is not a section")
        node = nxt
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """``"train.iterations=200"`` -> ``("train.iterations", 200)`` (value parsed as YAML)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not KEY=VALUE", hint="e.g. train.lr=3e-4")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({exc})") from exc
    return key.strip(), value


def load_config(
    path_or_name: str | Path | dict[str, Any],
    overrides: dict[str, Any] | None = None,
    *,
    sources: dict[str, str] | None = None,
) -> RunConfig:
    """Read a YAML preset (or a dict), apply dotted overrides, validate.

    ``sources`` names the command-line text behind each override (``{"train.iterations":
    "--iterations 0"}``): an invalid override is reported against it, not the preset.
    """
    if isinstance(path_or_name, dict):
        doc, where = dict(path_or_name), "<dict>"
    else:
        doc, where = read_preset("train", path_or_name)
    for key, value in (overrides or {}).items():
        _set_dotted(doc, key, value)
    named = {k: v for k, v in (sources or {}).items() if k in (overrides or {})}
    return validate_config(RunConfig, doc, where, "train", sources=named)


def dump_config(config: RunConfig) -> str:
    """The resolved config as YAML (what the run directory records)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
