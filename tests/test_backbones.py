"""The backbone design: I3D unchanged by it, specs as data, weights tables, options per backbone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from talkit.extractors import extract_video

GOLDEN = Path(__file__).parent / "data" / "i3d_golden"


@pytest.mark.slow
def test_i3d_features_are_bit_identical_to_before_the_backbone_redesign() -> None:
    """features.npz was written by make_golden.py with the code before the redesign.

    The network path is bit-identical with the plain eager forward; the default forward
    (BatchNorms folded, channels-last: talkit.extractors.inference) stays within 1e-5.
    """
    from talkit.extractors import build_backbone

    torch.set_num_threads(1)
    golden = np.load(GOLDEN / "features.npz")
    for inference in ("eager", "default"):
        backbone = build_backbone("i3d", random_weights_seed=0, input_size=64, resize_short=72)
        if inference == "eager":
            backbone.network.inference = None
        feats = extract_video(GOLDEN / "video.mp4", backbone, batch_size=4)
        assert np.array_equal(feats.timestamps, golden["timestamps"])
        for stream in ("rgb", "flow"):
            got, want = feats.streams[stream], golden[stream]
            assert got.dtype == np.float32
            if inference == "eager":
                assert np.array_equal(got, want), stream
            else:
                assert np.linalg.norm(got - want) <= 1e-5 * np.linalg.norm(want), stream


# -- config: options per backbone -------------------------------------------------------------


def test_shorthand_flags_reach_only_the_backbones_that_have_the_option() -> None:
    from talkit.pipelines.config import load_extract_config
    from talkit.pipelines.run import ExtractJob

    cfg = load_extract_config(
        "thumos14_i3d",
        {"backbones": ["i3d", "slowfast_r50"], "streams": ["rgb"], "input_size": 64},
        options={"slowfast_r50": {"stride": 32}},
    )
    assert cfg.backbones == {
        "i3d": {"streams": ["rgb"], "input_size": 64},
        "slowfast_r50": {"input_size": 64, "stride": 32},
    }
    job = ExtractJob(
        plan=None, store="s", dataset="d", config=cfg.model_copy(update={"random_weights_seed": 0})
    )  # type: ignore[arg-type]
    options = {j.backbone: j.options for j in job.backbone_jobs()}
    assert "streams" not in options["slowfast_r50"] and "flow_device" not in options["slowfast_r50"]
    assert options["i3d"]["streams"] == ("rgb",)
    dumped = cfg.model_dump(mode="json")["backbones"]  # what the run records
    assert dumped["slowfast_r50"] == {"input_size": 64, "stride": 32}


def test_an_option_no_selected_backbone_has_is_refused_naming_the_flag() -> None:
    from talkit.errors import ConfigError
    from talkit.pipelines.config import load_extract_config

    with pytest.raises(
        ConfigError,
        match=r"--flow dis applies to backbones with the option 'flow_method', and none of csn_r101",
    ):
        load_extract_config(
            None, {"backbones": ["csn_r101"], "flow": "dis"}, sources={"flow": "--flow dis"}
        )
    with pytest.raises(ConfigError, match=r"backbone csn_r101 has no option\(s\) streams"):
        load_extract_config(
            None, {"backbones": ["csn_r101"]}, options={"csn_r101": {"streams": ["rgb"]}}
        )
    with pytest.raises(ConfigError, match="i3d is not a backbone of this run"):
        load_extract_config(None, {"backbones": ["csn_r101"]}, options={"i3d": {"input_size": 64}})


def test_checkpoint_keys_address_one_backbone(tmp_path: Path) -> None:
    from talkit.errors import ConfigError
    from talkit.pipelines.config import load_extract_config

    one = load_extract_config(
        None, {"backbones": ["slowfast_r50"], "checkpoints": {"rgb": "a.pyth"}}
    )
    assert one.checkpoints_for("slowfast_r50", ("rgb",)) == {"rgb": str(Path("a.pyth").absolute())}
    two = load_extract_config(
        None,
        {
            "backbones": ["i3d", "slowfast_r50"],
            "checkpoints": {"i3d.flow": "f.pt", "i3d.rgb": "r.pt", "slowfast_r50": "s.pyth"},
        },
    )
    assert set(two.checkpoints_for("i3d", ("rgb", "flow"))) == {"rgb", "flow"}
    assert two.checkpoints_for("slowfast_r50", ("rgb",))["rgb"].endswith("s.pyth")
    with pytest.raises(ConfigError, match="names no backbone of this run"):
        load_extract_config(
            None, {"backbones": ["i3d", "csn_r101"], "checkpoints": {"rgb": "r.pt"}}
        )


def test_old_flat_configs_still_load_into_the_i3d_block() -> None:
    from talkit.pipelines.config import ExtractConfig

    cfg = ExtractConfig.model_validate(
        {"backbones": ["i3d"], "streams": ["rgb"], "flow": "dis", "fps": 30.0}
    )
    assert cfg.backbones == {"i3d": {"streams": ["rgb"], "flow_method": "dis", "fps": 30.0}}


# -- weights tables ---------------------------------------------------------------------------


def test_weights_tables_name_each_public_checkpoint() -> None:
    from talkit.extractors.weights import all_weights

    table = all_weights()
    for name in ("i3d.rgb_imagenet", "i3d.flow_imagenet", "slowfast_r50.kinetics400",
                 "slowfast_r101.kinetics400", "csn_r101.kinetics400",
                 "ircsn_152.ig65m_kinetics400"):  # fmt: skip
        entry = table[name]
        assert entry.url.startswith("https://") and entry.url.endswith(entry.file_name)
        assert entry.backbone == name.split(".")[0] and entry.licence and entry.layout
    assert table["slowfast_r50.kinetics400"].file_name == "SLOWFAST_8x8_R50.pyth"
    assert table["i3d.flow_imagenet"].stream == "flow"


def test_a_named_checkpoint_is_found_checked_or_explained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    from talkit.errors import CheckpointError
    from talkit.extractors import registry
    from talkit.extractors.weights import resolve_weights

    monkeypatch.setenv("TALKIT_WEIGHTS", str(tmp_path))
    with pytest.raises(CheckpointError) as err:
        resolve_weights("slowfast_r50.kinetics400")
    assert str(tmp_path / "SLOWFAST_8x8_R50.pyth") in str(err.value)
    hint = err.value.hint or ""
    assert (
        "download https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics/SLOWFAST_8x8_R50.pyth"
        in hint
    )
    assert "--weights slowfast_r50.kinetics400=PATH" in hint

    (tmp_path / "SLOWFAST_8x8_R50.pyth").write_bytes(b"x")
    assert resolve_weights("slowfast_r50.kinetics400")[1] == tmp_path / "SLOWFAST_8x8_R50.pyth"
    # A table entry whose hash is known rejects any other file.
    entry = registry._WEIGHTS["csn_r101.kinetics400"]
    known = hashlib.sha256(b"the published bytes").hexdigest()
    monkeypatch.setitem(registry._WEIGHTS, entry.name, entry.model_copy(update={"sha256": known}))
    (tmp_path / "CSN_32x2_R101.pyth").write_bytes(b"other bytes")
    with pytest.raises(CheckpointError, match=f"not the published {known}"):
        resolve_weights("csn_r101.kinetics400")
    (tmp_path / "CSN_32x2_R101.pyth").write_bytes(b"the published bytes")
    assert resolve_weights("csn_r101.kinetics400")[0].sha256 == known


def test_where_only_the_published_names_hash_prefix_is_known_the_file_must_start_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OpenMMLab files carry the first 8 hex of their sha256 in their name; that is checked."""
    import hashlib

    from pydantic import ValidationError

    from talkit.errors import CheckpointError
    from talkit.extractors import registry
    from talkit.extractors.weights import Weights, resolve_weights

    name = "ircsn_152.ig65m_kinetics400"
    entry = registry.weights_tables()[name]
    file = tmp_path / "ircsn.pth"
    file.write_bytes(b"some bytes")
    digest = hashlib.sha256(b"some bytes").hexdigest()
    assert not digest.startswith(entry.sha256_prefix or "")
    with pytest.raises(CheckpointError) as err:
        resolve_weights(name, file)
    assert f"does not start with {entry.sha256_prefix}, the prefix in the published" in str(
        err.value
    )
    assert "no full hash" in str(err.value) and err.value.exit_code == 2
    # a file whose hash starts with the (here: patched) prefix is taken
    monkeypatch.setitem(
        registry._WEIGHTS, name, entry.model_copy(update={"sha256_prefix": digest[:8]})
    )
    assert resolve_weights(name, file) == (registry._WEIGHTS[name], file)
    # a full hash, once known, is what is checked
    full = hashlib.sha256(b"other").hexdigest()
    monkeypatch.setitem(
        registry._WEIGHTS, name, entry.model_copy(update={"sha256": full, "sha256_prefix": None})
    )
    with pytest.raises(CheckpointError, match=f"not the published {full}"):
        resolve_weights(name, file)
    fields = entry.model_dump(exclude={"sha256", "sha256_prefix"})
    with pytest.raises(ValidationError, match="does not start with its sha256_prefix"):
        Weights(**fields, sha256=full, sha256_prefix="00000000")
    with pytest.raises(ValidationError):
        Weights(**fields, sha256_prefix="FC66-CE8D")


