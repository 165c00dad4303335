"""Faster CPU inference for any backbone's torch module, with the features unchanged.

A plain eager forward of a 3-D CNN on the CPU wastes time in two places that need no
change to the model's code:

- **Memory layout.** oneDNN's 3-D convolutions run fastest on channels-last tensors
  (``torch.channels_last_3d``, NDHWC). In the default NCDHW layout every convolution
  reorders its input and output. Converting the weights once and the input per batch
  removes those reorders.
- **BatchNorm after a convolution.** In eval mode a BatchNorm is an affine map per
  channel, so it folds into the convolution's weights and bias (``fuse_conv_bn_eval``).
  That removes one pass over every activation and one activation-sized buffer (the
  BatchNorm's output), which is most of the peak memory of a wide early layer.

Measured on 2 cores with I3D RGB (random weights, 16 and 64-frame 224 px snippets), the
two together took the forward from 1.0 to about 0.5-0.6 of the eager time; see
docs/performance.md and ``benchmarks/i3d.py``. Features move by ~3e-7 relative (float
rounding); the default path is checked against the eager forward to 1e-5 relative
(tests/test_inference.py) and stays independent of the batch size (>= 2), like eager.

Folding is found, not declared: one small probe forward under a ``TorchFunctionMode``
records every convolution call and every BatchNorm call. A BatchNorm folds into a
convolution when its input is that convolution's output and nothing else reads it, and
its weights are eval-mode statistics. The folded copy is then checked against the
original on the probe; if they differ by more than :data:`FOLD_RTOL` the fold is dropped.
The original module is never changed: a prepared copy is kept per module (and rebuilt
when its parameters change in place).

``torch.compile`` is not used by default: on a 2-core machine it compiled the I3D graph
for minutes per input shape, longer than many videos take to extract.
"""

from __future__ import annotations

import copy
import weakref
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights
from torch.overrides import TorchFunctionMode

from talkit.extractors.batching import release_large_blocks

FOLD_RTOL = 1e-6  # relative L2 allowed between the folded and the original probe output
PROBE_SIDE = 64  # the probe forward uses a centre crop of at most this many pixels
PROBE_FRAMES = 16  # ... and at most this many frames, where the model accepts that

_CONVS = {
    torch.conv1d: 1,
    torch.conv2d: 2,
    torch.conv3d: 3,
    torch.nn.functional.conv1d: 1,
    torch.nn.functional.conv2d: 2,
    torch.nn.functional.conv3d: 3,
}


@dataclass(frozen=True)
class InferenceOptions:
    """What :func:`prepare_for_inference` changes. Each keeps features within 1e-5."""

    channels_last: bool = True  # NDHWC weights and inputs for 5-D convolutions
    fold_batch_norm: bool = True  # fold eval BatchNorms into the convolution before them


DEFAULT_OPTIONS = InferenceOptions()


class _Recorder(TorchFunctionMode):
    """Records convolution and batch-norm calls, and every tensor each call reads."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_out: dict[int, tuple[torch.Tensor, torch.Tensor | None]] = {}
        self.bn_calls: list[tuple[int, tuple[Any, ...]]] = []
        self.reads: dict[int, int] = {}  # tensor id -> calls that read it
        self.keep: list[torch.Tensor] = []  # so ids stay unique during the probe

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if _has_tensor(out):  # a computation (not .dim(), .shape...): count what it read
            for a in list(args) + list(kwargs.values()):
                for t in a if isinstance(a, list | tuple) else (a,):
                    if isinstance(t, torch.Tensor):
                        self.reads[id(t)] = self.reads.get(id(t), 0) + 1
        if isinstance(out, torch.Tensor):
            self.keep.append(out)
            if func in _CONVS:
                weight = args[1] if len(args) > 1 else kwargs.get("weight")
                bias = args[2] if len(args) > 2 else kwargs.get("bias")
                self.conv_out[id(out)] = (weight, bias)
            elif func is torch.nn.functional.batch_norm:
                self.bn_calls.append((id(args[0]), args[1:]))
        return out


def _has_tensor(out: Any) -> bool:
    if isinstance(out, torch.Tensor):
        return True
    return isinstance(out, list | tuple) and any(isinstance(t, torch.Tensor) for t in out)


def _owners(module: nn.Module) -> tuple[dict[int, tuple[nn.Module, str]], dict[int, str]]:
    """Parameter/buffer id -> (owning module, attribute); module id -> qualified name."""
    owners: dict[int, tuple[nn.Module, str]] = {}
    names: dict[int, str] = {}
    for name, mod in module.named_modules():
        names[id(mod)] = name
        for attr, p in list(mod.named_parameters(recurse=False)) + list(
            mod.named_buffers(recurse=False)
        ):
            owners.setdefault(id(p), (mod, attr))
    return owners, names


def _set_submodule(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, attr, new)


def fold_batch_norms(module: nn.Module, probe: torch.Tensor, forward: str) -> int:
    """Fold, in place, each eval BatchNorm that only follows a convolution; return how many.

    ``probe`` is an input ``getattr(module, forward)`` accepts; the fold pairs are read
    from the calls that forward makes (see the module docstring).
    """
    rec = _Recorder()
    with torch.inference_mode(), rec:
        getattr(module, forward)(probe)
    owners, names = _owners(module)
    folded = 0
    for conv_id, bn_args in rec.bn_calls:
        if conv_id not in rec.conv_out or rec.reads.get(conv_id, 0) != 1:
            continue
        mean, var, _gamma, _beta, training = (list(bn_args) + [None] * 5)[:5]
        weight, bias = rec.conv_out[conv_id]
        if training or mean is None or var is None or id(weight) not in owners:
            continue
        bn_owner = owners.get(id(mean))
        if bn_owner is None or not isinstance(bn_owner[0], nn.modules.batchnorm._BatchNorm):
            continue
        bn = bn_owner[0]
        if bn.training or not bn.track_running_stats:
            continue
        conv, w_attr = owners[id(weight)]
        if w_attr != "weight" or not hasattr(conv, "bias"):
            continue
        if bias is not None and owners.get(id(bias)) != (conv, "bias"):
            continue
        with torch.no_grad():
            new_w, new_b = fuse_conv_bn_weights(
                conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias
            )
        conv.weight, conv.bias = new_w, new_b
        _set_submodule(module, names[id(bn)], nn.Identity())
        folded += 1
    return folded


def _probe_inputs(x: torch.Tensor) -> list[torch.Tensor]:
    """Small inputs to find the folds on: two samples of the real batch, centre-cropped to
    at most PROBE_SIDE pixels, first also cut to PROBE_FRAMES frames (a 5-D input), for
    models that accept that; the probes cost a fraction of one batch's forward."""
    p = x[:2]
    if p.shape[0] < 2:
        p = p.expand(2, *p.shape[1:])
    if p.ndim >= 4:
        h, w = p.shape[-2:]
        sh, sw = min(h, PROBE_SIDE), min(w, PROBE_SIDE)
        top, left = (h - sh) // 2, (w - sw) // 2
        p = p[..., top : top + sh, left : left + sw]
    probes = [p.contiguous()]
    if p.ndim == 5 and p.shape[2] > PROBE_FRAMES:
        probes.insert(0, p[:, :, :PROBE_FRAMES].contiguous())
    return probes


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-30))


