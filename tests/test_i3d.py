"""I3D: the public checkpoint layout loads strictly, errors explain themselves, numerics hold."""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from talkit.errors import CheckpointError, InputError
from talkit.extractors import registry
from talkit.extractors.i3d import InceptionI3d, same_padding

DATA = Path(__file__).parent / "data"  # key lists of the public I3D checkpoints
CHANNELS = {"rgb": 3, "flow": 2}


def manifest(stream: str) -> dict[str, list[int]]:
    return json.loads((DATA / f"i3d_{stream}.keys.json").read_text())["keys"]


def random_state(stream: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict with a random tensor for every key and shape in the public manifest."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in manifest(stream).items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(1000, dtype=torch.long)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=gen) + 0.5
        else:
            state[key] = torch.randn(shape, generator=gen) * 0.05
    return state


@pytest.fixture(scope="module")
def checkpoint_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ckpt")
    files = {}
    for stream in CHANNELS:
        files[stream] = root / f"{stream}_imagenet.pt"
        torch.save(random_state(stream), files[stream])
    return files


@pytest.mark.parametrize("stream", ["rgb", "flow"])
def test_public_manifest_loads_strictly_without_conversion(
    stream: str, checkpoint_files: dict[str, Path]
) -> None:
    keys = manifest(stream)
    model = InceptionI3d(CHANNELS[stream])
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == keys
    model.load_state_dict(random_state(stream), strict=True)

    backbone = registry.get("i3d", streams=(stream,))
    digest = backbone.load_checkpoint(stream, checkpoint_files[stream])
    assert digest == hashlib.sha256(checkpoint_files[stream].read_bytes()).hexdigest()
    assert backbone.spec.weights == {stream: f"sha256:{digest}"}
    assert not backbone.spec.is_random
    loaded = backbone.models[stream].state_dict()
    file_state = torch.load(checkpoint_files[stream], weights_only=True)
    for key in ("Conv3d_1a_7x7.conv3d.weight", "Mixed_5c.b3b.bn.running_var", "logits.conv3d.bias"):
        assert torch.equal(loaded[key], file_state[key])


def test_flow_checkpoint_on_rgb_stream_says_what_the_file_is(
    checkpoint_files: dict[str, Path],
) -> None:
    backbone = registry.get("i3d")
    with pytest.raises(CheckpointError) as err:
        backbone.load_checkpoint("rgb", checkpoint_files["flow"])
    msg = str(err.value)
    assert "this is a flow checkpoint (2 input channels); the rgb stream needs 3" in msg
    assert "Conv3d_1a_7x7.conv3d.weight (file [64, 2, 7, 7, 7], model [64, 3, 7, 7, 7])" in msg
    assert str(checkpoint_files["flow"]) in msg
    assert "checkpoints={'flow': path}" in msg
    with pytest.raises(
        CheckpointError,
        match=r"this is an rgb checkpoint \(3 input channels\); the flow stream needs 2",
    ):
        backbone.load_checkpoint("flow", checkpoint_files["rgb"])
    assert backbone.spec.weights == {"rgb": "unset", "flow": "unset"}


def test_truncated_checkpoint_is_a_clear_error(
    checkpoint_files: dict[str, Path], tmp_path: Path
) -> None:
    data = checkpoint_files["rgb"].read_bytes()
    cut = tmp_path / "rgb_imagenet.pt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"looks truncated or corrupt") as err:
        registry.get("i3d", streams=("rgb",)).load_checkpoint("rgb", cut)
    assert str(cut) in str(err.value) and "download it again" in str(err.value)


def test_missing_unexpected_and_non_state_dict_files_are_named(tmp_path: Path) -> None:
    state = random_state("rgb")
    del state["Mixed_4c.b1b.bn.running_mean"]
    state["Mixed_9z.extra.weight"] = torch.zeros(3)
    bad = tmp_path / "bad.pt"
    torch.save(state, bad)
    backbone = registry.get("i3d", streams=("rgb",))
    with pytest.raises(CheckpointError) as err:
        backbone.load_checkpoint("rgb", bad)
    assert "1 missing key(s): Mixed_4c.b1b.bn.running_mean" in str(err.value)
    assert "1 unexpected key(s): Mixed_9z.extra.weight" in str(err.value)

    not_dict = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], not_dict)
    with pytest.raises(CheckpointError, match="is not a state dict"):
        backbone.load_checkpoint("rgb", not_dict)

    pickled = tmp_path / "pickled.pt"
    torch.save({"args": argparse.Namespace(lr=0.1)}, pickled)
    with pytest.raises(CheckpointError, match="contains objects other than tensors") as err:
        backbone.load_checkpoint("rgb", pickled)
    assert "argparse.Namespace" in str(err.value) and "for safety" in str(err.value)
    assert "weights_only" not in str(err.value)  # torch's advice to load it unsafely is gone
    assert err.value.__cause__ is None and err.value.__suppress_context__

    with pytest.raises(CheckpointError, match="checkpoint not found"):
        backbone.load_checkpoint("rgb", tmp_path / "nope.pt")


