"""One video in, snippet features out: decode -> snippets -> (flow) -> batched forward.

This is the in-process path; the Ray pipeline runs exactly this function per video.

Decoding, preprocessing and optical flow run in a background thread that fills a small
bounded queue of ready batches while the calling thread runs the network, so decoding
overlaps the forward pass instead of adding to it (memory: ``queue_size`` + 2 batches,
whatever the video's length). OpenCV's TV-L1 pairs go to ``flow_workers`` processes;
the torch TV-L1 (``tvl1_torch``) runs them in batches on the flow device.

Flow convention: flow frame j of a snippet is the flow from frame j to frame j + 1, so a
16-frame snippet reads 17 frames (the next snippet's first one). At the very end of the
video the missing frame repeats the last one, and pairs that show the same decoded
picture (the end, or frames duplicated by frame-rate conversion) get zero flow without
computing it. Snippet counts and timestamps are those of the rgb stream:
floor((N - 16) / 16) + 1 snippets for N frames at 25 fps, snippet i covering
[16 i / 25, (16 i + 16) / 25) s.
"""

from __future__ import annotations

import queue
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from talkit.errors import InputError
from talkit.extractors import registry
from talkit.extractors.flow import TORCH_METHODS, FlowComputer, normalise_flow, to_grey
from talkit.extractors.registry import Backbone, BackboneSpec
from talkit.extractors.sampling import (
    SnippetBatch,
    iter_snippet_batches,
    num_snippets,
    snippet_timestamps,
)
from talkit.extractors.transforms import BatchTransform, center_crop


class ShortVideoWarning(UserWarning):
    """A video is too short for a single snippet; it gets zero features."""


@dataclass
class VideoFeatures:
    """Features of one video: (T, D) per stream, (T, 2) snippet times in s, and provenance.

    ``spec`` is the backbone spec that made them (weights included: ``sha256:...`` or
    ``random:<seed>``). ``meta`` holds the video's container info, frame count at the
    spec's fps, damage report, warnings, checkpoint files and timings.
    """

    streams: dict[str, np.ndarray]
    timestamps: np.ndarray
    spec: BackboneSpec
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def num_snippets(self) -> int:
        return int(self.timestamps.shape[0])

    def joint(self) -> np.ndarray:
        """All streams concatenated in spec order, e.g. [rgb, flow] -> (T, 2048)."""
        return np.concatenate([self.streams[s] for s in self.spec.streams], axis=1)


def build_backbone(
    backbone: str | Backbone = "i3d",
    *,
    checkpoints: Mapping[str, str | Path] | None = None,
    random_weights_seed: int | None = None,
    device: str | torch.device | None = None,
    **options: Any,
) -> Backbone:
    """A backbone with weights on ``device``: build once, reuse for many videos.

    ``options`` go to the registered factory (``input_size``, ``streams``, flow
    options...). Every stream needs a checkpoint, or ``random_weights_seed`` for test
    features, which the spec then records as ``random:<seed>``.
    """
    if isinstance(backbone, Backbone):
        if options:
            raise InputError(
                f"options {sorted(options)} cannot change an already built backbone",
                hint="pass the backbone name instead, or build it with these options",
            )
        model = backbone
    else:
        model = registry.get(backbone, **options)
    checkpoints = dict(checkpoints or {})
    if checkpoints and random_weights_seed is not None:
        raise InputError(
            "give either checkpoints or random_weights_seed, not both",
            hint="random weights are for tests and demos; real features need checkpoints",
        )
    unknown = [s for s in checkpoints if s not in model.spec.streams]
    if unknown:
        raise InputError(
            f"checkpoints given for stream(s) {', '.join(unknown)} that {model.spec.name!r} "
            f"does not compute here",
            hint=f"its streams are: {', '.join(model.spec.streams)}",
        )
    for stream, path in checkpoints.items():
        model.load_checkpoint(stream, path)
    if random_weights_seed is not None:
        model.random_weights(random_weights_seed)
    model.require_weights()
    # None keeps a built backbone where it is (a new one starts on the CPU).
    return model.to(device) if device is not None else model


