"""Hidden files in a --videos folder are not extracted, and the run says so (no Ray)."""

from __future__ import annotations

from pathlib import Path

import pytest

from talkit.errors import InputError
from talkit.pipelines.plan import plan_videos


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_hidden_video_files_are_rejected_with_the_reason(tmp_path: Path) -> None:
    _touch(tmp_path / "v1.mp4")
    hidden = _touch(tmp_path / "sub" / ".draft.mp4")
    apple = _touch(tmp_path / "._v1.mp4")  # macOS metadata beside a copied video
    _touch(tmp_path / ".cache" / "v9.mp4")  # hidden folders are not searched at all
    _touch(tmp_path / ".notes.txt")  # not a video
    plan = plan_videos(tmp_path)
    assert [i.video_id for i in plan.items] == ["v1"]
    assert sorted((r.video_id, r.path) for r in plan.rejected) == [
        ("._v1", apple),
        (".draft", hidden),
    ]
    for r in plan.rejected:
        assert (
            "hidden file" in r.message and "not extracted" in r.message and str(r.path) in r.message
        )


def test_a_folder_of_only_hidden_videos_says_so(tmp_path: Path) -> None:
    _touch(tmp_path / ".a.mp4")
    with pytest.raises(InputError, match=r"no video files found .*1 hidden one"):
        plan_videos(tmp_path)
