"""YAML presets shipped in the package (talkit/configs/<kind>/): found by name or path, read, validated.

Extraction (``extract``) and training (``train``) keep one preset per paper setting. They
live inside the package and are read through ``importlib.resources``, so an installed
wheel has them exactly as a checkout does. Both kinds are looked up, read and turned into
one ConfigError line the same way; only how overrides apply differs, so that stays with
each config.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from talkit.errors import ConfigError

KINDS = ("extract", "train")
Config = TypeVar("Config", bound=BaseModel)


@dataclass(frozen=True)
class Preset:
    """One shipped preset: its kind, name, first comment line and where it is installed."""

    kind: str
    name: str
    summary: str
    location: str


def _folder(kind: str) -> Traversable:
    if kind not in KINDS:
        raise ConfigError(f"unknown preset kind {kind!r}", hint=f"kinds: {', '.join(KINDS)}")
    return resources.files("talkit.configs").joinpath(kind)


def _shipped(kind: str) -> dict[str, Traversable]:
    folder = _folder(kind)
    if not folder.is_dir():
        return {}
    return {
        f.name.removesuffix(".yaml"): f
        for f in folder.iterdir()
        if f.is_file() and f.name.endswith(".yaml")
    }


def preset_names(kind: str) -> list[str]:
    """The names of the presets shipped for ``kind`` (``extract`` or ``train``)."""
    return sorted(_shipped(kind))


def list_presets(kind: str | None = None) -> list[Preset]:
    """Every shipped preset (of one kind, or all), with the first line of its header comment."""
    out = []
    for k in (kind,) if kind else KINDS:
        for name, f in sorted(_shipped(k).items()):
            out.append(Preset(k, name, _first_sentence(f.read_text()), str(f)))
    return out


def _first_sentence(text: str, limit: int = 90) -> str:
    """The start of a preset's leading comment block, up to its first stop: a one-line summary."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    sentence = " ".join(lines)
    for stop in (". ", ": ", " ("):  # up to the first full stop, colon or aside
        sentence = sentence.split(stop)[0]
    sentence = sentence.rstrip(".")
    return sentence if len(sentence) <= limit else sentence[: limit - 1].rstrip() + "…"


def find_preset(kind: str, path_or_name: str | Path) -> tuple[str, str]:
    """The preset's text and where it came from: a YAML file, or a shipped preset's name."""
    p = Path(path_or_name).expanduser()
    if p.is_file():
        return p.read_text(), str(p)
    shipped = _shipped(kind)
    bare = str(path_or_name)
    if bare in shipped:
        return shipped[bare].read_text(), f"preset {bare}"
    what = "no such file" if p.suffix in (".yaml", ".yml") or len(p.parts) > 1 else "no preset"
    raise ConfigError(
        f"{kind} config {bare!r}: {what}",
        hint=f"give a YAML file, or one of the presets: {', '.join(sorted(shipped)) or 'none found'}",
    )


def read_preset(kind: str, path_or_name: str | Path) -> tuple[dict[str, Any], str]:
    """The preset's top-level mapping and where it came from (for error messages)."""
    text, where = find_preset(kind, path_or_name)
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML ({exc})") from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: expected a mapping at the top level")
    return doc, where


def _flag_for(loc: str, sources: Mapping[str, str]) -> tuple[str, str] | None:
    """The command-line text that set field ``loc`` (or a section above it), and its key."""
    for key in sorted(sources, key=len, reverse=True):  # the most specific field first
        if loc == key or loc.startswith(key + "."):
            return sources[key], key
    return None


def validate_config(
    model: type[Config],
    doc: dict[str, Any],
    where: str,
    kind: str,
    *,
    sources: Mapping[str, str] | None = None,
) -> Config:
    """``model`` built from ``doc``; the first problem becomes one ConfigError line.

    ``sources`` maps dotted fields set on the command line to the text that set them
    (``{"flow": "--flow tvl2"}``), so that a bad value is blamed on its flag, not on the
    preset file it was applied to.
    """
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        errors = exc.errors()
        err = dict(errors[0])
        err["msg"] = str(err["msg"]).removeprefix("Value error, ")  # pydantic's wrapper
        loc = ".".join(str(x) for x in err["loc"])
        count = f"{len(errors)} problem(s)"
        flag = _flag_for(loc, sources or {}) if loc else None
        if flag is not None:
            text, key = flag
            raise ConfigError(
                f"{text}: {err['msg']}" if loc == key else f"{text}: {loc}: {err['msg']}",
                hint=f"{count}; see `talkit {kind} --help`, and `talkit presets --show NAME` "
                "for the fields and their defaults",
            ) from exc
        raise ConfigError(
            f"{where}: {loc}: {err['msg']}" if loc else f"{where}: {err['msg']}",
            hint=f"{count}; see the {kind} presets (`talkit presets "
            f"{kind}`, `talkit presets --show NAME`) for the fields and their defaults",
        ) from exc