def test_named_weights_become_the_streams_checkpoints(tmp_path: Path) -> None:
    from talkit.errors import InputError
    from talkit.pipelines.config import load_extract_config

    rgb, flow = tmp_path / "r.pt", tmp_path / "f.pt"
    rgb.write_bytes(b"r")
    flow.write_bytes(b"f")
    weights = [f"i3d.rgb_imagenet={rgb}", f"i3d.flow_imagenet={flow}"]
    cfg = load_extract_config(None, {"weights": weights})
    assert cfg.checkpoints_for("i3d", ("rgb", "flow")) == {"rgb": str(rgb), "flow": str(flow)}
    with pytest.raises(InputError, match="for the flow stream, which i3d does not compute here"):
        cfg.checkpoints_for("i3d", ("rgb",))


# -- the command line -------------------------------------------------------------------------


def _counter_videos(root: Path) -> Path:
    from talkit.datasets.synthetic.signature import write_signature_video

    folder = root / "videos"
    folder.mkdir()
    write_signature_video(folder / "a.mp4", num_frames=80, fps=30, size=(84, 64), seed=1)
    return folder


def test_cli_refuses_another_backbones_checkpoint_and_a_missing_named_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from cli_helpers import run_cli

    from talkit.extractors.i3d import InceptionI3d

    videos = _counter_videos(tmp_path)
    i3d_file = tmp_path / "rgb_imagenet.pt"
    torch.save(InceptionI3d(3).state_dict(), i3d_file)
    base = ["extract", "--videos", str(videos), "--dataset", "d", "--store", str(tmp_path / "s")]
    code, _, err = run_cli(
        capsys, *base, "--backbone", "slowfast_r50", "--checkpoint", f"slowfast_r50={i3d_file}"
    )
    text = " ".join(err.split())
    assert code == 2, err
    assert "expected layout: pytorchvideo SlowFast-R50 8x8 state dict under 'model_state'" in text
    assert "this looks like an I3D rgb checkpoint" in text

    monkeypatch.setenv("TALKIT_WEIGHTS", str(tmp_path / "none"))
    code, _, err = run_cli(
        capsys, *base, "--backbone", "csn_r101", "--weights", "csn_r101.kinetics400"
    )
    text = " ".join(err.split())
    assert code == 2, err
    assert (
        "download https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics/CSN_32x2_R101.pyth"
        in text
    )
    code, _, err = run_cli(capsys, *base, "--backbone", "csn_r101", "--flow", "dis")
    assert code == 2 and "none of csn_r101 has it" in " ".join(err.split())


