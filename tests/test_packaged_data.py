"""What ships inside the package: the presets and the public ground truths.

An installed wheel has no checkout around it, so presets and annotations are read from
the package itself (CI runs this file against the installed wheel).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml
from cli_helpers import run_cli

from talkit.datasets import bundled, load_annotations
from talkit.errors import ConfigError, InputError
from talkit.pipelines.config import load_extract_config
from talkit.presets import list_presets, preset_names, read_preset
from talkit.wtal_heads.config import load_config


def test_every_preset_is_shipped_in_the_package_and_validates() -> None:
    import talkit

    package = Path(talkit.__file__).parent
    extract, train = preset_names("extract"), preset_names("train")
    assert {"thumos14_i3d", "activitynet12_i3d", "hacs_i3d"} <= set(extract)
    assert {f"{h}_{d}" for h in ("basnet", "lgbm") for d in ("thumos14", "hacs")} <= set(train)
    for p in list_presets():
        assert Path(p.location).is_relative_to(package / "configs" / p.kind), p
        assert p.summary and "\n" not in p.summary
    for name in extract:
        assert load_extract_config(name).name == name
    for name in train:
        assert load_config(name).name == name


def test_a_yaml_file_wins_and_a_missing_file_is_not_taken_for_a_preset(tmp_path: Path) -> None:
    own = tmp_path / "thumos14_i3d.yaml"
    doc, _ = read_preset("extract", "thumos14_i3d")
    own.write_text(yaml.safe_dump({**doc, "batch_size": 3}))
    assert load_extract_config(own).batch_size == 3
    with pytest.raises(ConfigError, match="no such file"):
        load_extract_config(tmp_path / "missing" / "thumos14_i3d.yaml")


def test_presets_command_lists_and_shows(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "presets")
    assert code == 0 and "thumos14_i3d" in out and "lgbm_thumos14" in out
    code, out, _ = run_cli(capsys, "presets", "train", "--show", "basnet_thumos14")
    assert code == 0 and yaml.safe_load(out)["name"] == "basnet_thumos14"
    code, _, err = run_cli(capsys, "presets", "--show", "nope")
    assert code == 2 and "talkit presets" in err


def test_bundled_files_are_the_published_bytes() -> None:
    for name, entry in bundled.BUNDLED.items():
        folder = entry.path if entry.path.is_dir() else entry.path.parent
        for f, digest in entry.sha256.items():
            assert hashlib.sha256((folder / f).read_bytes()).hexdigest() == digest, (name, f)
        assert bundled.verify(name) == []


def test_bundled_names_work_wherever_annotations_are_read() -> None:
    assert len(load_annotations("bundled:thumos14").videos) == 410
    assert len(load_annotations("bundled:thumos14_wtalc").videos) == 412
    assert len(load_annotations("bundled:activitynet12").videos) == 2383
    with pytest.raises(InputError, match="HACS"):
        load_annotations("bundled:hacs")
    with pytest.raises(InputError, match="no bundled annotations called 'nope'"):
        load_annotations("bundled:nope")


def test_datasets_bundled_command(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run_cli(capsys, "datasets", "bundled")
    assert code == 0 and all(name in out for name in bundled.BUNDLED)
    code, out, _ = run_cli(capsys, "datasets", "bundled", "thumos14")
    assert code == 0 and Path(out.strip()) == bundled.BUNDLED["thumos14"].path
    code, _, _ = run_cli(
        capsys, "datasets", "bundled", "thumos14_wtalc", "--copy-to", str(tmp_path)
    )
    assert code == 0 and len(load_annotations(tmp_path).videos) == 412
    code, out, _ = run_cli(capsys, "datasets", "inspect", "bundled:activitynet12", "--json")
    assert code == 0 and '"videos": 2383' in out


def test_a_damaged_bundled_file_is_reported(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    entry = bundled.BUNDLED["thumos14"]
    (tmp_path / "thumos14").mkdir()
    (tmp_path / "thumos14" / "gt.json").write_bytes(entry.path.read_bytes()[:-10])
    monkeypatch.setattr(bundled, "_root", lambda: tmp_path)
    code, _, err = run_cli(capsys, "datasets", "bundled", "thumos14")
    assert code == 2 and "gt.json differ" in err and "reinstall" in err