class _Preprocess:
    """SnippetBatch of resized uint8 frames -> {stream: float tensor (B, C, T, H, W)}."""

    def __init__(self, spec: BackboneSpec, flow: FlowComputer | None) -> None:
        self.spec = spec
        self.flow = flow
        norm = spec.normalisation
        self.crop = spec.input_size if spec.crop == "center" else None
        self.mean = torch.tensor(norm.mean, dtype=torch.float32)
        self.std = torch.tensor(norm.std, dtype=torch.float32)
        self.value_range = float(norm.value_range)

    def _crop(self, frames: np.ndarray) -> np.ndarray:
        return frames if self.crop is None else center_crop(frames, self.crop)

    def __call__(self, batch: SnippetBatch, count: int) -> dict[str, torch.Tensor]:
        frames = np.asarray(batch.frames)[:count]  # (B, L[+1], h, w, 3) uint8
        b, length = count, self.spec.clip_len
        out: dict[str, torch.Tensor] = {}
        if "rgb" in self.spec.streams:
            rgb = frames[:, :length]
            rgb = self._crop(rgb.reshape(b * length, *rgb.shape[2:]))
            x = torch.from_numpy(rgb).to(torch.float32).div_(self.value_range)
            x = x.sub_(self.mean).div_(self.std)
            x = x.reshape(b, length, *x.shape[1:]).permute(0, 4, 1, 2, 3)
            # Already NDHWC in memory: the layout the fast forward wants (no copy).
            out["rgb"] = x.contiguous(memory_format=torch.channels_last_3d)
        if "flow" in self.spec.streams:
            out["flow"] = self._flow(frames, batch.source_frames[:count])
        return out

    def _flow(self, frames: np.ndarray, sources: np.ndarray) -> torch.Tensor:
        spec = self.spec.flow
        assert spec is not None and self.flow is not None
        b, length = frames.shape[0], self.spec.clip_len
        flat = frames.reshape(b * frames.shape[1], *frames.shape[2:])
        if spec.region == "crop":
            flat = self._crop(flat)
        grey = to_grey(flat).reshape(b, frames.shape[1], *flat.shape[1:3])
        # Unique pairs of distinct decoded pictures; identical pictures have zero flow.
        jobs: dict[tuple[int, int], tuple[int, int]] = {}
        for i in range(b):
            for j in range(length):
                key = (int(sources[i, j]), int(sources[i, j + 1]))
                if key[0] != key[1] and key not in jobs:
                    jobs[key] = (i, j)
        h, w = grey.shape[2:]
        raw = np.zeros((b, length, h, w, 2), np.float32)
        if jobs:
            where = list(jobs.values())
            firsts = np.stack([grey[i, j] for i, j in where])
            seconds = np.stack([grey[i, j + 1] for i, j in where])
            computed = dict(zip(jobs, self.flow.pairs(firsts, seconds), strict=True))
            for i in range(b):
                for j in range(length):
                    key = (int(sources[i, j]), int(sources[i, j + 1]))
                    if key in computed:
                        raw[i, j] = computed[key]
        flow = raw.reshape(b * length, h, w, 2)
        if spec.region == "frame":
            flow = self._crop(flow)
        flow = normalise_flow(flow, bound=spec.bound, quantize_8bit=spec.quantize_8bit)
        x = torch.from_numpy(np.ascontiguousarray(flow))
        return x.reshape(b, length, *x.shape[1:]).permute(0, 4, 1, 2, 3).contiguous()


def resolve_flow_device(
    flow_method: str, flow_device: str, model_device: str | torch.device | None
) -> str | None:
    """ "auto" -> the model's device type for the torch flows (CPU when none is given);
    OpenCV's flows run on the CPU and record no device (None)."""
    if flow_method not in TORCH_METHODS:
        return None if flow_device == "auto" else flow_device
    if flow_device != "auto":
        return flow_device
    return torch.device(model_device).type if model_device is not None else "cpu"


def _spatial_transform(spec: BackboneSpec) -> BatchTransform:
    """Resize only (crop later: flow is computed on the whole resized frame)."""
    if spec.resize_short is None:
        return BatchTransform(
            resize_short=None, crop=None, square=spec.input_size, normalize="none", layout="BTHWC"
        )
    return BatchTransform(
        resize_short=spec.resize_short, crop=None, normalize="none", layout="BTHWC"
    )