def test_wrapped_state_dict_and_other_class_counts_load(tmp_path: Path) -> None:
    state = random_state("rgb")
    state["logits.conv3d.weight"] = torch.zeros(157, 1024, 1, 1, 1)  # Charades head
    state["logits.conv3d.bias"] = torch.zeros(157)
    path = tmp_path / "rgb_charades.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    backbone = registry.get("i3d", streams=("rgb",))
    backbone.load_checkpoint("rgb", path)
    assert backbone.models["rgb"].logits.conv3d.out_channels == 157


def test_random_weights_are_seeded_and_recorded_as_random() -> None:
    x = {"rgb": torch.randn(2, 3, 16, 32, 32, generator=torch.Generator().manual_seed(1))}
    a = registry.get("i3d", streams=("rgb",), input_size=32, resize_short=None)
    with pytest.raises(CheckpointError, match="no weights for stream"):
        a.extract(x)
    a.random_weights(7)
    b = registry.get("i3d", streams=("rgb",), input_size=32, resize_short=None)
    b.random_weights(7)
    c = registry.get("i3d", streams=("rgb",), input_size=32, resize_short=None)
    c.random_weights(8)
    assert a.spec.weights == {"rgb": "random:7"} and a.spec.is_random
    fa, fb, fc = a.extract(x)["rgb"], b.extract(x)["rgb"], c.extract(x)["rgb"]
    assert fa.shape == (2, 1024) and fa.dtype == np.float32
    np.testing.assert_array_equal(fa, fb)  # same seed, same features
    assert np.abs(fa - fc).max() > 1e-3  # another seed, other features
    assert fa.std() > 1e-2  # not degenerate


@pytest.mark.slow
def test_features_do_not_depend_on_batch_size_and_are_deterministic() -> None:
    backbone = registry.get("i3d", input_size=32, resize_short=None)
    backbone.random_weights(0)
    gen = torch.Generator().manual_seed(0)
    batch = {
        "rgb": torch.rand(8, 3, 16, 32, 32, generator=gen) * 2 - 1,
        "flow": torch.rand(8, 2, 16, 32, 32, generator=gen) * 2 - 1,
    }
    whole = backbone.extract(batch)
    singles = [backbone.extract({k: v[i : i + 1] for k, v in batch.items()}) for i in range(8)]
    again = backbone.extract(batch)
    for stream in ("rgb", "flow"):
        one_by_one = np.concatenate([s[stream] for s in singles])
        assert whole[stream].shape == (8, 1024)
        np.testing.assert_allclose(one_by_one, whole[stream], rtol=0, atol=1e-5)
        np.testing.assert_array_equal(again[stream], whole[stream])


