"""Frame-index signature videos: every decoded frame's index equals its position."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from synth_helpers import files_under_malloc_perturbation

from talkit.datasets.synthetic.signature import (
    SignatureError,
    read_signature,
    signature_bits,
    write_signature_video,
)
from talkit.errors import InputError


def _decode_raw(path: Path) -> tuple[list[np.ndarray], list[Fraction]]:
    """Decode with PyAV directly (no talkit reader): frames as stored, exact times."""
    frames, times = [], []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            frames.append(f.to_ndarray(format="rgb24"))
            times.append(f.pts * f.time_base)
    return frames, [t - times[0] for t in times]


@pytest.mark.parametrize(
    ("codec", "suffix", "fps"),
    [
        ("h264", ".mp4", 25),
        ("h264", ".mp4", Fraction(30000, 1001)),
        ("mpeg4", ".mp4", 30),
        ("vp9", ".webm", 25),
    ],
)
def test_every_frame_reads_back_its_index_and_time(tmp_path, codec, suffix, fps):
    path = tmp_path / f"sig{suffix}"
    times = write_signature_video(path, num_frames=40, fps=fps, codec=codec, seed=3)
    frames, decoded_times = _decode_raw(path)
    assert [read_signature(f) for f in frames] == list(range(40))
    assert len(times) == 40
    # Returned times are the exact container times (VP9/WebM stores milliseconds).
    tol = 1e-3 if suffix == ".webm" else 1e-9
    assert np.allclose(times, [float(t) for t in decoded_times], atol=tol, rtol=0)
    assert times[1] == pytest.approx(float(1 / Fraction(fps)), abs=tol)


def test_2997_timestamps_are_exact_ntsc_multiples(tmp_path):
    path = tmp_path / "ntsc.mp4"
    write_signature_video(path, num_frames=30, fps=Fraction(30000, 1001))
    _, decoded = _decode_raw(path)
    assert decoded == [Fraction(1001 * i, 30000) for i in range(30)]


def test_vfr_has_irregular_explicit_timestamps(tmp_path):
    path = tmp_path / "vfr.mp4"
    times = write_signature_video(path, num_frames=60, fps=25, vfr=True, seed=7)
    frames, decoded = _decode_raw(path)
    assert [read_signature(f) for f in frames] == list(range(60))
    steps = np.diff(times)
    assert steps.min() < 0.9 / 25 and steps.max() > 1.1 / 25  # really variable
    assert np.allclose(times, [float(t) for t in decoded], atol=1e-9, rtol=0)
    # The seed decides the timestamps; another seed gives others.
    other = write_signature_video(tmp_path / "vfr2.mp4", num_frames=60, fps=25, vfr=True, seed=8)
    assert other != times


def test_same_seed_decodes_to_identical_frames(tmp_path):
    a = write_signature_video(tmp_path / "a.mp4", num_frames=12, seed=5)
    b = write_signature_video(tmp_path / "b.mp4", num_frames=12, seed=5)
    assert a == b
    fa, _ = _decode_raw(tmp_path / "a.mp4")
    fb, _ = _decode_raw(tmp_path / "b.mp4")
    assert all(np.array_equal(x, y) for x, y in zip(fa, fb, strict=True))


def test_same_seed_gives_the_same_file_whatever_malloc_returns(tmp_path):
    """With x264's mb-tree on, this file came out two ways: 1 in 300 repeats in-process,
    and every time fresh allocations held 0x01 rather than 0x00 bytes."""
    code = (
        "from talkit.datasets.synthetic.signature import write_signature_video\n"
        "write_signature_video(OUT / 'sig.mp4', num_frames=12, seed=5)"
    )
    assert len(set(files_under_malloc_perturbation(code, tmp_path))) == 1


def test_rotated_video_is_stored_rotated_and_displays_upright(tmp_path):
    path = tmp_path / "rot.mp4"
    write_signature_video(path, num_frames=5, size=(64, 48), rotation=90)
    with av.open(str(path)) as c:
        first = next(c.decode(video=0))
        raw = first.to_ndarray(format="rgb24")
        assert first.rotation == 90
    assert raw.shape[:2] == (64, 48)  # coded size is the rotated one
    with pytest.raises(SignatureError):
        read_signature(raw)  # a reader that ignores rotation sees no valid index
    assert read_signature(np.rot90(raw, k=1)) == 0  # rotate 90 deg CCW for display


def test_read_signature_rejects_frames_that_are_not_signatures():
    with pytest.raises(SignatureError):
        read_signature(np.zeros((48, 64, 3), np.uint8))
    rng = np.random.default_rng(0)
    bad = 0
    for _ in range(50):
        try:
            read_signature(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
        except SignatureError:
            bad += 1
    assert bad >= 40  # the check nibble rejects ~15/16 of random pictures


def test_grid_survives_scaling_and_greyscale():
    cells = np.where(signature_bits(12345) == 1, 200, 40).astype(np.uint8)
    big = np.kron(cells, np.ones((30, 40), np.uint8))  # 120 x 240 grey
    assert read_signature(big) == 12345
    assert read_signature(np.repeat(big[..., None], 3, axis=2)) == 12345


def test_invalid_arguments_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="num_frames"):
        write_signature_video(tmp_path / "x.mp4", num_frames=0)
    with pytest.raises(InputError, match="even"):
        write_signature_video(tmp_path / "x.mp4", num_frames=2, size=(63, 48))
    with pytest.raises(InputError, match="rotation"):
        write_signature_video(tmp_path / "x.mp4", num_frames=2, rotation=45)
    with pytest.raises(InputError, match="encoder"):
        write_signature_video(tmp_path / "x.mp4", num_frames=2, codec="no-such-codec")
