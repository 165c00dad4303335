"""Loading torch files safely: tensors and plain values only, and a plain refusal otherwise.

Every checkpoint talkit reads (backbone weights, training runs) goes through
``torch.load(weights_only=True)``. When a file holds other Python objects, torch refuses
it with a message that advises re-running with ``weights_only=False``, which would let
the file run arbitrary code. talkit never does that, so it never relays that advice:
the refusal becomes one CheckpointError that says what the file holds and why it is not
loaded.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

from talkit.errors import CheckpointError

# torch names the first object it refused: "Unsupported global: GLOBAL argparse.Namespace"
_REFUSED_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")
# What torch's weights-only unpickler says when the file holds an object it will not build
# (as opposed to bytes that are not a pickle at all: "Unsupported operand 110").
_OBJECT_REFUSALS = ("GLOBAL ", "allowlisted", "unrecognized function")
_DETAIL = "WeightsUnpickler error:"


def is_weights_only_refusal(exc: BaseException) -> bool:
    """True when ``exc`` is torch refusing an object in the file (a class, a function)."""
    text = str(exc)
    return isinstance(exc, pickle.UnpicklingError) and any(r in text for r in _OBJECT_REFUSALS)


def torch_reason(exc: BaseException) -> str:
    """The gist of a torch.load failure in one line, without torch's advice around it.

    A weights-only failure is wrapped in paragraphs that suggest ``weights_only=False``;
    only the unpickler's own reason (e.g. ``Unsupported operand 110``) is kept.
    """
    text = str(exc)
    if _DETAIL in text:
        text = text.split(_DETAIL, 1)[1]
        text = text.split("Check the documentation of torch.load", 1)[0]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else 'no detail'}"


def refusal_error(path: str | Path, exc: BaseException, *, hint: str) -> CheckpointError:
    """The one-line error for a file torch refused under ``weights_only=True``."""
    found = _REFUSED_GLOBAL.search(str(exc))
    what = f" (e.g. {found.group(1)})" if found else ""
    return CheckpointError(
        f"checkpoint {path} contains objects other than tensors{what}; talkit does not load "
        "such files, for safety (unpickling them can run arbitrary code)",
        hint=hint,
    )


def load_weights_only(path: str | Path, *, hint: str) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU; a refused file is a CheckpointError.

    ``hint`` says what to do instead (e.g. re-save just the state dict). Other failures
    (truncated, not a torch file) propagate for the caller to word.
    """
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if is_weights_only_refusal(exc):
            raise refusal_error(path, exc, hint=hint) from None
        raise
