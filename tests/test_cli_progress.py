"""The per-video progress bar: on stderr for a terminal, silent otherwise, stdout untouched."""

from __future__ import annotations

import pytest

from talkit.cli_progress import video_progress


def test_bar_counts_videos_and_names_the_last_one_on_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich treats stderr as a terminal
    monkeypatch.delenv("NO_COLOR", raising=False)
    with video_progress("import npy", 3) as on_video:
        on_video("video_a")
        on_video("video_b")
    out, err = capsys.readouterr()
    assert out == ""
    assert "import npy" in err and "2/3" in err and "video_b" in err


def test_bar_is_off_when_stderr_is_not_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    with video_progress("synthesise") as on_video:  # no total: count not known up front
        on_video("video_a")
    assert capsys.readouterr() == ("", "")
