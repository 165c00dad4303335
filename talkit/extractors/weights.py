"""Known public checkpoints, as data: where each comes from and how talkit finds it locally.

timm keeps pretrained configurations apart from architectures; talkit does the same. Each
backbone module declares a tuple of :class:`Weights` next to its network and registers it
with ``@register_backbone(name, weights=...)``. Nothing is downloaded: a user names a
checkpoint (``--weights slowfast_r50.kinetics400``), talkit looks for its file in the
weights folder (``$TALKIT_WEIGHTS``, default ``~/.cache/talkit/weights``) or takes the
path given with ``NAME=PATH``, checks the file's sha256 when the table knows it, and
otherwise says exactly where to download it.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from talkit.errors import CheckpointError, InputError

WEIGHTS_ENV = "TALKIT_WEIGHTS"


class Weights(BaseModel):
    """One public checkpoint of one backbone stream.

    ``name`` is ``<backbone>.<tag>`` (``i3d.rgb_imagenet``, ``slowfast_r50.kinetics400``);
    ``sha256`` is None where it has not been verified from the published file (never
    guessed); ``sha256_prefix`` is what the publisher's file name states of it where the
    full hash is unknown (OpenMMLab names files ``<name>-<first 8 hex of the
    sha256>.pth``); ``layout`` says what the file holds, for messages about wrong files.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    backbone: str
    stream: str = "rgb"
    url: str
    file_name: str
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    sha256_prefix: str | None = Field(default=None, pattern=r"^[0-9a-f]{8,63}$")
    licence: str
    layout: str

    @model_validator(mode="after")
    def _prefix_agrees_with_the_hash(self) -> Weights:
        if self.sha256 and self.sha256_prefix and not self.sha256.startswith(self.sha256_prefix):
            raise ValueError(f"{self.name}: sha256 does not start with its sha256_prefix")
        return self

    def how_to_get(self, folder: Path) -> str:
        """One sentence: where to download the file and how to give it to talkit."""
        return (
            f"download {self.url} into {folder}/ (or set ${WEIGHTS_ENV}), or pass "
            f"--weights {self.name}=PATH"
        )


def weights_folder() -> Path:
    """Where ``--weights NAME`` looks for files: ``$TALKIT_WEIGHTS`` or ~/.cache/talkit/weights."""
    env = os.environ.get(WEIGHTS_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "talkit" / "weights"


def all_weights() -> dict[str, Weights]:
    """Every registered table entry by name (importing the built-in backbones first)."""
    from talkit.extractors import registry

    return registry.weights_tables()


def find_weights(name: str) -> Weights:
    """The table entry called ``name``; an InputError listing the known ones otherwise."""
    table = all_weights()
    if name not in table:
        raise InputError(
            f"unknown weights {name!r}",
            hint=f"known: {', '.join(sorted(table))}; or give a file with --checkpoint",
        )
    return table[name]


def resolve_weights(name: str, path: str | Path | None = None) -> tuple[Weights, Path]:
    """The table entry ``name`` and its local file, checked against the known sha256 (or,
    where only the published file name's prefix of it is known, against that prefix).

    ``path`` None looks for the entry's file name in :func:`weights_folder`; a missing
    file is a CheckpointError that says where to download it and how to pass it.
    """
    from talkit.extractors.checkpoints import file_sha256

    entry = find_weights(name)
    folder = weights_folder()
    file = Path(path).expanduser() if path is not None else folder / entry.file_name
    if not file.is_file():
        raise CheckpointError(
            f"weights {name}: {file} does not exist; talkit downloads nothing",
            hint=entry.how_to_get(folder),
        )
    if entry.sha256 is not None:
        digest = file_sha256(file)
        if digest != entry.sha256:
            raise CheckpointError(
                f"weights {name}: {file} has sha256 {digest}, not the published "
                f"{entry.sha256} of {entry.file_name}",
                hint=f"download it again from {entry.url}",
            )
    elif entry.sha256_prefix is not None:
        digest = file_sha256(file)
        if not digest.startswith(entry.sha256_prefix):
            raise CheckpointError(
                f"weights {name}: {file} has sha256 {digest}, which does not start with "
                f"{entry.sha256_prefix}, the prefix in the published file's name "
                f"({entry.file_name}; talkit's table has no full hash for it)",
                hint=f"download it again from {entry.url}",
            )
    return entry, file


def parse_weights_arg(text: str) -> tuple[str, str | None]:
    """``"NAME"`` or ``"NAME=PATH"`` -> (name, path or None)."""
    name, sep, path = text.partition("=")
    name = name.strip()
    if not name or (sep and not path.strip()):
        raise InputError(
            f"--weights {text!r} is not NAME or NAME=PATH",
            hint="e.g. --weights slowfast_r50.kinetics400 or --weights i3d.rgb_imagenet=rgb.pt",
        )
    return name, path.strip() if sep else None
