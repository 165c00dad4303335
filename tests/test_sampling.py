"""Snippet sampling: counts, timestamps, frame contents, batches, tail policies, damage."""

from __future__ import annotations

from fractions import Fraction

import cv2
import numpy as np
import pytest
from video_helpers import container_timeline, reference_selection

from talkit.datasets.synthetic.broken import make_broken_videos
from talkit.datasets.synthetic.signature import read_signature, write_signature_video
from talkit.errors import InputError, VideoDecodeError
from talkit.extractors import (
    BatchTransform,
    SnippetSpec,
    iter_snippet_batches,
    num_snippets,
    snippet_timestamps,
)

I3D = SnippetSpec(fps=25, clip_len=16, stride=16)


def _thumos_count(n: int, length: int, stride: int) -> int:
    return (n - length) // stride + 1 if n >= length else 0


def _pad_count(n: int, length: int, stride: int) -> int:
    """Pad policy, stated as a loop: add snippets while the last frame is uncovered and
    the next snippet would still start inside the video (at least one if n >= 1)."""
    if n == 0:
        return 0
    c = max(_thumos_count(n, length, stride), 1)
    while (c - 1) * stride + length < n and c * stride < n:
        c += 1
    return c


@pytest.mark.parametrize(("length", "stride"), [(16, 16), (16, 8), (32, 32), (4, 10), (1, 1)])
def test_counts_and_timestamps_follow_the_formula_for_0_to_100_frames(length, stride):
    spec = SnippetSpec(25, length, stride)
    pad = SnippetSpec(25, length, stride, tail="pad")
    for n in range(101):
        count = _thumos_count(n, length, stride)
        assert num_snippets(n, spec) == count
        ts = snippet_timestamps(n, spec)
        assert ts.shape == (count, 2)
        i = np.arange(count)
        assert np.allclose(ts[:, 0], i * stride / 25) and np.allclose(
            ts[:, 1], (i * stride + length) / 25
        )
        p = num_snippets(n, pad)
        assert p == _pad_count(n, length, stride)
        if n == 0:
            continue
        tp = snippet_timestamps(n, pad)
        assert tp[-1, 1] == pytest.approx(min((p - 1) * stride + length, n) / 25)


@pytest.fixture(scope="module")
def sig100(tmp_path_factory):
    path = tmp_path_factory.mktemp("sampling") / "sig100.mp4"
    write_signature_video(path, num_frames=100, fps=25)
    return path


def _collect(stream):
    batches = list(stream)
    if not batches:
        return batches, np.zeros((0,)), np.zeros((0, 2))
    idx = np.concatenate([b.indices for b in batches])
    ts = np.concatenate([np.stack([b.starts_s, b.ends_s], 1) for b in batches])
    return batches, idx, ts


@pytest.mark.slow
def test_real_videos_of_every_length_give_formula_counts_and_the_right_frames(tmp_path):
    """Videos of 1..100 frames at 25 fps: counts, timestamps and pixels per snippet."""
    for n in [*range(1, 40), *range(40, 101, 7), 100]:
        path = tmp_path / f"n{n}.mp4"
        write_signature_video(path, num_frames=n, fps=25)
        for spec in (I3D, SnippetSpec(25, 16, 16, tail="pad")):
            stream = iter_snippet_batches(path, spec, batch_size=3)
            batches, idx, ts = _collect(stream)
            count = num_snippets(n, spec)
            assert stream.num_frames == n and stream.num_snippets == count
            assert idx.tolist() == list(range(count))
            if count == 0:  # shorter than one clip: no snippets, no error
                assert batches == [] and spec.tail == "drop" and n < 16
                continue
            assert np.allclose(ts, snippet_timestamps(n, spec))
            for b in batches:
                for row, i in enumerate(b.indices):
                    shown = [read_signature(f) for f in b.frames[row]]
                    want = [min(i * 16 + t, n - 1) for t in range(16)]  # pad repeats last
                    assert shown == want == b.source_frames[row].tolist()


def test_30fps_source_snippets_hold_the_resampled_frames(tmp_path):
    path = tmp_path / "s30.mp4"
    write_signature_video(path, num_frames=90, fps=30)
    times, end = container_timeline(path)
    expected = reference_selection(times, end, Fraction(25))  # 75 output frames
    spec = SnippetSpec(25, 16, 16)
    stream = iter_snippet_batches(path, spec, batch_size=2)
    batches, idx, _ts = _collect(stream)
    assert stream.num_frames == len(expected) == 75
    assert len(idx) == (75 - 16) // 16 + 1 == 4
    for b in batches:
        for row, i in enumerate(b.indices):
            want = expected[i * 16 : i * 16 + 16]
            assert [read_signature(f) for f in b.frames[row]] == want


