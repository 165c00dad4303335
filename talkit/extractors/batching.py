"""``--batch-size auto``: snippets per forward bounded by memory, not only by count.

A fixed count is wrong in both directions: 8 snippets of 16 frames at 224 px are ~0.5 GB
of I3D activations, 8 snippets of 64 frames are four times that (the 4 GB peak of a
60 s video reported in issue 13), and a GPU with 80 GB could take far more. So the batch
comes from three numbers:

- the backbone's **peak working set per snippet**: measured once per backbone and
  input shape by a forward on the ``meta`` device (no compute, no memory), which
  records every operation's inputs and output; the largest sum is the activation peak.
  The snippet's input tensors are added once per batch the decode queue may hold
  (:data:`QUEUED_BATCHES`), since decoding runs ahead of the forward;
- the worker's **memory share** (Ray's memory per worker, or this machine's available
  memory), of which :data:`MEMORY_FRACTION` goes to batches;
- on the CPU, a **ceiling** (:data:`CPU_BATCH_BUDGET`): past a few hundred MB per batch
  a bigger batch is no faster on the CPU (oneDNN already fills the cores with one
  snippet's convolutions), it only costs memory.

The batch is at least 2 (a batch of one runs as a pair anyway, see I3D's ``extract``)
and at most :data:`MAX_BATCH`. Features do not depend on it (batch sizes >= 2 give
bit-identical features), so ``auto`` changes speed and memory only.
"""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

MEMORY_FRACTION = 0.25  # of a worker's memory share that its batches may take
CPU_BATCH_BUDGET = 640 * 2**20  # bytes per batch on the CPU (see module docstring)
QUEUED_BATCHES = 2  # input batches alive at once: the one queued (multi.py), the forward's
MIN_BATCH = 2
MAX_BATCH = 64

_FOOTPRINT: dict[tuple[Any, ...], int] = {}


class _PeakRecorder(TorchFunctionMode):
    """Largest (inputs + output) bytes of any single operation: the activation peak."""

    def __init__(self) -> None:
        super().__init__()
        self.peak = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        out = _shape_only(func, args, kwargs)
        if out is None:
            out = func(*args, **kwargs)
        outs = out if isinstance(out, list | tuple) else (out,)
        if any(isinstance(t, torch.Tensor) for t in outs):
            total = 0
            for a in (*args, *kwargs.values(), *outs):
                for t in a if isinstance(a, list | tuple) else (a,):
                    if isinstance(t, torch.Tensor) and not isinstance(t, nn.Parameter):
                        total += t.numel() * t.element_size()
            self.peak = max(self.peak, total)
        return out


def _shape_only(func: Any, args: tuple, kwargs: dict) -> torch.Tensor | None:
    """The output of a meta BatchNorm, ``cat`` or ``mean``, made from its shape rule directly.

    Why: their meta kernels are Python decompositions, and the first call of one imports
    ``torch._dynamo`` (about 400 modules: +107 MiB resident for the rest of the process,
    measured), which counts against the very memory ``auto`` budgets for. None: run the
    operation itself (any other operation, or a case these rules do not cover).
    """
    if func is F.batch_norm:
        x = args[0] if args else kwargs.get("input")
        if isinstance(x, torch.Tensor) and x.device.type == "meta":
            return torch.empty_like(x)
    elif func is torch.cat and not kwargs.get("out"):
        parts = args[0] if args else kwargs.get("tensors")
        dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
        if (
            isinstance(parts, list | tuple)
            and parts
            and isinstance(dim, int)
            and all(isinstance(t, torch.Tensor) and t.device.type == "meta" for t in parts)
            and len({(t.dtype, t.ndim) for t in parts}) == 1
        ):
            first = parts[0]
            d = dim % first.ndim
            if all(
                t.shape[:d] + t.shape[d + 1 :] == first.shape[:d] + first.shape[d + 1 :]
                for t in parts
            ):
                shape = (*first.shape[:d], sum(t.shape[d] for t in parts), *first.shape[d + 1 :])
                return torch.empty(shape, dtype=first.dtype, device="meta")
    elif func in (torch.mean, torch.Tensor.mean) and not kwargs.get("dtype"):
        x = args[0] if args else kwargs.get("input")
        dim = args[1] if len(args) > 1 else kwargs.get("dim")
        keep = args[2] if len(args) > 2 else kwargs.get("keepdim", False)
        if isinstance(x, torch.Tensor) and x.device.type == "meta" and x.ndim:
            dims = (dim,) if isinstance(dim, int) else dim
            if isinstance(dims, list | tuple) and dims and all(isinstance(d, int) for d in dims):
                gone = {d % x.ndim for d in dims}
                shape = [
                    1 if i in gone else n for i, n in enumerate(x.shape) if keep or i not in gone
                ]
                return torch.empty(shape, dtype=x.dtype, device="meta")
    return None


