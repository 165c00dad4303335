"""Video readers: metadata, backend choice and fallback, re-iteration, frame folders."""

from __future__ import annotations

import subprocess
import threading
from fractions import Fraction

import cv2
import numpy as np
import pytest
from video_helpers import FFMPEG

from talkit.datasets.synthetic.signature import read_signature, write_signature_video
from talkit.errors import InputError, VideoDecodeError
from talkit.extractors import open_video, probe
from talkit.extractors import video_pyav as pyav_backend


@pytest.fixture(scope="module")
def sig(tmp_path_factory):
    path = tmp_path_factory.mktemp("reader") / "sig.mp4"
    write_signature_video(path, num_frames=50, fps=Fraction(30000, 1001), size=(96, 64))
    return path


def test_meta_reports_the_container_claims(sig):
    with open_video(sig) as reader:
        m = reader.meta
    assert (m.backend, m.codec, m.width, m.height, m.rotation) == ("pyav", "h264", 96, 64, 0)
    assert m.num_frames == 50 and not m.frames_estimated
    assert m.fps_exact == "30000/1001" and m.fps == pytest.approx(29.97, abs=1e-3)
    assert m.duration_s == pytest.approx(50 * 1001 / 30000, abs=1e-3)
    assert m.fps_fraction == Fraction(30000, 1001)
    assert m.to_dict()["path"] == str(sig)


def test_webm_frame_count_is_estimated_from_duration(tmp_path):
    path = tmp_path / "v.webm"
    write_signature_video(path, num_frames=30, fps=25, codec="vp9")
    m = open_video(path).meta
    assert m.frames_estimated and m.num_frames == 30 and "matroska" in m.container


def test_reader_can_iterate_again_and_stop_early(sig):
    reader = open_video(sig)
    first = [read_signature(f.rgb) for _, f in zip(range(5), reader.iter_frames(), strict=False)]
    assert first == [0, 1, 2, 3, 4]
    threads_before = threading.active_count()
    again = [read_signature(f.rgb) for f in reader.iter_frames()]
    assert again == list(range(50))
    assert threading.active_count() <= threads_before  # the decoder thread was stopped


def test_decord_backend_reads_the_same_pixels_order(sig):
    a = [read_signature(f.rgb) for f in open_video(sig, backend="decord").iter_frames(fps=25)]
    b = [read_signature(f.rgb) for f in open_video(sig, backend="pyav").iter_frames(fps=25)]
    assert a == b and len(a) == round(50 * 1001 / 30000 * 25)


def test_auto_falls_back_to_decord_when_pyav_cannot_open(sig, monkeypatch):
    def refuse(path):
        raise VideoDecodeError(f"{path} is unreadable: simulated", kind="unreadable")

    monkeypatch.setattr(pyav_backend, "probe_container", refuse)
    reader = open_video(sig)
    assert reader.meta.backend == "decord"
    assert "PyAV could not open it" in reader.meta.backend_note
    assert [read_signature(f.rgb) for f in reader.iter_frames()] == list(range(50))
    with pytest.raises(VideoDecodeError):
        open_video(sig, backend="pyav")


def test_bad_arguments_are_input_errors(sig, tmp_path):
    with pytest.raises(InputError, match="unknown video backend"):
        open_video(sig, backend="opencv")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="not found"):
        open_video(tmp_path / "missing.mp4")
    with pytest.raises(InputError, match="directory"):
        open_video(tmp_path, backend="pyav")


def _write_frames(folder, n, *, broken_at=None):
    folder.mkdir()
    from talkit.datasets.synthetic.signature import signature_bits

    for i in range(n):
        cells = np.where(signature_bits(i) == 1, 200, 40).astype(np.uint8)
        img = cv2.resize(cells, (64, 48), interpolation=cv2.INTER_NEAREST)
        path = folder / f"frame{i:d}.jpg"
        if i == broken_at:
            path.write_bytes(b"not a jpeg")
        else:
            cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_GRAY2BGR))


def test_frame_folder_natural_order_and_timing(tmp_path):
    folder = tmp_path / "frames"
    _write_frames(folder, 12)
    reader = open_video(folder, fps_for_frames=25)
    m = reader.meta
    assert (m.backend, m.num_frames, m.width, m.height, m.codec) == ("frames", 12, 64, 48, "jpg")
    frames = list(reader.iter_frames(fps=25))
    assert [read_signature(f.rgb) for f in frames] == list(range(12))  # frame10 after frame9
    assert [f.source_time_s for f in frames] == [i / 25 for i in range(12)]


def test_frame_folder_damage_and_empty_folder(tmp_path):
    folder = tmp_path / "frames"
    _write_frames(folder, 12, broken_at=7)
    reader = open_video(folder, fps_for_frames=25)
    with pytest.raises(VideoDecodeError) as err:
        list(reader.iter_frames())
    assert err.value.kind == "corrupt" and "frame7.jpg" in str(err.value)
    kept = [read_signature(f.rgb) for f in reader.iter_frames(tolerate_damage=True)]
    assert kept == list(range(7)) and reader.damage.frames_kept == 7
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(VideoDecodeError) as err:
        open_video(empty, fps_for_frames=25)
    assert err.value.kind == "unreadable"


@pytest.mark.skipif(FFMPEG is None, reason="ffmpeg not installed (apt-get install ffmpeg)")
def test_stream_copy_cut_with_an_edit_list_is_not_damage(sig, tmp_path):
    """`ffmpeg -ss 1 -c copy` keeps the GOP's earlier frames but marks them discarded."""
    src = tmp_path / "src.mp4"
    write_signature_video(src, num_frames=100, fps=25)
    cut = tmp_path / "cut.mp4"
    cmd = [FFMPEG, "-v", "error", "-ss", "1.5", "-i", str(src), "-c", "copy", str(cut)]
    subprocess.run(cmd, check=True, timeout=60)
    result = probe(cut, full=True)
    assert result.status == "ok", result.message
    with open_video(cut) as reader:
        frames = list(reader.iter_frames())
    shown = [read_signature(f.rgb) for f in frames]
    assert shown == list(range(shown[0], 100)) and 30 <= shown[0] <= 40
    assert frames[0].source_time_s == 0.0
    with pytest.raises(InputError, match="edit list"):
        open_video(cut, backend="decord")  # decord returns such frames out of place