class PreparedModule:
    """A copy of a module made faster for inference; call it like ``forward``."""

    def __init__(
        self,
        module: nn.Module,
        example: torch.Tensor,
        *,
        forward: str = "forward",
        options: InferenceOptions = DEFAULT_OPTIONS,
    ) -> None:
        self.options = options
        self.forward_name = forward
        if options.fold_batch_norm:
            prepared, self.folded = self._folded(module, example, forward)
        else:
            prepared, self.folded = copy.deepcopy(module).eval(), 0
        self.channels_last = options.channels_last and example.ndim == 5
        if self.channels_last:
            prepared = prepared.to(memory_format=torch.channels_last_3d)
        self.module = prepared

    @staticmethod
    def _folded(module: nn.Module, example: torch.Tensor, forward: str) -> tuple[nn.Module, int]:
        """A copy with its BatchNorms folded, checked on a probe; unfolded if that fails."""
        for probe in _probe_inputs(example):
            prepared = copy.deepcopy(module).eval()
            try:
                with torch.inference_mode():
                    want = getattr(module, forward)(probe)
                folded = fold_batch_norms(prepared, probe, forward)
                with torch.inference_mode():
                    got = getattr(prepared, forward)(probe)
            except Exception:  # a model this probe does not fit: try the next one
                continue
            if _rel(got, want) <= FOLD_RTOL:
                return prepared, folded
            break
        return copy.deepcopy(module).eval(), 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        with torch.inference_mode():
            return getattr(self.module, self.forward_name)(x)


def prepare_for_inference(
    module: nn.Module,
    example: torch.Tensor,
    *,
    forward: str = "forward",
    options: InferenceOptions = DEFAULT_OPTIONS,
) -> PreparedModule:
    """A faster copy of ``module`` for inputs like ``example`` (see module docstring)."""
    return PreparedModule(module, example, forward=forward, options=options)


_CACHE: weakref.WeakKeyDictionary[nn.Module, tuple[tuple[Any, ...], PreparedModule]] = (
    weakref.WeakKeyDictionary()
)


def _state_key(module: nn.Module, x: torch.Tensor, forward: str) -> tuple[Any, ...]:
    """Changes when a parameter is changed in place, moved, or the input kind changes."""
    versions = tuple(p._version for p in module.parameters())
    buffers = tuple(b._version for b in module.buffers())
    first = next(module.parameters(), None)
    device = first.device if first is not None else x.device
    return (forward, x.ndim, x.dtype, str(device), versions, buffers, module.training)


def fast_forward(
    module: nn.Module,
    x: torch.Tensor,
    *,
    forward: str = "forward_features",
    options: InferenceOptions = DEFAULT_OPTIONS,
) -> torch.Tensor:
    """``getattr(module, forward)(x)`` through a prepared copy, built once per module.

    The drop-in for a backbone's eager forward; a module in training mode runs as is.
    """
    if module.training:
        return getattr(module, forward)(x)
    key = (*_state_key(module, x, forward), options)
    hit = _CACHE.get(module)
    if hit is None or hit[0] != key:
        release_large_blocks()  # activations go back to the OS between forwards
        hit = (key, prepare_for_inference(module, x, forward=forward, options=options))
        _CACHE[module] = hit
    return hit[1](x)