def _put(q: queue.Queue, item: tuple, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def extract_video(
    path: str | Path,
    backbone: str | Backbone = "i3d",
    checkpoints: Mapping[str, str | Path] | None = None,
    *,
    batch_size: int = 8,
    device: str | torch.device | None = None,
    random_weights_seed: int | None = None,
    flow_workers: int = 1,
    video_backend: str = "auto",
    fps_for_frames: float | None = None,
    tolerate_damage: bool = False,
    flow_computer: FlowComputer | None = None,
    queue_size: int = 2,
    progress: Callable[[int], None] | None = None,
    **options: Any,
) -> VideoFeatures:
    """Extract snippet features of one video (file or frame folder), in this process.

    ``backbone`` is a registered name, built here with ``options`` (its factory's
    keywords: ``streams``, ``input_size``, ``flow_method`` ... for I3D; see
    ``talkit.extractors.registry.default_options(name)``, the one place their defaults
    live), or a backbone from :func:`build_backbone`, which is faster for many videos
    (then no options may be given). ``flow_device="auto"`` runs the torch TV-L1 on the
    model's device. ``flow_computer`` lets many videos share one pool of flow workers.
    ``device`` ("cpu", "cuda", ...) moves the backbone there; None leaves a built
    backbone where it is, and runs a new one on the CPU.
    ``progress`` is called with the number of snippets done after each batch.
    A video shorter than one snippet gives zero snippets and a ``ShortVideoWarning``.
    """
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    if isinstance(backbone, Backbone):
        if options:
            raise InputError(
                f"extract_video got a built backbone and also {', '.join(sorted(options))}",
                hint="set these when building it (build_backbone(name, ...)), not here",
            )
    elif options.get("flow_device") == "auto":
        options["flow_device"] = resolve_flow_device(
            str(options.get("flow_method", registry.default_options(backbone).get("flow_method"))),
            "auto",
            device,
        )
    model = build_backbone(
        backbone,
        checkpoints=checkpoints,
        random_weights_seed=random_weights_seed,
        device=device,
        **options,
    )
    spec = model.spec
    owned_flow = None
    if spec.flow is not None and flow_computer is None:
        owned_flow = flow_computer = FlowComputer(spec.flow, workers=flow_workers)
    elif spec.flow is not None and flow_computer is not None and flow_computer.spec != spec.flow:
        raise InputError(
            f"flow_computer runs {flow_computer.spec.method} with other settings than the "
            f"backbone's flow spec ({spec.flow.method})",
            hint="build the FlowComputer from backbone.spec.flow",
        )
    try:
        return _run(
            Path(path),
            model,
            flow_computer,
            batch_size=batch_size,
            video_backend=video_backend,
            fps_for_frames=fps_for_frames,
            tolerate_damage=tolerate_damage,
            queue_size=queue_size,
            progress=progress,
            checkpoints=checkpoints,
        )
    finally:
        if owned_flow is not None:
            owned_flow.close()


def _run(
    path: Path,
    model: Backbone,
    flow: FlowComputer | None,
    *,
    batch_size: int,
    video_backend: str,
    fps_for_frames: float | None,
    tolerate_damage: bool,
    queue_size: int,
    progress: Callable[[int], None] | None,
    checkpoints: Mapping[str, str | Path] | None,
) -> VideoFeatures:
    spec = model.spec
    t_start = time.perf_counter()
    output = spec.snippet_spec("drop")
    # Flow needs one frame past each snippet; "pad" repeats the last frame at the end.
    read = spec.snippet_spec("pad", extra_frames=1) if spec.flow else output
    stream = iter_snippet_batches(
        path,
        read,
        batch_size=batch_size,
        transform=_spatial_transform(spec),
        tolerate_damage=tolerate_damage,
        backend=video_backend,  # type: ignore[arg-type]
        fps_for_frames=fps_for_frames,
    )
    prep = _Preprocess(spec, flow)
    q: queue.Queue = queue.Queue(maxsize=max(1, queue_size))
    stop = threading.Event()

    def produce() -> None:
        try:
            for batch in stream:
                count = len(batch)
                if stream.num_frames is not None:  # tail batches: keep full rgb snippets
                    total = num_snippets(stream.num_frames, output)
                    count = int(np.sum(batch.indices < total))
                if count == 0:
                    continue
                if not _put(q, ("batch", prep(batch, count)), stop):
                    return
            _put(q, ("end", None), stop)
        except BaseException as exc:  # handed to the consumer, re-raised there
            _put(q, ("error", exc), stop)

    producer = threading.Thread(target=produce, name=f"talkit-decode-{path.name}", daemon=True)
    features: dict[str, list[np.ndarray]] = {s: [] for s in spec.streams}
    forward_s = wait_s = 0.0
    done = 0
    producer.start()
    try:
        while True:
            t0 = time.perf_counter()
            kind, payload = q.get()
            wait_s += time.perf_counter() - t0
            if kind == "end":
                break
            if kind == "error":
                raise payload
            t0 = time.perf_counter()
            out = model.extract(payload)
            forward_s += time.perf_counter() - t0
            for s in spec.streams:
                features[s].append(out[s])
            done += len(out[next(iter(spec.streams))])
            if progress is not None:
                progress(done)
    finally:
        stop.set()
        producer.join()

    num_frames = int(stream.num_frames or 0)
    timestamps = snippet_timestamps(num_frames, output)
    arrays = {
        s: (np.concatenate(v) if v else np.zeros((0, d), np.float32)).astype(np.float32, copy=False)
        for (s, v), d in zip(features.items(), spec.streams.values(), strict=True)
    }
    if any(a.shape[0] != timestamps.shape[0] for a in arrays.values()):
        raise AssertionError(
            f"internal: {path} gave {[a.shape[0] for a in arrays.values()]} snippets "
            f"for {timestamps.shape[0]} timestamps"
        )
    notes: list[str] = []
    if timestamps.shape[0] == 0:
        note = (
            f"{path}: {num_frames} frame(s) at {spec.fps:g} fps, fewer than the "
            f"{spec.clip_len} one snippet needs; no features were extracted"
        )
        notes.append(note)
        warnings.warn(note, ShortVideoWarning, stacklevel=3)
    damage = stream.damage
    meta: dict[str, Any] = {
        "path": str(path),
        "video": stream.meta.to_dict(),
        "num_frames": num_frames,
        "num_snippets": int(timestamps.shape[0]),
        "damage": damage.to_dict() if damage is not None else None,
        "warnings": notes,
        "checkpoints": {s: str(p) for s, p in (checkpoints or {}).items()},
        "device": str(model.device),
        "batch_size": batch_size,
        "flow_workers": flow.workers if flow is not None else 0,
        "timing_s": {
            "total": time.perf_counter() - t_start,
            "forward": forward_s,
            "waiting_for_input": wait_s,
        },
    }
    return VideoFeatures(streams=arrays, timestamps=timestamps, spec=spec, meta=meta)
