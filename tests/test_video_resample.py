"""Frame exactness: resampling to 25 fps picks exactly the frames ffmpeg's fps filter does.

Checked three ways on signature videos (each frame shows its own index): against an
independent statement of the rule (video_helpers.reference_selection), against ffmpeg
itself when it is installed, and between the decord and PyAV backends.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from video_helpers import (
    FFMPEG,
    container_timeline,
    ffmpeg_fps_indices,
    reference_selection,
)

from talkit.datasets.synthetic.signature import read_signature, write_signature_video
from talkit.errors import InputError
from talkit.extractors import open_video, select_source_frames
from talkit.extractors.resample import resample_stream, round_half_away, to_fraction

CASES = {
    "25->25": dict(fps=25),
    "30->25": dict(fps=30),
    "29.97->25": dict(fps=Fraction(30000, 1001)),
    "vfr->25": dict(fps=25, vfr=True, seed=11),
    "24->25": dict(fps=24),
    "50->25": dict(fps=50),
}
N_FRAMES = 121


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("resample")
    out = {}
    for name, kw in CASES.items():
        path = root / (name.replace("->", "_to_") + ".mp4")
        write_signature_video(path, num_frames=N_FRAMES, **kw)
        out[name] = path
    return out


def _ours(path, backend, fps=25):
    with open_video(path, backend=backend) as reader:
        picked, shown = [], []
        for f in reader.iter_frames(fps=fps):
            picked.append(f.source_index)
            shown.append(read_signature(f.rgb))  # what is really in the pixels
        assert reader.damage is None
        return picked, shown, reader.meta


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("backend", ["pyav", "decord"])
def test_selection_matches_the_reference_rule_frame_by_frame(videos, name, backend):
    times, end = container_timeline(videos[name])
    expected = reference_selection(times, end, Fraction(25))
    picked, shown, meta = _ours(videos[name], backend)
    assert meta.backend == backend
    assert shown == expected  # the pixels of every output frame are the right source frame
    assert picked == expected
    if name == "30->25":  # 30 -> 25 drops exactly every sixth frame
        assert len(expected) == round_half_away(Fraction(N_FRAMES, 30) * 25)
        assert sorted(set(range(N_FRAMES)) - set(expected))[:3] == [3, 9, 15]


@pytest.mark.parametrize("name", list(CASES))
def test_decord_and_pyav_select_identical_frames(videos, name):
    a, _, _ = _ours(videos[name], "pyav")
    b, _, _ = _ours(videos[name], "decord")
    assert a == b


@pytest.mark.skipif(FFMPEG is None, reason="ffmpeg not installed (apt-get install ffmpeg)")
@pytest.mark.parametrize("name", list(CASES))
def test_selection_matches_ffmpeg_fps_filter(videos, name):
    reference = ffmpeg_fps_indices(videos[name], "25", 64, 48)
    ours, _, _ = _ours(videos[name], "auto")
    if CASES[name].get("vfr"):
        # Identical frame by frame; only the length may differ. How long the *last*
        # frame of a VFR MP4 lasts is read differently by ffmpeg versions: 5.x ignores
        # the file's last-sample duration here (it reports N/A) and ends the video at
        # the last timestamp, newer versions and PyAV use the stored duration, as we do.
        n = len(reference)
        assert ours[:n] == reference
        assert 0 <= len(ours) - n <= 2
    else:
        assert ours == reference


@pytest.mark.skipif(FFMPEG is None, reason="ffmpeg not installed (apt-get install ffmpeg)")
def test_reference_rule_is_ffmpegs_rule(videos):
    """The test's own statement of the rule agrees with ffmpeg on constant-rate inputs."""
    for name in ("30->25", "29.97->25", "24->25"):
        times, end = container_timeline(videos[name])
        assert reference_selection(times, end, Fraction(25)) == ffmpeg_fps_indices(
            videos[name], "25", 64, 48
        )


def test_rotated_source_comes_out_upright_and_exact(tmp_path):
    path = tmp_path / "rot.mp4"
    write_signature_video(path, num_frames=40, fps=30, size=(64, 48), rotation=-90)
    times, end = container_timeline(path)
    picked, shown, meta = _ours(path, "auto")
    assert meta.backend == "pyav" and meta.rotation == 270
    assert (meta.width, meta.height) == (64, 48)
    assert shown == picked == reference_selection(times, end, Fraction(25))
    with pytest.raises(InputError, match="rotation"):
        open_video(path, backend="decord")


def test_native_rate_passes_every_frame_through(videos):
    with open_video(videos["vfr->25"]) as reader:
        frames = list(reader.iter_frames())
    assert [read_signature(f.rgb) for f in frames] == list(range(N_FRAMES))
    times, _ = container_timeline(videos["vfr->25"])
    assert [f.time_s for f in frames] == [float(t) for t in times]


def test_output_times_are_on_the_output_grid(videos):
    with open_video(videos["29.97->25"]) as reader:
        frames = list(reader.iter_frames(fps=25))
    assert [f.time_s for f in frames] == [k / 25 for k in range(len(frames))]
    assert [f.index for f in frames] == list(range(len(frames)))


def test_ntsc_decimals_mean_the_exact_ntsc_rate():
    assert to_fraction(29.97) == Fraction(30000, 1001)
    assert to_fraction(23.976) == Fraction(24000, 1001)
    assert to_fraction("30000/1001") == Fraction(30000, 1001)
    assert to_fraction(25) == 25


def test_rounding_is_half_away_from_zero():
    assert round_half_away(Fraction(5, 2)) == 3  # Python's round() would give 2
    assert round_half_away(Fraction(7, 2)) == 4
    assert round_half_away(Fraction(-5, 2)) == -3
    assert round_half_away(Fraction(249, 100)) == 2


def test_exact_over_hours_where_float32_timestamps_fail():
    """At 29.97 fps after an hour, ties at .5 still resolve exactly (no float drift)."""
    fps_in = Fraction(30000, 1001)
    start = 108_000  # about one hour in
    times = [Fraction(start + i) / fps_in for i in range(600)]
    base = times[0]
    rel = [t - base for t in times]
    end = rel[-1] + 1 / fps_in
    got = select_source_frames(rel, end, Fraction(25)).tolist()
    assert got == reference_selection(rel, end, Fraction(25))
    # The same decision from float32 seconds (decord's timestamps) goes wrong here.
    f32 = np.float32([float(t) for t in times]) - np.float32(float(base))
    slots32 = np.floor(f32 * np.float32(25) + np.float32(0.5)).astype(np.int64)
    exact = [round_half_away(t * 25) for t in rel]
    assert slots32.tolist() != exact


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(st.integers(min_value=1, max_value=9000), min_size=1, max_size=80),
    last=st.integers(min_value=0, max_value=9000),
    fps=st.sampled_from([Fraction(25), Fraction(30000, 1001), Fraction(10), Fraction(60)]),
)
def test_streaming_form_equals_reference_on_random_vfr_timelines(steps, last, fps):
    tick = Fraction(1, 90000)
    ticks = [0]
    for s in steps[:-1]:
        ticks.append(ticks[-1] + s)
    times = [t * tick for t in ticks]
    end = ticks[-1] + last
    expected = reference_selection(times, end * tick, fps)
    streamed = [j for _, j, _ in resample_stream(((t, None) for t in ticks), tick, fps, [end])]
    assert streamed == expected
    assert select_source_frames(times, end * tick, fps).tolist() == expected
