"""Synthetic action videos: the ground truth is true, reproducible, and in every format."""

from __future__ import annotations

import itertools
import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from synth_helpers import decode, files_under_malloc_perturbation, motion_states

from talkit.datasets import load_annotations
from talkit.datasets.synthetic.timeline import InstanceDistribution, sample_timeline
from talkit.datasets.synthetic.videos import generate_videos
from talkit.errors import InputError

TINY = {"num_videos": 3, "duration_s": 5.0, "size": "64x48", "classes": 4}
EDGE_S = 0.09  # frames this close to a boundary may show either side (motion needs neighbours)


def _expected_states(instances: list[dict], label_index: dict[str, int], t: float):
    """What the frame at time t must show according to the written truth, or None at edges."""
    spans = []
    for inst in instances:
        c = label_index[inst["label"]]
        spans.append((*inst["segment"], ("moving", c)))
        for side in ("context_before", "context_after"):
            if inst[side]:
                spans.append((*inst[side], ("still", c)))
    for start, end, state in spans:
        if start + EDGE_S <= t < end - EDGE_S:
            return state
    if any(abs(t - b) < EDGE_S for s, e, _ in spans for b in (s, e)):
        return None
    return ("absent", None)


@pytest.mark.parametrize(
    ("codec", "fps"), [("h264", 25), ("h264", "variable"), ("mpeg4", 30), ("vp9", 29.97)]
)
def test_decoded_frames_show_exactly_the_annotated_actions(tmp_path: Path, codec, fps) -> None:
    """Inside every annotated instance the class's object moves; in context it stands
    still; elsewhere it is absent. Checked on decoded pixels for every frame."""
    ds = generate_videos(tmp_path, codec=codec, fps=fps, seed=3, **TINY)
    manifest = json.loads((tmp_path / "synthetic.json").read_text())
    hues = [c["hue"] for c in manifest["classes"]]
    truth = load_annotations(tmp_path / "annotations" / "gt.json")
    seen: dict[str, int] = {"moving": 0, "still": 0, "absent": 0}
    for vid, video in ds.videos.items():
        instances = manifest["videos"][vid]["instances"]
        # The annotation file and the generator's own record agree.
        assert [(s.label, s.start_s, s.end_s) for s in truth.videos[vid].annotations] == [
            (i["label"], *i["segment"]) for i in instances
        ]
        frames, times = decode(tmp_path / video.url)
        assert len(frames) == manifest["videos"][vid]["frames"]
        states = motion_states(frames, hues)
        for t, state in zip(times, states, strict=True):
            want = _expected_states(instances, ds.class_index(), t)
            if want is None:
                continue
            assert state == want, f"{vid} at {t:.3f}s: saw {state}, truth says {want}"
            seen[want[0]] += 1
    # The check exercised all three kinds of frames.
    assert min(seen.values()) > 5, seen


def test_same_seed_gives_identical_files_and_frames(tmp_path: Path) -> None:
    a = generate_videos(tmp_path / "a", seed=11, **TINY)
    b = generate_videos(tmp_path / "b", seed=11, **TINY)
    c = generate_videos(tmp_path / "c", seed=12, **TINY)
    assert a == b
    ann = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    truth_files = [p for p in ann if p.parts[0] != "videos"]
    assert len(truth_files) >= 12  # gt.json, classlist, synthetic.json, 8 W-TALC, THUMOS txt
    for rel in truth_files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    for video in a.videos.values():
        fa, ta = decode(tmp_path / "a" / video.url)
        fb, tb = decode(tmp_path / "b" / video.url)
        assert np.array_equal(ta, tb)
        assert all(np.array_equal(x, y) for x, y in zip(fa, fb, strict=True))
        # H.264 in MP4 is even byte-identical.
        assert (tmp_path / "a" / video.url).read_bytes() == (
            tmp_path / "b" / video.url
        ).read_bytes()
    assert c != a
    assert (tmp_path / "c" / "annotations" / "gt.json").read_bytes() != (
        tmp_path / "a" / "annotations" / "gt.json"
    ).read_bytes()


def test_same_seed_gives_the_same_files_whatever_malloc_returns(tmp_path: Path) -> None:
    """x264's mb-tree read memory it never wrote: this 320x240 clip came out as other
    bytes when fresh allocations held 0x01. The demo's videos must not depend on that."""
    code = (
        "from talkit.datasets.synthetic.videos import generate_videos\n"
        "generate_videos(OUT, num_videos=1, duration_s=3.0, size='320x240', seed=0)"
    )
    assert len(set(files_under_malloc_perturbation(code, tmp_path))) == 1


