"""``--batch-size auto``'s footprint: the shape-only rules agree with PyTorch's meta kernels,
give the same footprint, and keep ``torch._dynamo`` (~100 MiB resident) out of the process."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from talkit.extractors import batching, build_backbone


def _meta(*shape: int) -> torch.Tensor:
    return torch.empty(shape, device="meta")


CASES: list[tuple[Any, tuple, dict]] = [
    (F.batch_norm, (_meta(2, 4, 3, 5, 5), _meta(4), _meta(4), _meta(4), _meta(4)), {}),
    (torch.cat, ([_meta(2, 4, 3), _meta(2, 6, 3)], 1), {}),
    (torch.cat, ([_meta(2, 4, 3), _meta(2, 4, 5)],), {"dim": -1}),
    (torch.cat, ([_meta(1, 3), _meta(2, 3)],), {}),
    (torch.Tensor.mean, (_meta(2, 8, 1, 1, 1),), {"dim": (2, 3, 4)}),
    (torch.Tensor.mean, (_meta(2, 8, 3, 4), -1, True), {}),
    (torch.mean, (_meta(2, 8, 3),), {"dim": 1}),
]


@pytest.mark.parametrize(("func", "args", "kwargs"), CASES)
def test_shape_rules_match_the_meta_kernels(func: Any, args: tuple, kwargs: dict) -> None:
    made = batching._shape_only(func, args, kwargs)
    assert made is not None, "a case the rules are meant to cover"
    real = func(*args, **kwargs)
    assert (made.shape, made.dtype, made.device) == (real.shape, real.dtype, real.device)


def test_other_cases_run_the_operation_itself() -> None:
    assert batching._shape_only(torch.cat, ([torch.zeros(2, 3)],), {}) is None  # not meta
    assert batching._shape_only(torch.Tensor.mean, (_meta(2, 3),), {}) is None  # all dims
    assert batching._shape_only(F.relu, (_meta(2, 3),), {}) is None


def test_the_footprint_is_the_one_the_meta_kernels_give(monkeypatch: pytest.MonkeyPatch) -> None:
    model = build_backbone("i3d", streams=("rgb",), input_size=64, random_weights_seed=0)
    net = model.models["rgb"]
    shape = (2, 3, 16, 64, 64)
    ruled = batching.activation_bytes(net, shape, forward="forward_features")
    monkeypatch.setattr(batching, "_shape_only", lambda *a: None)
    monkeypatch.setattr(batching, "_FOOTPRINT", {})
    assert batching.activation_bytes(net, shape, forward="forward_features") == ruled


def test_i3d_auto_batch_does_not_import_torch_dynamo() -> None:
    code = (
        "import sys\n"
        "from talkit.extractors import build_backbone\n"
        "from talkit.extractors.batching import backbone_snippet_bytes\n"
        "m = build_backbone('i3d', streams=('rgb',), input_size=64, random_weights_seed=0)\n"
        "assert backbone_snippet_bytes(m) > 0\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
