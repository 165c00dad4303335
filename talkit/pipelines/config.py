"""Typed extraction settings, loadable from the YAML presets in configs/extract/.

A preset names its backbones, each with its own options block (e.g. ``hacs_slowfast_r50``:
``backbones: {slowfast_r50: {}}``, the backbone's defaults; ``thumos14_i3d`` spells out
I3D's). The defaults themselves live only in each backbone's factory. The command line
overrides single fields or options; the resolved settings are what the run records.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from talkit.errors import CheckpointError, ConfigError, InputError
from talkit.locations import absolute_location
from talkit.presets import read_preset, validate_config

FlowMethod = Literal["tvl1", "tvl1_torch", "tvl1_torch_fast", "farneback", "dis"]
_TORCH_FLOWS = ("tvl1_torch", "tvl1_torch_fast")
FLOWS: tuple[str, ...] = get_args(FlowMethod)

# The old, I3D-shaped top-level fields (and the CLI's shorthand flags): each sets the
# backbone option on the right in every selected backbone that has that option.
SHORTHAND: dict[str, str] = {
    "streams": "streams",
    "fps": "fps",
    "clip_len": "clip_len",
    "stride": "stride",
    "input_size": "input_size",
    "resize_short": "resize_short",
    "flow": "flow_method",
    "flow_bound": "flow_bound",
    "flow_quantize_8bit": "flow_quantize_8bit",
    "flow_region": "flow_region",
    "flow_device": "flow_device",
    "flow_batch": "flow_batch",
    "flow_compile": "flow_compile",
}


def backbone_option_names(name: str) -> dict[str, Any]:
    """The options backbone ``name`` takes and their defaults (its factory's keywords)."""
    from talkit.extractors import registry

    return registry.default_options(name)


def apply_shorthand(
    doc: dict[str, Any], sources: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Move old-style top-level fields into the per-backbone blocks of a config document.

    ``backbones: [i3d]`` (a list) becomes ``{i3d: {}}``; each top-level field of
    :data:`SHORTHAND` goes to every selected backbone that has the option (``flow`` is
    ``flow_method``). A field no selected backbone has is an error naming its source.
    """
    doc = dict(doc)
    blocks = doc.get("backbones", {"i3d": {}})
    if isinstance(blocks, list | tuple):
        if len(set(blocks)) != len(blocks):
            raise ValueError(f"backbones must be distinct, got {list(blocks)}")
        blocks = {str(n): {} for n in blocks}
    if not isinstance(blocks, Mapping):
        raise ValueError(
            f"backbones must be a mapping of backbone name to its options, got {blocks!r}"
        )
    blocks = {str(n): dict(o or {}) for n, o in blocks.items()}
    for field, option in SHORTHAND.items():
        if field not in doc:
            continue
        value = doc.pop(field)
        what = (sources or {}).get(field, field)
        if field == "flow" and value not in FLOWS:
            choices = ", ".join(repr(f) for f in FLOWS[:-1]) + f" or {FLOWS[-1]!r}"
            raise ValueError(f"{what}: Input should be {choices}")
        targets = [n for n in blocks if option in backbone_option_names(n)]
        if not targets:
            if field not in (sources or {}):
                what = f"{field} (a top-level field)"
            raise ValueError(
                f"{what} applies to backbones with the option {option!r}, and none of "
                f"{', '.join(blocks)} has it; set options per backbone "
                "(--option BACKBONE.KEY=VALUE, or backbones: {NAME: {KEY: VALUE}})"
            )
        if option == "resize_short" and isinstance(value, str) and value.lower() == "none":
            value = None  # --resize-short none: a square resize
        for name in targets:
            blocks[name][option] = list(value) if isinstance(value, tuple) else value
    doc["backbones"] = blocks
    return doc


class ExtractConfig(BaseModel):
    """What ``talkit extract`` needs besides the videos and the store.

    ``backbones`` maps each backbone of the run to its own options (its factory's
    keywords; left out, an option keeps the backbone's default), e.g.
    ``{i3d: {streams: [rgb, flow], flow_method: tvl1}, slowfast_r50: {}}``. Several
    backbones share one pass over the videos; each writes its own feature set (named
    after the backbone unless ``feature_set`` is given, which then applies to a single
    backbone). A backbone never sees another's options. The old form (``backbones:
    [i3d]`` with I3D's fields at the top level) is still read: see :func:`apply_shorthand`.

    ``checkpoints`` maps ``BACKBONE.STREAM`` (``i3d.flow``), ``BACKBONE`` (a single-stream
    backbone) or, with one backbone, ``STREAM`` to a file. ``weights`` names entries of
    the backbones' weights tables (``slowfast_r50.kinetics400``, or ``NAME=PATH``).
    """

    model_config = ConfigDict(extra="forbid")

    name: str = "custom"
    backbones: dict[str, dict[str, Any]] = Field(default_factory=lambda: {"i3d": {}}, min_length=1)
    frames_fps: float | None = Field(
        default=None, gt=0, description="frame rate of frame-folder inputs (a list may name them)"
    )
    checkpoints: dict[str, str] = Field(default_factory=dict)
    weights: list[str] = Field(default_factory=list)
    random_weights_seed: int | None = None
    batch_size: int = Field(default=8, gt=0)
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

    @model_validator(mode="before")
    @classmethod
    def _old_form(cls, data: Any) -> Any:
        return apply_shorthand(data) if isinstance(data, Mapping) else data

    @field_validator("backbones")
    @classmethod
    def _known_options(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for name, block in value.items():
            try:
                known = backbone_option_names(name)
            except InputError as exc:
                raise ValueError(f"{exc.message} ({exc.hint})") from None
            unknown = sorted(k for k in block if k not in known)
            if unknown:
                raise ValueError(
                    f"backbone {name} has no option(s) {', '.join(unknown)}; its options: "
                    f"{', '.join(known) or 'none'}"
                )
            if block.get("flow_method", known.get("flow_method")) not in (None, *FLOWS):
                raise ValueError(
                    f"backbone {name}: flow_method {block['flow_method']!r} is not one of "
                    f"{', '.join(FLOWS)}"
                )
        return value

    @field_validator("checkpoints")
    @classmethod
    def _absolute(cls, value: dict[str, str]) -> dict[str, str]:
        """Local checkpoint paths made absolute now: Ray workers on other nodes run elsewhere."""
        return {k: absolute_location(v) for k, v in value.items()}

    @model_validator(mode="after")
    def _checks(self) -> ExtractConfig:
        keys: dict[str, str] = {}
        for key, path in self.checkpoints.items():
            name, _, stream = key.partition(".")
            if name not in self.backbones:
                if len(self.backbones) == 1 and not stream:  # STREAM=PATH, one backbone
                    name, stream = next(iter(self.backbones)), key
                else:
                    raise ValueError(
                        f"checkpoint {key}={path} names no backbone of this run "
                        f"({', '.join(self.backbones)}); use BACKBONE.STREAM=PATH, e.g. "
                        "i3d.flow=flow_imagenet.pt, or BACKBONE=PATH for a single stream"
                    )
            keys[f"{name}.{stream}" if stream else name] = path
        object.__setattr__(self, "checkpoints", keys)
        for text in self.weights:
            wname = text.partition("=")[0].strip()
            owner = wname.partition(".")[0]
            if owner not in self.backbones:
                raise ValueError(
                    f"weights {wname} are for backbone {owner}, which this run does not "
                    f"extract ({', '.join(self.backbones)})"
                )
        for name in self.backbones:
            opts = self.options_for(name, resolve=False)
            flow_device = opts.get("flow_device", "auto")
            if flow_device == "cuda" and opts.get("flow_method") not in _TORCH_FLOWS:
                raise ValueError(
                    f"{name}: flow_device cuda (--flow-device) needs a torch flow (--flow "
                    f"tvl1_torch), not {opts.get('flow_method')!r}: OpenCV's flows run on the CPU"
                )
            if flow_device == "cuda" and self.device != "cuda":
                raise ValueError(
                    "flow_device cuda (--flow-device) needs device cuda (--device cuda): only "
                    "then do workers get a GPU"
                )
        return self

    def options_for(self, name: str, *, resolve: bool = True) -> dict[str, Any]:
        """Keywords for ``talkit.extractors.get(name, **options)``: this backbone's block,
        with ``flow_device: auto`` resolved to the run's device for the torch flows."""
        block = dict(self.backbones[name])
        if "streams" in block:
            block["streams"] = tuple(block["streams"])
        if resolve and "flow_device" in backbone_option_names(name):
            method = block.get("flow_method", backbone_option_names(name).get("flow_method"))
            device = block.get("flow_device") or "auto"
            if method not in _TORCH_FLOWS:
                block["flow_device"] = None if device == "auto" else device
            else:
                block["flow_device"] = self.device if device == "auto" else device
        elif not resolve:
            defaults = backbone_option_names(name)
            block = {**{k: v for k, v in defaults.items() if k.startswith("flow")}, **block}
            block.setdefault("streams", defaults.get("streams", ("rgb",)))
        return block

    def torch_flow_on_cpu(self) -> bool:
        """Whether some backbone's flow stream runs the torch TV-L1 on the CPU (it then
        needs the worker's CPU threads, even on a GPU worker)."""
        for name in self.backbones:
            opts = self.options_for(name, resolve=False)
            if "flow" not in opts.get("streams", ()) or opts.get("flow_method") not in _TORCH_FLOWS:
                continue
            if self.options_for(name)["flow_device"] == "cpu":
                return True
        return False

    def checkpoints_for(self, name: str, streams: Sequence[str]) -> dict[str, str]:
        """``{stream: file}`` for backbone ``name`` from ``checkpoints`` and ``weights``.

        ``weights`` are looked up in the weights tables (and their files checked against
        the known sha256); a missing file says where to download it.
        """
        from talkit.extractors.weights import parse_weights_arg, resolve_weights

        out: dict[str, str] = {}
        for key, path in self.checkpoints.items():
            owner, _, stream = key.partition(".")
            if owner != name:
                continue
            if not stream:
                if len(streams) != 1:
                    raise CheckpointError(
                        f"--checkpoint {name}=PATH is for a single-stream backbone; {name} "
                        f"computes {', '.join(streams)} here",
                        hint=f"name the stream: --checkpoint {name}.{streams[0]}=PATH",
                    )
                stream = streams[0]
            out[stream] = path
        for text in self.weights:
            wname, path = parse_weights_arg(text)
            if wname.partition(".")[0] != name:
                continue
            entry, file = resolve_weights(wname, path)
            if entry.stream not in streams:
                raise InputError(
                    f"--weights {wname} are for the {entry.stream} stream, which {name} does "
                    f"not compute here (its streams: {', '.join(streams)})",
                    hint=f"leave it out, or add the stream (--option {name}.streams=[...])",
                )
            out[entry.stream] = str(file)
        return out

    def checkpoint_files(self) -> list[str]:
        """Every checkpoint file the run reads (for the cluster's start-up checks)."""
        return list(self.checkpoints.values()) + [
            p for _, p in (t.partition("=")[::2] for t in self.weights) if p
        ]


def load_extract_config(
    path_or_name: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    sources: dict[str, str] | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> ExtractConfig:
    """A preset or YAML file (or the defaults), with ``overrides`` applied, validated.

    ``overrides`` are config fields; ``backbones`` given as a list selects those backbones
    (keeping the preset's options for the ones it has), and the :data:`SHORTHAND` fields
    (``input_size``, ``flow``...) go to every selected backbone with that option.
    ``options`` sets single options of one backbone (``{"slowfast_r50": {"input_size":
    64}}``, from ``--option slowfast_r50.input_size=64``). ``sources`` names the
    command-line text behind each override (``{"flow": "--flow tvl2"}``): an invalid
    override is reported against it, not against the preset.
    """
    doc: dict[str, Any] = {}
    where = "<defaults>"
    if path_or_name is not None:
        doc, where = read_preset("extract", path_or_name)
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    named = {k: v for k, v in (sources or {}).items() if k in given}
    try:
        doc = apply_shorthand(doc)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    selected = given.pop("backbones", None)
    if selected is not None:
        if not isinstance(selected, Mapping) and len(set(selected)) != len(selected):
            flag = named.get("backbones", "backbones")
            raise ConfigError(f"{flag}: entries must be distinct, got {list(selected)}")
        if isinstance(selected, Mapping):
            doc["backbones"] = {str(n): dict(o or {}) for n, o in selected.items()}
        else:
            doc["backbones"] = {str(n): doc["backbones"].get(n, {}) for n in selected}
    shorthand = {k: given.pop(k) for k in list(given) if k in SHORTHAND}
    try:
        doc = apply_shorthand({**doc, **shorthand}, named)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    for name, block in (options or {}).items():
        if name not in doc["backbones"]:
            raise ConfigError(
                f"--option {name}.…: {name} is not a backbone of this run "
                f"({', '.join(doc['backbones'])})",
                hint="select it with --backbone, or address one of those",
            )
        doc["backbones"][name].update(block)
    doc.update(given)
    return validate_config(ExtractConfig, doc, where, "extract", sources=named)
