"""The words `talkit store info` and the demo print for a stored spec."""

from __future__ import annotations

from talkit.extractors import build_backbone
from talkit.store.describe import spec_rows


def _rows(name: str, **options: object) -> dict[str, str]:
    backbone = build_backbone(name, random_weights_seed=3, **options)
    return dict(spec_rows(backbone.spec.to_store_spec().model_dump(mode="json")))


def test_a_sampled_backbone_shows_its_window_in_seconds_and_its_input() -> None:
    rows = _rows("slowfast_r50", input_size=64, resize_short=80)
    assert rows["backbone"] == "slowfast_r50"
    # 32 frames read at 15 fps (every 2nd of 30): 32 / 15 s, a start every 8 / 15 s
    assert rows["snippet"] == (
        "32 frames at 15 fps (1 in 2 of 30 fps): a 2.13 s window every 0.533 s; "
        "a last partial window is dropped"
    )
    assert rows["input"] == "short side 80 -> centre crop 64; (x / 255 - 0.45/0.45/0.45) / " + (
        "0.225/0.225/0.225"
    )
    assert rows["weights"] == "rgb: random:3"
    assert "2304" in rows["feature"] and "random weights" in rows["note"]
    assert "flow" not in rows


def test_two_stream_i3d_shows_each_streams_weights_and_its_flow() -> None:
    rows = _rows("i3d", streams=["rgb", "flow"], flow_method="farneback", resize_short=None)
    assert rows["snippet"].startswith("16 frames at 25 fps: a 0.64 s window every 0.64 s")
    assert rows["input"].startswith("resized to 224x224; (x / 255 - 0.5/0.5/0.5) / 0.5/0.5/0.5")
    assert rows["weights"] == "rgb: random:3, flow: random:3"
    assert rows["flow"].startswith("farneback, clipped to +-20")


def test_a_checkpoint_shows_its_hash_and_imported_features_say_what_is_unknown() -> None:
    spec = {
        "backbone": "i3d",
        "streams": {"rgb": 1024},
        "checkpoints": {"rgb": "ab" * 32, "flow": None},
    }
    rows = dict(spec_rows(spec))
    assert rows["snippet"] == "not recorded (imported features)"
    assert rows["weights"] == f"rgb: sha256 {'ab' * 8}, flow: unknown"
    assert "input" not in rows and "note" not in rows


def test_the_demo_gives_every_backbone_its_tiny_input_and_refuses_unknown_names() -> None:
    import pytest

    from talkit.errors import InputError
    from talkit.pipelines.demo import DEMO_CONFIG, DEMO_INPUT, demo_config

    assert demo_config().backbones == DEMO_CONFIG["backbones"]
    two = demo_config(backbones=["slowfast_r50", "i3d"]).backbones
    assert list(two) == ["slowfast_r50", "i3d"]
    assert two["slowfast_r50"] == {"input_size": DEMO_INPUT, "resize_short": DEMO_INPUT}
    assert two["i3d"]["streams"] == ["rgb", "flow"]
    with pytest.raises(InputError, match="unknown backbone 'slowfist'"):
        demo_config(backbones=["slowfist"])