def test_overlapping_and_gapped_strides_hold_the_right_frames(sig100):
    for length, stride, bs in [(16, 8, 4), (16, 4, 3), (4, 10, 2), (32, 16, 1)]:
        spec = SnippetSpec(25, length, stride)
        batches, idx, _ = _collect(iter_snippet_batches(sig100, spec, batch_size=bs))
        assert len(idx) == _thumos_count(100, length, stride)
        for b in batches:
            assert b.frames.shape[1:] == (length, 48, 64, 3) and len(b) <= bs
            for row, i in enumerate(b.indices):
                assert [read_signature(f) for f in b.frames[row]] == list(
                    range(i * stride, i * stride + length)
                )


def test_batches_are_bounded_and_ordered(sig100):
    stream = iter_snippet_batches(sig100, I3D, batch_size=4)
    batches, idx, ts = _collect(stream)
    assert [len(b) for b in batches] == [4, 2]  # 6 snippets = floor((100-16)/16)+1
    assert all(b.frames.dtype == np.uint8 for b in batches)
    assert idx.tolist() == list(range(6))
    assert np.allclose(stream.timestamps(), ts)
    assert ts[0].tolist() == [0.0, 0.64] and ts[-1].tolist() == [80 / 25, 96 / 25]


def test_transform_runs_on_batches_with_the_i3d_convention(sig100):
    transform = BatchTransform(resize_short=256, crop=224, normalize="i3d")
    batches, _, _ = _collect(iter_snippet_batches(sig100, I3D, batch_size=4, transform=transform))
    x = batches[0].frames
    assert tuple(x.shape) == (4, 3, 16, 224, 224)
    assert str(x.dtype) == "torch.float32"
    assert float(x.min()) >= -1.0 and float(x.max()) <= 1.0
    # Same numbers as applying the transform to the raw batch afterwards.
    raw, _, _ = _collect(iter_snippet_batches(sig100, I3D, batch_size=4))
    assert np.allclose(transform(raw[0].frames).numpy(), x.numpy())


def test_frame_folder_input(tmp_path, sig100):
    folder = tmp_path / "frames"
    folder.mkdir()
    raw, _, _ = _collect(iter_snippet_batches(sig100, SnippetSpec(25, 1, 1), batch_size=100))
    for i, f in enumerate(raw[0].frames[:40, 0]):
        cv2.imwrite(str(folder / f"img_{i + 1}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    # A 12.5 fps folder resampled to 25 fps shows every frame twice; names sort naturally.
    stream = iter_snippet_batches(
        folder, SnippetSpec(25, 16, 16), batch_size=8, fps_for_frames=12.5
    )
    batches, _idx, _ = _collect(stream)
    assert stream.meta.backend == "frames" and stream.num_frames == 80
    assert [read_signature(f) for f in batches[0].frames[0]] == [k // 2 for k in range(16)]
    with pytest.raises(InputError, match="fps"):
        iter_snippet_batches(folder, I3D, batch_size=2)


def test_damage_raises_or_keeps_the_prefix(tmp_path):
    broken = make_broken_videos(tmp_path / "broken")
    with pytest.raises(VideoDecodeError) as err:
        list(iter_snippet_batches(broken["truncated"], I3D, batch_size=2))
    assert err.value.kind == "truncated" and err.value.frames_expected == 100
    stream = iter_snippet_batches(broken["truncated"], I3D, batch_size=2, tolerate_damage=True)
    batches, idx, _ = _collect(stream)
    assert stream.damage is not None and stream.damage.kind == "truncated"
    kept = stream.damage.frames_kept
    assert 16 <= kept < 100 and len(idx) == kept // 16
    for b in batches:
        for row, i in enumerate(b.indices):
            assert [read_signature(f) for f in b.frames[row]] == list(range(i * 16, i * 16 + 16))
    # Shorter than one clip is not damage: a single-frame video gives zero snippets.
    single = iter_snippet_batches(broken["single_frame"], I3D, batch_size=2)
    assert list(single) == [] and single.num_snippets == 0 and single.damage is None


def test_bad_specs_are_input_errors():
    with pytest.raises(InputError):
        SnippetSpec(25, 0, 16)
    with pytest.raises(InputError):
        SnippetSpec(25, 16, 16, tail="wrap")  # type: ignore[arg-type]
    with pytest.raises(InputError):
        SnippetSpec(0, 16, 16)
    with pytest.raises(InputError):
        iter_snippet_batches("x.mp4", I3D, batch_size=0)