@pytest.mark.slow
def test_cli_extracts_slowfast_into_a_store_that_shows_its_sampling(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli_helpers import run_cli
    from pipeline_helpers import read_feature_set, run_records

    videos = _counter_videos(tmp_path)
    store = tmp_path / "s.store"
    code, _, err = run_cli(
        capsys, "extract", "--videos", str(videos), "--dataset", "d", "--store", str(store),
        "--backbone", "slowfast_r50", "--random-weights", "0",
        "--option", "slowfast_r50.input_size=64", "--option", "slowfast_r50.resize_short=64",
        "--num-workers", "1", "--threads", "1", "--batch-size", "2", "--quiet",
        "--report", str(tmp_path / "r.json"),
    )  # fmt: skip
    assert code == 0, err
    arrays = read_feature_set(store, "d/slowfast_r50")["a"]
    assert arrays["rgb"].shape == (2, 2304)  # 80 frames at 30 fps: starts 0 and 16
    np.testing.assert_allclose(arrays["timestamps"], [[0, 64 / 30], [16 / 30, 80 / 30]])
    assert run_records(store)[-1]["extracted"] == ["a"]
    report = json.loads((tmp_path / "r.json").read_text())  # the run's resolved config
    assert report["config"]["backbones"] == {"slowfast_r50": {"input_size": 64, "resize_short": 64}}
    code, out, _ = run_cli(capsys, "store", "info", str(store))
    text = " ".join(out.split())
    assert code == 0
    assert (
        "backbone slowfast_r50 snippet 32 frames at 15 fps (1 in 2 of 30 fps): a 2.13 s window "
        "every 0.533 s; a last partial window is dropped" in text
    )
    assert "weights rgb: " in text and "feature " in text
    assert "rgb=2304" in text


# -- presets ----------------------------------------------------------------------------------


def test_each_preset_header_states_its_backbones_snippet_settings() -> None:
    """The header is documentation; the numbers come from the backbone's spec, so a changed
    default that the header no longer describes fails here."""
    from talkit.extractors import get
    from talkit.pipelines.config import load_extract_config
    from talkit.presets import find_preset, list_presets

    names = {p.name for p in list_presets("extract")}
    expected = {
        f"{d}_{b}"
        for d in ("hacs", "activitynet13")
        for b in (
            "slowfast_r50",
            "slowfast_r101",
            "csn_r101",
            "ircsn_152",
            "vivit_b16x2",
            "vivit_b16x2_hf",
        )
    }
    assert expected | {"thumos14_i3d", "hacs_i3d", "activitynet12_i3d"} <= names
    for name in sorted(names):
        header = " ".join(
            line.lstrip("# ")
            for line in find_preset("extract", name)[0].splitlines()
            if line.startswith("#")
        )
        cfg = load_extract_config(name)
        for backbone in cfg.backbones:
            spec = get(backbone, **cfg.options_for(backbone)).spec
            assert f"{spec.fps:g} fps" in header, name
            assert f"{spec.clip_len}-frame" in header or f"{spec.clip_len} frames" in header, name
            assert (
                f"crop {spec.input_size}" in header or f"{spec.input_size} centre crop" in header
            ), name
            if spec.sampling_rate > 1:
                assert f"sampling rate {spec.sampling_rate}" in header, name
                assert f"every {spec.stride} frames" in header, name
            assert f"{sum(spec.streams.values())}" in header, name


def test_slowfast_without_pytorchvideo_says_which_extra_to_install(tmp_path: Path) -> None:
    """pytorchvideo is in the `backbones` extra: a missing one is a one-line hint, exit 2."""
    import subprocess
    import sys

    videos = tmp_path / "videos.txt"
    videos.write_text(f"{GOLDEN / 'video.mp4'}\n")
    store = tmp_path / "s.store"
    code = (
        "import sys; sys.modules['pytorchvideo'] = None; sys.modules['pytorchvideo.models'] = None\n"
        "from talkit.cli import main\n"
        f"sys.argv = ['talkit', 'extract', '--videos', {str(videos)!r}, '--dataset', 'd',"
        f" '--store', {str(store)!r}, '--backbone', 'slowfast_r50', '--random-weights', '0']\n"
        "main()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert 'pip install "talkit[backbones]"' in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unset_networks_get_real_memory_without_importing_sympy() -> None:
    """build_unset allocates each tensor with torch.empty. Module.to_empty's empty_like
    imported sympy (0.3 s) on the way to every worker's first video."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from talkit.extractors import build_backbone\n"
        "b = build_backbone('i3d', streams=('rgb', 'flow'), random_weights_seed=0)\n"
        "ps = list(b.network.parameters()) + list(b.network.buffers())\n"
        "assert ps and all(p.device.type == 'cpu' and not p.is_meta for p in ps)\n"
        "assert all(not m.training for m in b.network.streams.modules())\n"
        "print('sympy' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    "name", ["csn_r101", "ircsn_152", "slowfast_r50", "tdn_r50", "vivit_b16x2", "vivit_b16x2_hf"]
)
def test_every_family_builds_unset_on_the_cpu(name: str) -> None:
    from talkit.extractors import registry

    network = registry.get(name).network
    tensors = [*network.parameters(), *network.buffers()]
    assert tensors and all(t.device.type == "cpu" and not t.is_meta for t in tensors)
