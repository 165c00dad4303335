"""Colours: every backend's RGB frames equal ``ffmpeg -pix_fmt rgb24`` bit for bit.

The test videos are random YUV (every level, in and out of the nominal range, in every
plane), encoded with PyAV and tagged with the colour range and matrix under test, so a
backend that ignores the tag or rounds differently fails on many pixels.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import numpy as np
import pytest
from av.video.reformatter import ColorRange, Colorspace
from video_helpers import FFMPEG

from talkit.errors import InputError
from talkit.extractors import open_video

needs_ffmpeg = pytest.mark.skipif(
    FFMPEG is None, reason="ffmpeg not installed (apt-get install ffmpeg)"
)

W, H, N = 96, 64, 6
# name -> (pixel format handed to the encoder, colour range, matrix); None: not tagged
KINDS = {
    "limited_bt601_yuv420p": ("yuv420p", None, None),
    "full_range_yuvj420p": ("yuvj420p", ColorRange.JPEG, None),
    "limited_bt709_yuv420p": ("yuv420p", ColorRange.MPEG, Colorspace.ITU709),
}


def write_colour_video(
    path: Path,
    pix_fmt: str,
    color_range: int | None,
    colorspace: int | None,
    *,
    codec: str = "libx264",
) -> Path:
    """A short video of random YUV planes with the given colour tags on stream and frames."""
    rng = np.random.default_rng(7)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = W, H, pix_fmt
        ctx = stream.codec_context
        if color_range is not None:
            ctx.color_range = color_range
        if colorspace is not None:
            ctx.colorspace = colorspace
            ctx.color_primaries = colorspace  # BT.709's code is 1 in all three tables
            ctx.color_trc = colorspace
        for i in range(N):
            if pix_fmt.endswith("10le"):
                rgb = rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pix_fmt)
            else:
                planes = rng.integers(0, 256, size=(H * 3 // 2, W), dtype=np.uint8)
                frame = av.VideoFrame.from_ndarray(planes, format=pix_fmt)
            if color_range is not None:
                frame.color_range = color_range
            if colorspace is not None:
                frame.colorspace = colorspace
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def ffmpeg_rgb(path: Path, vf: str | None = None) -> np.ndarray:
    """Frames as ``ffmpeg -i path -pix_fmt rgb24`` decodes them: (N, H, W, 3) uint8."""
    assert FFMPEG is not None
    cmd = [FFMPEG, "-v", "error", "-i", str(path), *(["-vf", vf] if vf else [])]
    cmd += ["-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    raw = subprocess.run(cmd, capture_output=True, check=True, timeout=60).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, H, W, 3)


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("colour")
    return {k: write_colour_video(root / f"{k}.mp4", *v) for k, v in KINDS.items()}


def test_the_test_videos_declare_what_they_claim(videos):
    """Guards the tests below: each video's decoded frames carry the intended tags."""
    seen = {}
    for kind, path in videos.items():
        with av.open(str(path)) as c:
            f = next(c.decode(video=0))
            seen[kind] = (f.format.name, f.color_range, f.colorspace)
    assert seen["limited_bt601_yuv420p"][0] == "yuv420p"
    assert seen["limited_bt601_yuv420p"][1] != ColorRange.JPEG
    assert seen["full_range_yuvj420p"][:2] == ("yuvj420p", ColorRange.JPEG)
    assert seen["limited_bt709_yuv420p"] == ("yuv420p", ColorRange.MPEG, Colorspace.ITU709)


@needs_ffmpeg
@pytest.mark.parametrize("kind", ["full_range_yuvj420p", "limited_bt709_yuv420p"])
def test_the_tags_change_ffmpegs_colours(videos, kind):
    """The reference honours the tags: read as limited-range BT.601, colours differ."""
    as_601_tv = ffmpeg_rgb(videos[kind], "scale=in_range=tv:in_color_matrix=bt601")
    diff = np.abs(ffmpeg_rgb(videos[kind]).astype(int) - as_601_tv)
    assert diff.max() > 15 and (diff > 1).mean() > 0.3


@needs_ffmpeg
@pytest.mark.parametrize("backend", ["pyav", "decord"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_frames_equal_ffmpeg_rgb24_bit_for_bit(videos, kind, backend):
    reference = ffmpeg_rgb(videos[kind])
    with open_video(videos[kind], backend=backend) as reader:
        assert reader.meta.backend == backend
        frames = np.stack([f.rgb for f in reader.iter_frames()])
    assert frames.shape == reference.shape == (N, H, W, 3)
    assert np.array_equal(frames, reference), (
        f"{backend} differs from ffmpeg by up to {np.abs(frames.astype(int) - reference).max()}"
    )


@needs_ffmpeg
def test_full_range_without_the_j_format_is_honoured(tmp_path):
    """VP9 (like HEVC) flags full range on a plain yuv420p stream instead of yuvj420p."""
    path = write_colour_video(
        tmp_path / "full.webm", "yuv420p", ColorRange.JPEG, None, codec="libvpx-vp9"
    )
    reference = ffmpeg_rgb(path)
    for backend in ("pyav", "decord"):
        frames = np.stack([f.rgb for f in open_video(path, backend=backend).iter_frames()])
        assert np.array_equal(frames, reference), backend


def test_decord_refuses_pixel_formats_it_would_colour_differently(tmp_path):
    path = write_colour_video(tmp_path / "ten_bit.mkv", "yuv420p10le", None, None)
    with pytest.raises(InputError, match=r"yuv420p10le.*differently from ffmpeg") as err:
        open_video(path, backend="decord")
    assert "backend='pyav'" in (err.value.hint or "")
    with open_video(path) as reader:  # the default backend reads it
        assert reader.meta.backend == "pyav"
        assert len([f for f in reader.iter_frames()]) == N
