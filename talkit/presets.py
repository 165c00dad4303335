"""YAML presets in configs/<kind>/: found by name or path, read, and validated.

Extraction (configs/extract/) and training (configs/train/) keep one preset per paper
setting. Both look them up, read them and turn pydantic's errors into one ConfigError
line the same way; only how overrides apply differs, so that stays with each config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from talkit.errors import ConfigError

REPO_CONFIGS = Path(__file__).resolve().parents[1] / "configs"
Config = TypeVar("Config", bound=BaseModel)


def preset_names(kind: str) -> list[str]:
    """The preset names shipped in configs/<kind>/."""
    folder = REPO_CONFIGS / kind
    return sorted(q.stem for q in folder.glob("*.yaml")) if folder.is_dir() else []


def resolve_preset(kind: str, path_or_name: str | Path) -> Path:
    """A YAML path, or a preset name like ``lgbm_thumos14`` looked up in configs/<kind>/."""
    p = Path(path_or_name).expanduser()
    if p.is_file():
        return p
    candidate = REPO_CONFIGS / kind / f"{p.stem}.yaml"
    if candidate.is_file():
        return candidate
    raise ConfigError(
        f"{kind} config {str(path_or_name)!r} is neither a file nor a preset",
        hint=f"presets: {', '.join(preset_names(kind)) or 'none found'}",
    )


def read_preset(kind: str, path_or_name: str | Path) -> tuple[dict[str, Any], str]:
    """The preset's top-level mapping and where it came from (for error messages)."""
    path = resolve_preset(kind, path_or_name)
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return doc, str(path)


def validate_config(model: type[Config], doc: dict[str, Any], where: str, kind: str) -> Config:
    """``model`` built from ``doc``; the first problem becomes one ConfigError line."""
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        raise ConfigError(
            f"{where}: {loc}: {err['msg']}",
            hint=f"{len(exc.errors())} problem(s); see the presets in configs/{kind}/ "
            "for the fields and their defaults",
        ) from exc
