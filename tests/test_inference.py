"""The faster inference path gives the eager forward's features (to 1e-5), for any module."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from talkit.extractors import registry
from talkit.extractors.inference import (
    InferenceOptions,
    fast_forward,
    fold_batch_norms,
    prepare_for_inference,
)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def _i3d_with_real_statistics(seed: int = 0) -> nn.Module:
    """I3D rgb with BatchNorm statistics that are not the identity (as trained ones are not)."""
    backbone = registry.get("i3d", streams=("rgb",), input_size=32, resize_short=None)
    backbone.random_weights(seed)
    model = backbone.models["rgb"]
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm3d):
                m.running_mean.normal_(0.0, 0.2, generator=gen)
                m.running_var.uniform_(0.3, 3.0, generator=gen)
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.normal_(0.0, 0.2, generator=gen)
    return model


def test_default_path_is_within_1e_5_of_the_eager_forward_and_folds_every_i3d_batch_norm() -> None:
    model = _i3d_with_real_statistics()
    x = torch.rand(3, 3, 16, 40, 40, generator=torch.Generator().manual_seed(2)) * 2 - 1
    with torch.inference_mode():
        eager = model.forward_features(x)
    prepared = prepare_for_inference(model, x, forward="forward_features")
    fast = prepared(x)
    # Every Unit3D but the logits layer has a BatchNorm right after its convolution.
    n_bn = sum(isinstance(m, nn.BatchNorm3d) for m in model.modules())
    assert prepared.folded == n_bn == 57
    assert not any(isinstance(m, nn.BatchNorm3d) for m in prepared.module.modules())
    assert _rel(fast, eager) < 1e-5
    np.testing.assert_allclose(
        fast.numpy(), eager.numpy(), rtol=1e-5, atol=1e-5 * eager.abs().max()
    )
    # The original module is untouched: its BatchNorms are still there and give eager results.
    assert sum(isinstance(m, nn.BatchNorm3d) for m in model.modules()) == 57
    with torch.inference_mode():
        assert torch.equal(model.forward_features(x), eager)


def test_fast_path_is_deterministic_and_independent_of_the_batch_size() -> None:
    model = _i3d_with_real_statistics(3)
    x = torch.rand(5, 3, 16, 32, 32, generator=torch.Generator().manual_seed(4)) * 2 - 1
    whole = fast_forward(model, x)
    assert torch.equal(fast_forward(model, x), whole)
    for b in (2, 3):
        assert torch.equal(fast_forward(model, x[:b]), whole[:b])


def test_the_prepared_copy_follows_weights_changed_in_place() -> None:
    backbone = registry.get("i3d", streams=("rgb",), input_size=32, resize_short=None)
    backbone.random_weights(0)
    x = {"rgb": torch.rand(2, 3, 16, 32, 32, generator=torch.Generator().manual_seed(5))}
    first = backbone.extract(x)["rgb"]
    backbone.random_weights(1)  # new weights in the same module objects
    second = backbone.extract(x)["rgb"]
    with torch.inference_mode():
        eager = backbone.models["rgb"].forward_features(x["rgb"]).numpy()
    assert np.abs(second - first).max() > 1e-3
    np.testing.assert_allclose(second, eager, rtol=0, atol=1e-5 * np.abs(eager).max())


class _Residual(nn.Module):
    """conv -> bn, where the conv's output is also added back: the bn must not fold."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 4, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        z = self.bn(y) + y
        return self.bn2(self.conv2(z))


def test_only_batch_norms_that_solely_follow_a_convolution_are_folded() -> None:
    torch.manual_seed(0)
    model = _Residual().eval()
    with torch.no_grad():
        for bn in (model.bn, model.bn2):
            bn.running_mean.normal_()
            bn.running_var.uniform_(0.5, 2.0)
    x = torch.randn(2, 4, 8, 8)
    with torch.inference_mode():
        want = model(x)
    folded = fold_batch_norms(model, x, "forward")
    assert folded == 1
    assert isinstance(model.bn, nn.BatchNorm2d) and isinstance(model.bn2, nn.Identity)
    with torch.inference_mode():
        assert _rel(model(x), want) < 1e-5


def test_options_turn_each_change_off() -> None:
    model = _i3d_with_real_statistics(6)
    x = torch.rand(2, 3, 16, 32, 32, generator=torch.Generator().manual_seed(7))
    plain = prepare_for_inference(
        model,
        x,
        forward="forward_features",
        options=InferenceOptions(channels_last=False, fold_batch_norm=False),
    )
    assert plain.folded == 0 and not plain.channels_last
    with torch.inference_mode():
        # Nothing changed: bit-identical to the eager forward.
        assert torch.equal(plain(x), model.forward_features(x))