def activation_bytes(
    module: nn.Module, input_shape: tuple[int, ...], *, forward: str = "forward"
) -> int:
    """Peak bytes of one operation's inputs and output in a forward of ``input_shape``.

    Runs on the ``meta`` device: shapes only, so it costs milliseconds and no memory.
    """
    params = tuple((n, tuple(p.shape)) for n, p in module.named_parameters())
    key = (type(module).__qualname__, params, tuple(input_shape), forward)
    if key in _FOOTPRINT:
        return _FOOTPRINT[key]
    # A copy on the meta device; the memo keeps deepcopy from copying the real weights.
    memo: dict[int, Any] = {}
    for p in module.parameters():
        memo[id(p)] = nn.Parameter(torch.empty_like(p, device="meta"), requires_grad=False)
    for b in module.buffers():
        memo[id(b)] = torch.empty_like(b, device="meta")
    meta = copy.deepcopy(module, memo).eval()
    x = torch.empty(input_shape, device="meta")
    rec = _PeakRecorder()
    with torch.inference_mode(), rec:
        getattr(meta, forward)(x)
    _FOOTPRINT[key] = rec.peak
    return rec.peak


def snippet_bytes(
    modules: Mapping[str, nn.Module],
    input_shapes: Mapping[str, tuple[int, ...]],
    *,
    forward: str = "forward_features",
) -> int:
    """Bytes one more snippet in a batch costs: activations of the largest stream (streams
    run one after the other) plus every stream's input, once per queued batch."""
    act = 0
    inputs = 0
    for stream, module in modules.items():
        shape = tuple(input_shapes[stream])
        pair = activation_bytes(module, (2, *shape), forward=forward) // 2
        act = max(act, pair)
        n = 1
        for d in shape:
            n *= int(d)
        inputs += n * 4  # float32
    return act + QUEUED_BATCHES * inputs


MMAP_THRESHOLD = 4 * 2**20  # bytes: larger blocks are mapped, and unmapped when freed
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number


def release_large_blocks() -> bool:
    """Make glibc return freed activation-sized blocks to the OS at once (Linux only).

    glibc raises its mmap threshold each time a mapped block is freed (up to 32 MiB), so
    after the first forward the activations of later ones come from the heap, where
    freed blocks stay resident and fragment. Measured with I3D rgb, 64-frame snippets,
    batch 2: peak RSS 1.70 GiB -> 1.48 GiB. A fixed threshold of :data:`MMAP_THRESHOLD`
    keeps every large block mapped. Returns whether it was set.
    """
    import ctypes
    import ctypes.util

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    except (OSError, AttributeError):  # another C library (musl): leave it as it is
        return False


def available_memory() -> int | None:
    """This machine's available memory in bytes (Linux MemAvailable), None if unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError):
        return None


def auto_batch_size(
    per_snippet: int,
    memory_share: int | None,
    *,
    device: str = "cpu",
) -> int:
    """Snippets per forward for ``per_snippet`` bytes each within a worker's memory share."""
    if device.startswith("cuda") and torch.cuda.is_available():
        free, _ = torch.cuda.mem_get_info(torch.device(device))
        budget = free * MEMORY_FRACTION * 2
    else:
        share = memory_share if memory_share else available_memory()
        budget = CPU_BATCH_BUDGET
        if share:
            budget = min(budget, share * MEMORY_FRACTION)
    return int(max(MIN_BATCH, min(MAX_BATCH, budget // max(1, per_snippet))))


class _StreamView(nn.Module):
    """One stream of a network whose ``forward_features`` maps {stream: x} -> {stream: y}."""

    def __init__(self, network: nn.Module, stream: str) -> None:
        super().__init__()
        self.network = network
        self.stream = stream

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.network.forward_features({self.stream: x})[self.stream]


def backbone_snippet_bytes(backbone: Any) -> int:
    """:func:`snippet_bytes` for a talkit backbone, from its spec and its torch module(s)."""
    spec = backbone.spec
    modules = getattr(backbone, "models", None)  # two-stream I3D: one network per stream
    if not isinstance(modules, Mapping):
        modules = {s: _StreamView(backbone.network, s) for s in spec.streams}
    side = spec.input_size
    shapes = {s: (spec.input_channels[s], spec.clip_len, side, side) for s in modules}
    return snippet_bytes(modules, shapes)