def test_every_annotation_format_reads_back_the_same_truth(tmp_path: Path) -> None:
    ds = generate_videos(tmp_path, seed=5, num_videos=4, duration_s=8, size="64x48", classes=3)
    ann = tmp_path / "annotations"
    assert (ann / "classlist.txt").read_text().split() == ds.classes
    expected = {
        vid: [(s.label, s.start_s, s.end_s) for s in v.annotations] for vid, v in ds.videos.items()
    }
    assert sum(map(len, expected.values())) > 3
    for fmt in ("gt.json", "wtalc", "thumos"):
        back = load_annotations(ann / fmt)
        assert sorted(back.classes) == sorted(ds.classes), fmt
        assert not back.problems, (fmt, back.problems)
        for vid, segs in expected.items():
            if fmt == "thumos" and not segs:
                assert vid not in back.videos  # per-class files cannot list action-free videos
                continue
            got = [(s.label, s.start_s, s.end_s) for s in back.videos[vid].annotations]
            assert sorted(got) == sorted(segs), (fmt, vid)
            assert back.canonical_split(back.videos[vid].subset) == ds.canonical_split(
                ds.videos[vid].subset
            )
    wtalc = load_annotations(ann / "wtalc")
    assert wtalc.classes == ds.classes  # W-TALC keeps the class order (label indices)
    assert {v.subset for v in ds.videos.values()} == {"validation", "test"}
    assert [(v.duration_s, v.fps) for v in wtalc.videos.values()] == [
        (v.duration_s, v.fps) for v in ds.videos.values()
    ]


def test_frame_rates_sizes_and_variable_timing(tmp_path: Path) -> None:
    ds = generate_videos(
        tmp_path / "ntsc", num_videos=1, duration_s=2, fps=29.97, size="1280x720", seed=1
    )
    (video,) = ds.videos.values()
    with av.open(str(tmp_path / "ntsc" / video.url)) as c:
        s = c.streams.video[0]
        assert (s.codec_context.width, s.codec_context.height) == (1280, 720)
        assert s.average_rate == Fraction(30000, 1001)
        assert s.codec_context.name == "h264"
    assert video.fps == pytest.approx(29.97, abs=1e-3)

    ds = generate_videos(
        tmp_path / "vfr", num_videos=1, duration_s=4, fps="variable", size="96x64", seed=1
    )
    (video,) = ds.videos.values()
    frames, times = decode(tmp_path / "vfr" / video.url)
    steps = np.diff(times)
    assert steps.min() < 0.03 and steps.max() > 0.05  # irregular intervals, 25 fps on average
    assert video.fps == pytest.approx(len(frames) / video.duration_s, rel=1e-6)
    assert 20 < video.fps < 30
    assert frames[0].shape == (64, 96, 3)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"size": "65x49"}, "odd side"),
        ({"size": "32x24"}, "outside the supported range"),
        ({"size": "1920x1080"}, "outside the supported range"),
        ({"size": "big"}, "cannot read frame size"),
        ({"codec": "av1x"}, "unknown codec"),
        ({"fps": "fast"}, "cannot read frame rate"),
        ({"classes": ["a b", "c"]}, "unsafe in file names"),
        ({"duration_s": "9:3"}, "duration"),
    ],
)
def test_bad_options_raise_input_errors_that_say_what_to_do(
    tmp_path: Path, kwargs, fragment
) -> None:
    args = {"num_videos": 1, "duration_s": 2, "size": "64x48"} | kwargs
    with pytest.raises(InputError, match=fragment) as info:
        generate_videos(tmp_path, **args)
    assert info.value.exit_code == 2
    assert not list(tmp_path.rglob("*.mp4"))


def test_default_distribution_is_thumos_like() -> None:
    """Several short instances per video (THUMOS14: median 3.0 s), non-overlapping blocks
    with background between them, some videos without any action."""
    dist = InstanceDistribution()
    rng = np.random.default_rng(0)
    counts, durations, empty = [], [], 0
    for _ in range(300):
        tl = sample_timeline(rng, duration_s=120.0, num_classes=20, dist=dist)
        counts.append(len(tl))
        empty += not tl
        durations += [x.end_s - x.start_s for x in tl]
        assert len({x.class_idx for x in tl}) <= 1
        for prev, nxt in itertools.pairwise(tl):
            assert nxt.block_start_s - prev.block_end_s >= dist.gap_min_s - 1e-9
        assert all(x.block_start_s > 0 and x.block_end_s < 120 for x in tl)
    assert 3.0 < np.mean(counts) < 5.0
    assert 2.5 < np.median(durations) < 3.5
    assert 0 < empty < 60
    # A 4-second clip still gets short instances instead of none.
    short = [sample_timeline(rng, duration_s=4.0, num_classes=3, dist=dist) for _ in range(100)]
    assert np.mean([len(s) for s in short]) > 0.8
    assert all(x.block_end_s <= 4.0 for s in short for x in s)
