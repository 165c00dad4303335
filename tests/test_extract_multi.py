"""extract_video_multi: one decode for several backbones, the same features as one each.

Distinct "backbones" are I3D configured differently (only I3D is registered): another
input size and resize, another fps and clip length, rgb only or with flow. Frames are
tiny and torch runs on 2 threads, so each test takes seconds.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from video_helpers import container_timeline, make_long_video

from talkit.datasets.synthetic.broken import make_broken_videos
from talkit.datasets.synthetic.signature import write_signature_video
from talkit.errors import VideoDecodeError
from talkit.extractors import (
    ShortVideoWarning,
    build_backbone,
    extract_video,
    extract_video_multi,
    select_source_frames,
)
from talkit.extractors.flow import FlowComputer
from talkit.extractors.preprocess import Preprocess, spatial_transform
from talkit.extractors.sampling import (
    SnippetSpec,
    iter_snippet_batches,
    num_snippets,
    snippet_timestamps,
)
from talkit.extractors.video_pyav import PyAVReader

FLOW = {"flow_method": "farneback"}  # fast; sharing works the same for every method
CONFIGS: dict[str, dict[str, Any]] = {
    # rgb only, straight to 64 px square, 25 fps, 16-frame snippets
    "rgb64": {"streams": ("rgb",), "input_size": 64, "resize_short": None},
    # rgb + flow on short side 64, crop 48
    "two48": {"streams": ("rgb", "flow"), "input_size": 48, "resize_short": 64, **FLOW},
    # 10 fps, 8-frame snippets, the same resize as two48
    "slow10": {
        "streams": ("rgb",),
        "input_size": 48,
        "resize_short": 64,
        "fps": 10.0,
        "clip_len": 8,
        "stride": 8,
    },
    # flow only, the same flow spec and frames as two48, overlapping 8-frame snippets
    "flow8": {
        "streams": ("flow",),
        "input_size": 48,
        "resize_short": 64,
        "clip_len": 8,
        "stride": 4,
        **FLOW,
    },
    # as flow8 but another flow bound: another flow spec, so nothing is shared with it
    "flow8b": {
        "streams": ("flow",),
        "input_size": 48,
        "resize_short": 64,
        "clip_len": 8,
        "stride": 4,
        "flow_bound": 10.0,
        **FLOW,
    },
}


@pytest.fixture(autouse=True)
def _two_threads() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def models() -> dict[str, Any]:
    return {
        name: build_backbone("i3d", random_weights_seed=i, **opts)
        for i, (name, opts) in enumerate(CONFIGS.items())
    }


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("multi")
    specs = {
        "ntsc": dict(num_frames=75, fps=Fraction(30000, 1001), size=(80, 60), seed=1),
        "vfr": dict(num_frames=60, fps=25, size=(64, 48), seed=2, vfr=True),
        "one_s": dict(num_frames=25, fps=25, size=(64, 48), seed=3),
    }
    out = {}
    for name, kw in specs.items():
        out[name] = root / f"{name}.mp4"
        write_signature_video(out[name], **kw)
    return out


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every decoding pass of the PyAV reader, counted (the real decoder runs)."""
    calls: list[str] = []
    real = PyAVReader._decode

    def counted(self: PyAVReader, *args: Any) -> Any:
        calls.append(self.meta.path)
        return real(self, *args)

    monkeypatch.setattr(PyAVReader, "_decode", counted)
    return calls