@pytest.mark.slow  # the first forward on the meta device takes a few seconds
def test_tf_same_padding_and_the_224_feature_map() -> None:
    assert same_padding(16, 7, 2) == (2, 3)  # even size: k - s
    assert same_padding(15, 7, 2) == (3, 3)  # odd size: k - n % s
    assert same_padding(7, 2, 2) == (0, 1)
    assert same_padding(8, 3, 1) == (1, 1)
    model = InceptionI3d(3).to("meta")
    mixed_5c = model.forward_trunk(torch.empty(1, 3, 16, 224, 224, device="meta"))
    assert tuple(mixed_5c.shape) == (1, 1024, 2, 7, 7)
    odd = model.forward_trunk(torch.empty(1, 3, 20, 200, 250, device="meta"))
    assert tuple(odd.shape) == (1, 1024, 3, 7, 8)  # ceil division at every stride


def test_feature_pool_is_the_2x7x7_average_at_224() -> None:
    m = torch.randn(3, 1024, 2, 7, 7)
    expected = torch.nn.AvgPool3d([2, 7, 7], stride=1)(m).flatten(1)
    torch.testing.assert_close(InceptionI3d.feature_pool(m), expected)
    # A longer clip leaves several time steps after the pool; they are averaged.
    m4 = torch.randn(1, 1024, 4, 7, 7)
    pooled = torch.nn.AvgPool3d([2, 7, 7], stride=1)(m4).mean(dim=(2, 3, 4))
    torch.testing.assert_close(InceptionI3d.feature_pool(m4), pooled)


def test_registry_lists_and_rejects_cleanly() -> None:
    assert "i3d" in registry.available()
    with pytest.raises(InputError, match="unknown backbone 'i4d'"):
        registry.get("i4d")
    with pytest.raises(InputError, match="bad options for backbone 'i3d'"):
        registry.get("i3d", colour=True)
    with pytest.raises(InputError, match="streams must be"):
        registry.get("i3d", streams=("depth",))
    spec = registry.get("i3d", flow_method="farneback").spec
    assert spec.streams == {"rgb": 1024, "flow": 1024}
    assert spec.flow is not None and spec.flow.method == "farneback" and spec.flow.approximate
    assert (spec.fps, spec.clip_len, spec.stride, spec.input_size, spec.resize_short) == (
        25.0,
        16,
        16,
        224,
        256,
    )
    with pytest.raises(InputError, match="batch lacks stream"):
        registry.get("i3d").extract({"rgb": torch.zeros(1, 3, 16, 32, 32)})


def test_spec_becomes_the_store_record_with_flow_and_weights() -> None:
    backbone = registry.get("i3d", flow_method="dis", flow_quantize_8bit=True)
    backbone.random_weights(4)
    record = backbone.spec.to_store_spec().to_attrs()
    assert record["backbone"] == "i3d" and record["streams"] == {"rgb": 1024, "flow": 1024}
    assert (record["fps"], record["clip_len"], record["stride"]) == (25.0, 16, 16)
    assert record["checkpoints"] == {"rgb": "random:4", "flow": "random:4"}
    flow = record["params"]["flow"]
    assert flow["method"] == "dis" and flow["approximate"] is True and flow["quantize_8bit"]
    assert record["params"]["resize_short"] == 256 and record["params"]["input_size"] == 224


def test_same_max_pools_without_a_padded_copy_equal_the_zero_padded_pool() -> None:
    """I3D's SAME max pools pad inside the pool (no padded copy of the activations); on
    non-negative inputs that is bit-identical to zero padding, for every size."""
    import torch.nn.functional as F

    from talkit.extractors.backbones.i3d import MaxPool3dSame, _flat_pad, _pads

    gen = torch.Generator().manual_seed(0)
    for kernel, stride in (((1, 3, 3), (1, 2, 2)), ((3, 3, 3), (1, 1, 1)), ((3, 3, 3), (2, 2, 2)), ((2, 2, 2), (2, 2, 2))):  # fmt: skip
        pool = MaxPool3dSame(kernel, stride)
        for t in range(1, 9):
            for hw in range(1, 14):
                x = torch.rand((1, 2, t, hw, hw + 1), generator=gen)
                pads = _pads(x.shape[2:], kernel, stride)
                want = F.max_pool3d(F.pad(x, _flat_pad(pads)), kernel, stride)
                got = pool(x)
                assert got.shape == want.shape and torch.equal(got, want), (kernel, stride, t, hw)
