"""Damage: every broken-file kind gets the right probe status and typed error, quickly."""

from __future__ import annotations

import contextlib
import json

import av
import pytest

from talkit.cli import main
from talkit.datasets.synthetic.broken import BASE_FRAMES, BROKEN_KINDS, make_broken_videos
from talkit.datasets.synthetic.signature import read_signature
from talkit.errors import InputError, VideoDecodeError
from talkit.extractors import open_video, probe

EXPECTED_STATUS = {
    "truncated": "truncated",
    "no_moov": "unreadable",
    "garbage_middle": "corrupt",
    "zero_bytes": "unreadable",
    "audio_only": "unreadable",
    "single_frame": "ok",
    "lying_extension": "ok",
}


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    return make_broken_videos(tmp_path_factory.mktemp("broken"), seed=0)


def test_every_kind_is_generated(broken):
    assert set(broken) == set(BROKEN_KINDS) == set(EXPECTED_STATUS)
    assert broken["zero_bytes"].stat().st_size == 0


def test_each_kind_is_what_it_claims(broken):
    """Checked with PyAV directly, independent of talkit's readers."""
    with av.open(str(broken["truncated"])) as c:  # opens; claims all frames; yields fewer
        assert c.streams.video[0].frames == BASE_FRAMES
        decoded = 0
        try:
            for packet in c.demux(video=0):
                with contextlib.suppress(av.FFmpegError):
                    decoded += len(packet.decode())
        except av.FFmpegError:
            pass
        assert 0 < decoded < BASE_FRAMES
    with pytest.raises(av.FFmpegError):
        av.open(str(broken["no_moov"]))
    with av.open(str(broken["audio_only"])) as c:
        assert not c.streams.video and c.streams.audio
    with av.open(str(broken["lying_extension"])) as c:
        assert "matroska" in c.format.name and broken["lying_extension"].suffix == ".mp4"
    with av.open(str(broken["single_frame"])) as c:
        assert len(list(c.decode(video=0))) == 1


@pytest.mark.timeout(20)
@pytest.mark.parametrize("kind", list(EXPECTED_STATUS))
def test_probe_full_status(broken, kind):
    result = probe(broken[kind], full=True)
    assert result.status == EXPECTED_STATUS[kind], result.message
    if result.status == "ok":
        assert result.decoded_frames == result.meta.num_frames
        assert result.first_bad_s is None
    elif result.status in ("truncated", "corrupt"):
        assert 0 < result.decoded_frames < BASE_FRAMES
        assert 0 < result.first_bad_s < BASE_FRAMES / 25
        assert str(broken[kind]) in result.message and str(BASE_FRAMES) in result.message
    if kind == "lying_extension":
        assert "matroska" in result.meta.container


@pytest.mark.timeout(20)
@pytest.mark.parametrize("kind", list(EXPECTED_STATUS))
def test_typed_error_or_clean_decode(broken, kind):
    want = EXPECTED_STATUS[kind]
    if want == "ok":
        with open_video(broken[kind]) as reader:
            frames = [read_signature(f.rgb) for f in reader.iter_frames(fps=25)]
        assert frames == list(range(len(frames))) and reader.damage is None
        return
    with pytest.raises(VideoDecodeError) as err, open_video(broken[kind]) as reader:
        for _ in reader.iter_frames(fps=25):
            pass
    e = err.value
    assert e.kind == want and e.path == str(broken[kind])
    assert str(broken[kind]) in str(e)  # the message names the file ...
    if want != "unreadable":  # ... and the frames decoded and expected
        assert e.frames_expected == BASE_FRAMES and 0 < e.frames_decoded < BASE_FRAMES
        assert f"decoded {e.frames_decoded} of {BASE_FRAMES}" in str(e)
    assert e.exit_code == 1