def _reference(path: Path, model: Any, batch_size: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """One backbone the way extract_video did it before the shared pass: its own decode
    through the public iter_snippet_batches at its fps, then preprocess and forward."""
    spec = model.spec
    output = SnippetSpec(spec.fps, spec.clip_len, spec.stride, "drop")
    read = SnippetSpec(spec.fps, spec.clip_len + 1, spec.stride, "pad") if spec.flow else output
    stream = iter_snippet_batches(
        path, read, batch_size=batch_size, transform=spatial_transform(spec)
    )
    prep = Preprocess(spec, FlowComputer(spec.flow) if spec.flow else None)
    feats: dict[str, list[np.ndarray]] = {s: [] for s in spec.streams}
    for batch in stream:
        count = len(batch)
        if stream.num_frames is not None:
            count = int(np.sum(batch.indices < num_snippets(stream.num_frames, output)))
        if count:
            for s, f in model.extract(prep(batch, count)).items():
                feats[s].append(f)
    arrays = {
        s: np.concatenate(v) if v else np.zeros((0, 1024), np.float32) for s, v in feats.items()
    }
    return arrays, snippet_timestamps(int(stream.num_frames or 0), output)


def _assert_same(multi: Any, single: Any) -> None:
    assert multi.spec == single.spec
    assert sorted(multi.streams) == sorted(single.streams)
    for s in single.streams:
        assert multi.streams[s].dtype == single.streams[s].dtype
        assert multi.streams[s].tobytes() == single.streams[s].tobytes(), s
    assert multi.timestamps.tobytes() == single.timestamps.tobytes()
    for key in ("video", "num_frames", "num_snippets", "damage", "warnings"):
        assert multi.meta[key] == single.meta[key], key


@pytest.mark.parametrize("video", ["ntsc", "vfr"])
def test_three_backbones_decode_once_and_equal_three_single_runs(
    video: str, videos: dict[str, Path], models: dict[str, Any], decodes: list[str]
) -> None:
    path = videos[video]
    chosen = {name: models[name] for name in ("rgb64", "two48", "slow10")}
    multi = extract_video_multi(path, chosen, batch_size=3)
    assert decodes == [str(path)]  # one decoding pass for three backbones
    frames = len(container_timeline(path)[0])
    assert multi["rgb64"].meta["decode"]["frames_decoded"] == frames
    assert multi["slow10"].meta["decode"]["passes"] == 1
    for name, model in chosen.items():
        single = extract_video(path, model, batch_size=3)
        _assert_same(multi[name], single)
        reference, timestamps = _reference(path, model, batch_size=3)
        for s, array in reference.items():
            assert multi[name].streams[s].tobytes() == array.tobytes(), (name, s)
        assert multi[name].timestamps.tobytes() == timestamps.tobytes()
        assert multi[name].num_snippets > 0
    assert len(decodes) == 1 + 3 + 3  # the single runs and the references decode again


def test_batch_size_per_backbone_changes_nothing_but_the_batches(
    videos: dict[str, Path], models: dict[str, Any]
) -> None:
    chosen = {name: models[name] for name in ("two48", "slow10")}
    by_name = extract_video_multi(videos["ntsc"], chosen, batch_size={"two48": 2, "slow10": 5})
    for name, model in chosen.items():
        bs = by_name[name].meta["batch_size"]
        _assert_same(by_name[name], extract_video(videos["ntsc"], model, batch_size=bs))


def _sources_shown(path: Path, rates: list[float]) -> set[int]:
    """Decoded frames some rate shows, by the fps rule applied to the container's times."""
    times, end = container_timeline(path)
    shown: set[int] = set()
    for fps in rates:
        shown |= set(select_source_frames(times, end, Fraction(fps)).tolist())
    return shown


def test_backbones_with_the_same_resize_share_it(
    videos: dict[str, Path], models: dict[str, Any]
) -> None:
    path = videos["ntsc"]  # 29.97 fps: 25 and 10 fps drop different frames
    alone = extract_video(path, models["two48"], batch_size=4).meta["decode"]
    assert alone["resized_frames"] == len(_sources_shown(path, [25]))
    multi = extract_video_multi(
        path, {n: models[n] for n in ("two48", "slow10", "flow8")}, batch_size=4
    )
    decode = multi["two48"].meta["decode"]
    # One resize (short side 64) for all three: each decoded frame shown at 25 or 10 fps
    # is resized once, not once per backbone.
    assert decode["resized_frames"] == len(_sources_shown(path, [25, 10]))
    assert decode["resized_frames"] < alone["resized_frames"] + len(_sources_shown(path, [10]))
    with_square = extract_video_multi(
        path, {n: models[n] for n in ("two48", "rgb64")}, batch_size=4
    )
    # rgb64's square resize is another transform: its frames are resized on their own.
    assert with_square["rgb64"].meta["decode"]["resized_frames"] == 2 * alone["resized_frames"]


def test_flow_is_shared_within_a_flow_spec_and_never_across(
    videos: dict[str, Path], models: dict[str, Any]
) -> None:
    path = videos["vfr"]
    single = {n: extract_video(path, models[n], batch_size=4) for n in ("two48", "flow8", "flow8b")}
    pairs = {n: f.meta["decode"]["flow_pairs_computed"] for n, f in single.items()}
    assert pairs["flow8"] == pairs["flow8b"] > 0
    shared = extract_video_multi(path, {n: models[n] for n in ("two48", "flow8")}, batch_size=4)
    # The same flow spec on the same frames: each decoded-frame pair is computed once
    # (both need the pairs of the frames they cover; the longer coverage wins).
    assert shared["two48"].meta["decode"]["flow_pairs_computed"] == max(
        pairs["two48"], pairs["flow8"]
    )
    apart = extract_video_multi(path, {n: models[n] for n in ("two48", "flow8b")}, batch_size=4)
    # Another flow bound is another flow spec: nothing is shared.
    assert apart["two48"].meta["decode"]["flow_pairs_computed"] == pairs["two48"] + pairs["flow8b"]
    for result in (shared, apart):
        for name, feats in result.items():
            _assert_same(feats, single[name])


def test_one_flow_computer_serves_backbones_with_equal_flow_specs(
    videos: dict[str, Path], models: dict[str, Any]
) -> None:
    with FlowComputer(models["two48"].spec.flow) as computer:
        result = extract_video_multi(
            videos["one_s"],
            {n: models[n] for n in ("two48", "flow8")},
            flow_computers={"two48": computer, "flow8": computer},
        )
    for name in ("two48", "flow8"):
        _assert_same(result[name], extract_video(videos["one_s"], models[name]))


def test_too_short_for_one_backbone_only_that_one_gets_no_snippets(
    videos: dict[str, Path], models: dict[str, Any]
) -> None:
    """1 s is 25 frames at 25 fps (one 16-frame snippet) but 10 frames at 10 fps. The
    Python API gives each backbone what it would alone (zero snippets and a warning for
    the short one); the pipeline fails such a video for every feature set (its test)."""
    slow16 = build_backbone(
        "i3d", random_weights_seed=0, streams=("rgb",), input_size=48, resize_short=64, fps=10
    )
    with pytest.warns(ShortVideoWarning, match="10 frame"):
        multi = extract_video_multi(videos["one_s"], {"two48": models["two48"], "slow16": slow16})
    assert multi["slow16"].num_snippets == 0 and multi["slow16"].streams["rgb"].shape == (0, 1024)
    assert multi["two48"].num_snippets == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ShortVideoWarning)
        _assert_same(multi["slow16"], extract_video(videos["one_s"], slow16))
    _assert_same(multi["two48"], extract_video(videos["one_s"], models["two48"]))


