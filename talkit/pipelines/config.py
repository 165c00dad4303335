"""Typed extraction settings, loadable from the YAML presets in configs/extract/.

A preset holds the paper defaults of one setting (e.g. ``thumos14_i3d``: I3D at 25 fps,
16-frame non-overlapping snippets, short side 256 then a 224 centre crop, TV-L1 flow). The
command line overrides single fields; the resolved settings are what the run records.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from talkit.locations import absolute_location
from talkit.presets import read_preset, validate_config

FlowMethod = Literal["tvl1", "tvl1_torch", "tvl1_torch_fast", "farneback", "dis"]
_TORCH_FLOWS = ("tvl1_torch", "tvl1_torch_fast")


class ExtractConfig(BaseModel):
    """What ``talkit extract`` needs besides the videos and the store.

    ``backbones`` is a list so that several backbones can share one pass over the videos;
    each writes its own feature set (named after the backbone unless ``feature_set`` is
    given, which then applies to a single backbone).
    """

    model_config = ConfigDict(extra="forbid")

    name: str = "custom"
    backbones: list[str] = Field(default_factory=lambda: ["i3d"], min_length=1)
    streams: list[str] = Field(default_factory=lambda: ["rgb", "flow"], min_length=1)
    fps: float = Field(default=25.0, gt=0)
    clip_len: int = Field(default=16, gt=0)
    stride: int = Field(default=16, gt=0)
    input_size: int = Field(default=224, gt=0)
    resize_short: int | None = Field(default=256, gt=0)
    flow: FlowMethod = "tvl1"
    flow_bound: float = Field(default=20.0, gt=0)
    flow_quantize_8bit: bool = False
    flow_region: Literal["frame", "crop"] = "frame"
    flow_device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="where the torch TV-L1 runs (auto: the model's device)"
    )
    flow_batch: int | None = Field(
        default=None, gt=0, description="torch TV-L1 pairs per batch (default: sized by memory)"
    )
    flow_compile: bool = Field(default=True, description="torch.compile the torch TV-L1")
    frames_fps: float | None = Field(
        default=None, gt=0, description="frame rate of frame-folder inputs (a list may name them)"
    )
    checkpoints: dict[str, str] = Field(default_factory=dict)
    random_weights_seed: int | None = None
    batch_size: int | Literal["auto"] = Field(
        default="auto",
        description="snippets per forward; auto: bounded by the worker's memory share "
        "(talkit.extractors.batching)",
    )
    device: Literal["cpu", "cuda"] = "cpu"
    num_workers: int | None = Field(default=None, gt=0)
    torch_threads: int | None = Field(
        default=None, gt=0, description="per worker (default: its share of the CPUs)"
    )
    niceness: int = Field(
        default=0,
        ge=-20,
        le=19,
        description="CPU niceness of the extraction workers (Ray's own default is 15)",
    )
    commit_every: int = Field(default=100, gt=0, description="videos per periodic commit")
    commit_interval_s: float = Field(default=300.0, gt=0, description="seconds per periodic commit")
    max_failures: int | None = Field(default=None, ge=0)
    max_consecutive_failures: int = Field(
        default=20, ge=0, description="stop after N failures in a row of one error type (0: never)"
    )
    max_attempts: int = Field(default=3, gt=0, description="tries per video when workers die")

    @field_validator("checkpoints")
    @classmethod
    def _absolute(cls, value: dict[str, str]) -> dict[str, str]:
        """Local checkpoint paths made absolute now: Ray workers on other nodes run elsewhere."""
        return {k: absolute_location(v) for k, v in value.items()}

    @field_validator("batch_size", mode="before")
    @classmethod
    def _batch_size(cls, value: Any) -> int | str:
        """A positive number of snippets, or "auto" (one message for every other value)."""
        if value == "auto":
            return value
        try:
            number = int(str(value).strip()) if not isinstance(value, bool) else None
        except ValueError:
            number = None
        if number is None or number < 1:
            raise PydanticCustomError(
                "batch_size", "Input should be greater than 0, or auto (got {value})",
                {"value": value},
            )  # fmt: skip
        return number

    @field_validator("backbones", "streams")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"entries must be distinct, got {value}")
        return value

    @model_validator(mode="after")
    def _flow_device(self) -> ExtractConfig:
        if self.flow_device == "cuda" and self.flow not in _TORCH_FLOWS:
            raise ValueError(
                f"flow_device cuda (--flow-device) needs a torch flow (--flow tvl1_torch), "
                f"not {self.flow!r}: OpenCV's flows run on the CPU"
            )
        if self.flow_device == "cuda" and self.device != "cuda":
            raise ValueError(
                "flow_device cuda (--flow-device) needs device cuda (--device cuda): only "
                "then do workers get a GPU"
            )
        return self

    def resolved_flow_device(self) -> str | None:
        """The torch flow's device ("auto" -> the model's); None for OpenCV's flows."""
        if self.flow not in _TORCH_FLOWS:
            return None
        return self.device if self.flow_device == "auto" else self.flow_device

    def torch_flow_on_cpu(self) -> bool:
        """Whether the flow stream runs the torch TV-L1 on the CPU (it then needs the
        worker's CPU threads, even on a GPU worker)."""
        return "flow" in self.streams and self.resolved_flow_device() == "cpu"

    def backbone_options(self) -> dict[str, Any]:
        """Keywords for ``talkit.extractors.get(name, **options)``."""
        return {
            "streams": tuple(self.streams),
            "input_size": self.input_size,
            "resize_short": self.resize_short,
            "fps": self.fps,
            "clip_len": self.clip_len,
            "stride": self.stride,
            "flow_method": self.flow,
            "flow_bound": self.flow_bound,
            "flow_quantize_8bit": self.flow_quantize_8bit,
            "flow_region": self.flow_region,
            "flow_device": self.resolved_flow_device(),
            "flow_batch": self.flow_batch,
            "flow_compile": self.flow_compile,
        }


def load_extract_config(
    path_or_name: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    sources: dict[str, str] | None = None,
) -> ExtractConfig:
    """A preset or YAML file (or the defaults), with ``overrides`` applied, validated.

    ``sources`` names the command-line text behind each override (``{"flow": "--flow
    tvl2"}``): an invalid override is reported against it, not against the preset.
    """
    doc: dict[str, Any] = {}
    where = "<defaults>"
    if path_or_name is not None:
        doc, where = read_preset("extract", path_or_name)
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    doc.update(given)
    named = {k: v for k, v in (sources or {}).items() if k in given}
    return validate_config(ExtractConfig, doc, where, "extract", sources=named)