@pytest.mark.timeout(20)
@pytest.mark.parametrize("kind", ["truncated", "garbage_middle"])
def test_tolerate_damage_keeps_a_clean_prefix(broken, kind):
    reader = open_video(broken[kind])
    shown = [read_signature(f.rgb) for f in reader.iter_frames(fps=25, tolerate_damage=True)]
    damage = reader.damage
    assert damage is not None and damage.kind == EXPECTED_STATUS[kind]
    assert shown == list(range(len(shown))) and len(shown) == damage.frames_kept
    assert 10 < len(shown) < BASE_FRAMES
    assert damage.first_bad_s == pytest.approx(len(shown) / 25)
    # Deterministic: the same prefix every time.
    again = open_video(broken[kind])
    assert sum(1 for _ in again.iter_frames(fps=25, tolerate_damage=True)) == len(shown)


@pytest.mark.timeout(20)
def test_decord_backend_reports_damage_typed(broken):
    with pytest.raises(VideoDecodeError) as err:
        open_video(broken["truncated"], backend="decord")  # decord refuses it at open
    assert err.value.kind == "unreadable"
    with pytest.raises(VideoDecodeError) as err:
        for _ in open_video(broken["garbage_middle"], backend="decord").iter_frames():
            pass
    assert err.value.kind == "corrupt"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", list(EXPECTED_STATUS))
def test_cli_probe_full_json_and_exit_code(broken, kind, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["probe", str(broken[kind]), "--full", "--json"])
        raise SystemExit(0)
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert report["status"] == EXPECTED_STATUS[kind]
    if EXPECTED_STATUS[kind] == "ok":
        assert exit_info.value.code == 0
        assert report["meta"]["backend"] == "pyav"
    else:
        assert exit_info.value.code == 1
        assert EXPECTED_STATUS[kind] in err and str(broken[kind]) in err


def test_cli_probe_table_shows_the_claims(tmp_path, capsys):
    from talkit.datasets.synthetic.signature import write_signature_video

    path = tmp_path / "ok.mp4"
    write_signature_video(path, num_frames=10, fps=30, size=(64, 48), rotation=90)
    with pytest.raises(SystemExit) as exit_info:
        main(["probe", str(path)])
        raise SystemExit(0)
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    for text in ("h264", "30.000", "10", "64x48", "rotation", "90", "pyav"):
        assert text in out


def test_missing_file_is_an_input_error(tmp_path, capsys):
    with pytest.raises(InputError):
        probe(tmp_path / "nope.mp4")
    with pytest.raises(SystemExit) as exit_info:
        main(["probe", str(tmp_path / "nope.mp4")])
    assert exit_info.value.code == 2
    assert "not found" in capsys.readouterr().err


@pytest.mark.timeout(20)
@pytest.mark.parametrize("kind", ["truncated", "garbage_middle"])
def test_damage_hint_says_what_a_user_can_do(broken, kind):
    with pytest.raises(VideoDecodeError) as err, open_video(broken[kind]) as reader:
        for _ in reader.iter_frames(fps=25):
            pass
    hint = err.value.hint or ""
    assert f"talkit probe --full {broken[kind]}" in hint
    assert "re-encode" in hint
    assert "tolerate" not in str(err.value)  # no command-line option of that name exists


@pytest.mark.timeout(20)
@pytest.mark.parametrize("kind", ["no_moov", "zero_bytes"])
def test_probe_prints_only_talkits_line(broken, kind, capfd):
    """decord's C++ core and its FFmpeg write to fd 2 themselves; none of that shows."""
    with pytest.raises(SystemExit) as exit_info:
        main(["probe", str(broken[kind])])
    assert exit_info.value.code == 1
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and str(broken[kind]) in lines[0]
    assert ".cc:" not in err and "moov atom" not in err


@pytest.mark.timeout(20)
def test_decord_open_failure_is_quiet_and_other_output_survives(broken, capfd):
    import os

    from talkit.extractors.video_decord import _decord_logs_caught

    with pytest.raises(VideoDecodeError):
        open_video(broken["no_moov"], backend="decord")
    assert capfd.readouterr().err == ""
    with _decord_logs_caught():
        os.write(2, b"[16:17:01] /src/video/video_reader.cc:83: ERROR opening: x.mp4\n")
        os.write(2, b"another thread's line\n")
    assert capfd.readouterr().err == "another thread's line\n"