def test_a_damaged_video_fails_once_for_all_backbones(
    tmp_path: Path, models: dict[str, Any], decodes: list[str]
) -> None:
    broken = make_broken_videos(tmp_path, seed=0)["truncated"]
    chosen = {n: models[n] for n in ("rgb64", "two48", "slow10")}
    with pytest.raises(VideoDecodeError, match="truncated") as raised:
        extract_video_multi(broken, chosen)
    assert raised.value.kind == "truncated" and decodes == [str(broken)]
    # Tolerated: each backbone gets the clean prefix and the damage report it gets alone.
    tolerant = extract_video_multi(broken, chosen, tolerate_damage=True)
    for name, model in chosen.items():
        alone = extract_video(broken, model, tolerate_damage=True)
        assert alone.meta["damage"] is not None
        _assert_same(tolerant[name], alone)


@pytest.mark.slow
def test_memory_follows_the_snippet_windows_not_the_video_length(
    tmp_path: Path, models: dict[str, Any]
) -> None:
    """What the shared pass holds (frames in the batches being filled, cached flow pairs)
    peaks at the same count for a 4 s and a 24 s video: it is bounded by the windows in
    flight, not by the video's length."""
    chosen = {n: models[n] for n in ("two48", "slow10", "flow8")}
    peaks, snippets = [], []
    for seconds in (4, 24):
        path = make_long_video(tmp_path / f"long{seconds}.mp4", seconds=seconds, size=(64, 48))
        result = extract_video_multi(path, chosen, batch_size=4)
        peaks.append(result["two48"].meta["decode"]["peak_frames_held"])
        snippets.append(result["two48"].num_snippets)
    assert snippets[1] >= 5 * snippets[0]
    assert peaks[0] == peaks[1] > 0
    # The bound: two batches being filled per backbone, plus the pairs of those windows.
    windows = sum(2 * 4 * (m.spec.clip_len + 1) for m in chosen.values())
    assert peaks[1] <= 2 * windows


