"""Versions: history, tags, time travel and diff, through the API and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run_cli

from talkit.store import FeatureStore, StoreError
from tests.store_helpers import DS, FS, KEY, features, make_store, spec


@pytest.fixture
def two_versions(tmp_path: Path) -> tuple[str, str, str]:
    """Commit A: v0..v4. Commit B: v0, v1, v2 changed, v3 rewritten identically, v5, v6 added."""
    url = str(tmp_path / "s")
    store = make_store(tmp_path / "s", {f"v{i}": 20 + i for i in range(5)})
    a = store.snapshot_id
    with store.writer(message="re-extract three, add two", metadata={"why": "new checkpoint"}) as w:
        for i in range(3):
            w.write_video(DS, FS, f"v{i}", streams=features(100 + i, 20 + i), overwrite=True)
        w.write_video(
            DS, FS, "v3", streams=features(3, 23), attrs={"duration": 23 * 0.64}, overwrite=True
        )
        for vid in ("v5", "v6"):
            w.write_video(DS, FS, vid, streams=features(200, 30))
    return url, a, store.snapshot_id


def test_diff_reports_exactly_the_changes(two_versions: tuple[str, str, str]) -> None:
    url, a, b = two_versions
    diff = FeatureStore.open(url).diff(a, b)
    assert diff.feature_sets_added == [] and diff.feature_sets_removed == []
    entry = diff.feature_sets[KEY]
    assert entry.videos_added == ["v5", "v6"]
    assert entry.videos_changed == ["v0", "v1", "v2"]  # v3 was rewritten with equal content
    assert entry.videos_removed == []
    assert entry.spec_changes == {}
    back = FeatureStore.open(url).diff(b, a)
    assert back.feature_sets[KEY].videos_removed == ["v5", "v6"]
    assert FeatureStore.open(url).diff(a, a).is_empty()


def test_old_version_still_reads_old_values_and_tags_resolve(
    two_versions: tuple[str, str, str],
) -> None:
    url, a, b = two_versions
    store = FeatureStore.open(url)
    assert store.tag("before-reextract", a) == a
    old = FeatureStore.open(url, version=a)
    np.testing.assert_array_equal(old.video(KEY, "v1").stream("rgb")[:], features(1, 21)["rgb"])
    assert old.feature_set(KEY).videos() == [f"v{i}" for i in range(5)]
    by_tag = FeatureStore.open(url, version="before-reextract")
    assert by_tag.snapshot_id == a
    np.testing.assert_array_equal(
        by_tag.video(KEY, "v1").stream("flow")[:], features(1, 21)["flow"]
    )
    new = FeatureStore.open(url, version="main")
    assert new.snapshot_id == b
    np.testing.assert_array_equal(new.video(KEY, "v1").stream("rgb")[:], features(101, 21)["rgb"])
    with pytest.raises(StoreError, match="already exists"):
        store.tag("before-reextract", b)
    assert [c.id for c in store.log()][:2] == [b, a]
    assert store.log()[0].metadata["why"] == "new checkpoint"
    assert store.log()[0].metadata["talkit"]["videos"] == 6


def test_spec_changes_show_in_diff(tmp_path: Path) -> None:
    store = make_store(tmp_path / "s", {"a": 10, "b": 12})
    before = store.snapshot_id
    with store.writer(message="re-extract with stride 8") as w:
        w.delete_feature_set(DS, FS)
        w.create_feature_set(DS, FS, spec(stride=8, params={"resize": "224x224"}))
        w.write_video(DS, FS, "a", streams=features(0, 10), attrs={"duration": 6.4})
    with store.writer(message="other backbone") as w:
        w.create_feature_set(DS, "slowfast", spec(backbone="slowfast_r50", streams={"features": 4}))
    diff = store.diff(before, "main")
    assert diff.feature_sets_added == [f"{DS}/slowfast"]
    entry = diff.feature_sets[KEY]
    assert entry.spec_changes["stride"] == (16, 8)
    assert entry.spec_changes["params.resize"] == (None, "224x224")
    assert entry.videos_removed == ["b"]
    # Timestamps follow the stride, so video a changed although its features did not.
    assert entry.videos_changed == ["a"]


def test_cli_log_tag_diff(
    two_versions: tuple[str, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    url, a, b = two_versions
    code, out, _ = run_cli(capsys, "store", "tag", url, "A", "--version", a)
    assert code == 0 and a in out
    code, out, _ = run_cli(capsys, "store", "log", url, "--json")
    assert code == 0
    log = json.loads(out)
    assert [c["id"] for c in log[:2]] == [b, a]
    assert log[1]["tags"] == ["A"]
    assert log[0]["message"] == "re-extract three, add two"
    code, out, _ = run_cli(capsys, "store", "log", url)
    assert code == 0 and "re-extract three, add two" in out
    code, out, _ = run_cli(capsys, "store", "diff", url, "A", "main", "--json")
    assert code == 0
    data = json.loads(out)["feature_sets"][KEY]
    assert data["videos_added"] == ["v5", "v6"] and data["videos_changed"] == ["v0", "v1", "v2"]
    code, out, _ = run_cli(capsys, "store", "diff", url, "A", "main")
    assert code == 0 and "added (2): v5, v6" in out and "changed (3): v0, v1, v2" in out
    code, out, _ = run_cli(capsys, "store", "info", url, "--version", "A", "--json")
    assert code == 0 and json.loads(out)["feature_sets"][KEY]["videos"] == 5
    code, _, err = run_cli(capsys, "store", "diff", url, "A", "nope")
    assert code == 2 and "version 'nope' not found" in err