@pytest.mark.slow
def test_i3d_slowfast_and_csn_from_one_decode_equal_their_single_runs(
    tmp_path: Path, decodes: list[str]
) -> None:
    """The issue's case: SlowFast and CSN read 30 fps video at 15 fps (sampling rate 2,
    32-frame snippets, short side 64 here), I3D at 25 fps; one decode serves all three."""
    path = tmp_path / "v30.mp4"
    write_signature_video(path, num_frames=80, fps=30, size=(80, 64), seed=6)
    small = {"input_size": 64, "resize_short": 64}
    chosen = {
        "i3d": build_backbone("i3d", random_weights_seed=0, streams=("rgb",), **small),
        "slowfast_r50": build_backbone("slowfast_r50", random_weights_seed=0, **small),
        "csn_r101": build_backbone("csn_r101", random_weights_seed=0, **small),
    }
    multi = extract_video_multi(path, chosen, batch_size=2)
    assert decodes == [str(path)]
    # One resize (short side 64) for all three: each decoded frame shown at 25 or 15 fps
    # is resized once.
    assert multi["i3d"].meta["decode"]["resized_frames"] == len(_sources_shown(path, [25, 15]))
    for name, model in chosen.items():
        _assert_same(multi[name], extract_video(path, model, batch_size=2))
        assert multi[name].num_snippets > 0
    assert multi["slowfast_r50"].streams["rgb"].shape[1] == 2304


@pytest.mark.parametrize("queue_size", [1, 2])
def test_prepared_batches_alive_are_bounded_by_the_queue_and_the_forward(
    tmp_path: Path, models: dict[str, Any], monkeypatch: pytest.MonkeyPatch, queue_size: int
) -> None:
    """The producer waits for room before preparing a batch, so at most ``queue_size`` + 1
    prepared (float) batches exist at once, however slow the forward; the features are
    those of the default queue."""
    import talkit.extractors.multi as multi

    model = models["rgb64"]
    path = tmp_path / "v.mp4"
    write_signature_video(path, num_frames=160, fps=25, size=(64, 48), seed=4)
    want = extract_video(path, model, batch_size=2)
    counts = {"prepared": 0, "done": 0, "most_alive": 0}

    class Counted(multi.Preprocess):  # type: ignore[misc, name-defined]
        def __call__(self, batch: Any, count: int) -> dict[str, torch.Tensor]:
            out = super().__call__(batch, count)
            counts["prepared"] += 1
            alive = counts["prepared"] - counts["done"]
            counts["most_alive"] = max(counts["most_alive"], alive)
            return out

    real = type(model).extract

    def slow(self: Any, batch: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
        time.sleep(0.05)  # the producer has all the time it wants to run ahead
        out = real(self, batch)
        counts["done"] += 1
        return out

    monkeypatch.setattr(multi, "Preprocess", Counted)
    monkeypatch.setattr(type(model), "extract", slow)
    got = extract_video_multi(path, {"m": model}, batch_size=2, queue_size=queue_size)["m"]
    assert counts["prepared"] == counts["done"] == 5  # 10 snippets of 16 frames
    assert counts["most_alive"] == queue_size + 1
    _assert_same(got, want)
