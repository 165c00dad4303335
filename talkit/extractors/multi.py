"""One decode for many backbones: ``extract_video_multi``, and ``extract_video`` through it.

Why: a run with several backbones (``--backbone i3d,slowfast_r50,csn_r101``) used to
decode each video once per backbone. Here a video is decoded once at its native rate
and resampled by timestamp to each backbone's fps (the same frame choice, so the same
features, as a one-backbone run); each distinct resize runs once per decoded frame, and
flow once per pair of decoded frames and flow spec (see preprocess.py). ``extract_video``
is the one-backbone case of the same code.

Data path::

    decoder (native rate) --> rate r1 --> resize A --> snippets of backbone 1 --+
       one pass           |           \\-> (shared) --> snippets of backbone 2 --+--> queue
                          +-> rate r2 --> resize B --> snippets of backbone 3 --+   (bounded)
                                                          crop, normalise, flow  |
    calling thread: each batch to its backbone's forward  <----------------------+

Decoding, resampling, resizing and preprocessing run in one background thread that
fills a small bounded queue of ready batches (of any backbone) while the calling thread
runs the networks, so the decode overlaps the forwards. Memory does not grow with the
video: each backbone holds the batches it is filling (its snippet windows in flight,
uint8), the flow cache holds only pairs those batches can still need, and at most
``queue_size`` + 1 prepared (float) batches exist at once: the one in the forward and
``queue_size`` ready for the next. The producer waits for that room *before* it
prepares a batch, not after (a prepared batch waiting to be queued is one more input
tensor alive: 77 MiB for an I3D batch of two 64-frame 224 px snippets).
``meta["decode"]`` reports the peak frames held.
"""

from __future__ import annotations

import queue
import threading
import time
import warnings
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from talkit.errors import InputError
from talkit.extractors.extract import ShortVideoWarning, VideoFeatures
from talkit.extractors.flow import FlowComputer
from talkit.extractors.preprocess import FlowPairs, Preprocess, flow_key, spatial_transform
from talkit.extractors.registry import Backbone, BackboneSpec
from talkit.extractors.sampling import (
    SnippetAssembler,
    SnippetBatch,
    SnippetSpec,
    num_snippets,
    snippet_timestamps,
)
from talkit.extractors.transforms import BatchTransform
from talkit.extractors.video import Frame, open_video


def extract_video_multi(
    path: str | Path,
    backbones: Mapping[str, Backbone],
    *,
    batch_size: int | Mapping[str, int] = 8,
    flow_computers: Mapping[str, FlowComputer] | None = None,
    flow_workers: int = 1,
    video_backend: str = "auto",
    fps_for_frames: float | None = None,
    tolerate_damage: bool = False,
    queue_size: int = 1,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, VideoFeatures]:
    """Features of one video from several backbones, decoding it once.

    ``backbones`` maps a name (e.g. the feature set) to a backbone built with
    :func:`~talkit.extractors.build_backbone`; the result has the same names, each
    bit-identical to ``extract_video(path, backbone)`` alone. ``batch_size`` is one for
    all or one per name. ``flow_computers`` (by name) lets many videos share pools of
    flow workers; backbones with equal flow specs share one computer and the flow it
    computes. ``progress(name, snippets_done)`` is called after each batch.
    ``queue_size`` prepared batches may wait ahead of the forward (1: one is ready while
    a forward of a 3-D CNN runs, which takes far longer than preparing the next).

    Damage raises one VideoDecodeError for the video (unless ``tolerate_damage``). A
    video shorter than one snippet of a backbone gives that backbone zero snippets and
    a ``ShortVideoWarning``; the other backbones are unaffected.
    """
    if not backbones:
        raise InputError("extract_video_multi needs at least one backbone")
    for name, model in backbones.items():
        if not isinstance(model, Backbone):
            raise InputError(
                f"backbone {name!r} is a {type(model).__name__}, not a built backbone",
                hint="build it with talkit.extractors.build_backbone(name, ...) first",
            )
        model.require_weights()
    given = dict(flow_computers or {})
    owned: dict[str, FlowComputer] = {}  # by flow spec, shared by equal specs
    flows: dict[str, FlowComputer | None] = {}
    try:
        for name, model in backbones.items():
            spec = model.spec.flow
            computer = given.get(name)
            if spec is None:
                flows[name] = None
            elif computer is None:
                key = spec.model_dump_json()
                if key not in owned:
                    owned[key] = FlowComputer(spec, workers=flow_workers)
                flows[name] = owned[key]
            elif computer.spec != spec:
                raise InputError(
                    f"flow computer for {name!r} runs {computer.spec.method} with other "
                    f"settings than the backbone's flow spec ({spec.method})",
                    hint="build the FlowComputer from backbone.spec.flow",
                )
            else:
                flows[name] = computer
        return run_backbones(
            Path(path),
            backbones,
            flows,
            batch_size=batch_size,
            video_backend=video_backend,
            fps_for_frames=fps_for_frames,
            tolerate_damage=tolerate_damage,
            queue_size=queue_size,
            progress=progress,
        )
    finally:
        for computer in owned.values():
            computer.close()


@dataclass
class _Job:
    """One backbone's part of the shared pass."""

    name: str
    model: Backbone
    output: SnippetSpec  # the snippets it gets features for
    assembler: SnippetAssembler  # over the snippets it reads (one frame more for flow)
    resize: BatchTransform
    prep: Preprocess
    flow: FlowPairs | None
    batch_size: int
    features: dict[str, list[np.ndarray]] = field(default_factory=dict)
    forward_s: float = 0.0
    done: int = 0


def _snippet_specs(spec: BackboneSpec) -> tuple[SnippetSpec, SnippetSpec]:
    """(output, read): flow needs one frame past each snippet; "pad" repeats the last."""
    output = spec.snippet_spec("drop")
    if spec.flow is None:
        return output, output
    return output, spec.snippet_spec("pad", extra_frames=1)


def _jobs(
    models: Mapping[str, Backbone],
    flows: Mapping[str, FlowComputer | None],
    batch_size: int | Mapping[str, int],
) -> list[_Job]:
    groups: dict[Hashable, FlowPairs] = {}  # one per flow key: the sharing of flow
    jobs = []
    for name, model in models.items():
        spec = model.spec
        bs = batch_size if isinstance(batch_size, int) else batch_size[name]
        if bs < 1:
            raise InputError(f"batch_size must be >= 1, got {bs} for {name!r}")
        pairs = None
        key = flow_key(spec)
        if key is not None:
            computer = flows.get(name)
            if computer is None:
                raise InputError(f"backbone {name!r} has a flow stream but no flow computer")
            pairs = groups.setdefault(key, FlowPairs(computer))
        output, read = _snippet_specs(spec)
        jobs.append(
            _Job(
                name=name,
                model=model,
                output=output,
                assembler=SnippetAssembler(read, bs),
                resize=spatial_transform(spec),
                prep=Preprocess(spec, pairs),
                flow=pairs,
                batch_size=bs,
                features={s: [] for s in spec.streams},
            )
        )
    return jobs


class _Pass:
    """The producer side: one decode, resampled per rate, resized per transform, cut into
    each backbone's snippets, preprocessed, and queued."""

    def __init__(
        self, jobs: list[_Job], put: Callable[[tuple], bool], room: Callable[[], bool]
    ) -> None:
        self.jobs = jobs
        self.put = put
        self.room = room  # waits for room for one more prepared batch; False: stopped
        self.rates: list[Fraction] = []
        self.by_rate: list[list[_Job]] = []
        for job in jobs:
            rate = job.output.fps_fraction
            if rate not in self.rates:
                self.rates.append(rate)
                self.by_rate.append([])
            self.by_rate[self.rates.index(rate)].append(job)
        self.groups = {id(j.flow): j.flow for j in jobs if j.flow is not None}
        self._resized: dict[BatchTransform, tuple[int, np.ndarray]] = {}
        self.resized_frames = 0
        self.peak_frames_held = 0

    def _resize(self, transform: BatchTransform, frame: Frame) -> np.ndarray:
        cached = self._resized.get(transform)
        if cached is None or cached[0] != frame.source_index:
            cached = (frame.source_index, transform.spatial(frame.rgb[None])[0])
            self._resized[transform] = cached
            self.resized_frames += 1
        return cached[1]

    def run(self, reader: Any, tolerate_damage: bool) -> bool:
        """Feed every frame through; False when the consumer stopped early."""
        for r, frame in reader.iter_frames_multi(self.rates, tolerate_damage=tolerate_damage):
            for job in self.by_rate[r]:
                rgb = self._resize(job.resize, frame)
                batch = job.assembler.push(frame.index, frame.source_index, rgb)
                if batch is not None:
                    if not self._send(job, batch, len(batch)):
                        return False
                    self._forget(frame.source_index)
            held = sum(j.assembler.frames_held() for j in self.jobs)
            held += sum(len(g) for g in self.groups.values())
            self.peak_frames_held = max(self.peak_frames_held, held)
        for job in self.jobs:
            tail = job.assembler.end()
            total = num_snippets(int(job.assembler.num_frames or 0), job.output)
            for batch in tail:  # tail batches: keep the full snippets of the output spec
                count = int(np.sum(batch.indices < total))
                if count and not self._send(job, batch, count):
                    return False
        return True

    def _send(self, job: _Job, batch: SnippetBatch, count: int) -> bool:
        return self.room() and self.put(("batch", job, job.prep(batch, count)))

    def _forget(self, current: int) -> None:
        """Drop cached flow no batch still being filled can need."""
        for group in self.groups.values():
            oldest = current
            for job in self.jobs:
                if job.flow is group:
                    first = job.assembler.oldest_source()
                    if first is not None:
                        oldest = min(oldest, first)
            group.forget_before(oldest)


def _acquire(slots: threading.Semaphore, stop: threading.Event) -> bool:
    while not stop.is_set():
        if slots.acquire(timeout=0.1):
            return True
    return False


def _put(q: queue.Queue, item: tuple, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def run_backbones(
    path: Path,
    models: Mapping[str, Backbone],
    flows: Mapping[str, FlowComputer | None],
    *,
    batch_size: int | Mapping[str, int],
    video_backend: str,
    fps_for_frames: float | None,
    tolerate_damage: bool,
    queue_size: int,
    progress: Callable[[str, int], None] | None,
    checkpoints: Mapping[str, Mapping[str, str | Path]] | None = None,
) -> dict[str, VideoFeatures]:
    """The shared pass for built backbones and their flow computers (see module doc)."""
    t_start = time.perf_counter()
    jobs = _jobs(models, flows, batch_size)
    reader = open_video(path, backend=video_backend, fps_for_frames=fps_for_frames)  # type: ignore[arg-type]
    q: queue.Queue = queue.Queue(maxsize=max(1, queue_size))
    # Prepared batches alive: queue_size ready + the one in the forward. The producer
    # takes a slot before preparing a batch; the consumer frees it after the forward.
    slots = threading.Semaphore(max(1, queue_size) + 1)
    stop = threading.Event()
    shared = _Pass(jobs, lambda item: _put(q, item, stop), lambda: _acquire(slots, stop))

    def produce() -> None:
        try:
            if shared.run(reader, tolerate_damage):
                _put(q, ("end", None, None), stop)
        except BaseException as exc:  # handed to the consumer, re-raised there
            _put(q, ("error", None, exc), stop)

    producer = threading.Thread(target=produce, name=f"talkit-decode-{path.name}", daemon=True)
    wait_s = 0.0
    producer.start()
    try:
        while True:
            t0 = time.perf_counter()
            kind, job, payload = q.get()
            wait_s += time.perf_counter() - t0
            if kind == "end":
                break
            if kind == "error":
                raise payload
            t0 = time.perf_counter()
            out = job.model.extract(payload)
            job.forward_s += time.perf_counter() - t0
            del payload  # the input is freed before the producer prepares the next one
            slots.release()
            for s in job.features:
                job.features[s].append(out[s])
            job.done += len(out[next(iter(job.features))])
            if progress is not None:
                progress(job.name, job.done)
    finally:
        stop.set()
        producer.join()

    decode = {
        "passes": 1,
        "frames_decoded": int(reader.log.decoded),
        "backbones": [j.name for j in jobs],
        "resized_frames": shared.resized_frames,
        "flow_pairs_computed": sum(g.computed for g in shared.groups.values()),
        "peak_frames_held": shared.peak_frames_held,
    }
    total_s = time.perf_counter() - t_start
    return {
        job.name: _features(
            path, job, reader, decode, (checkpoints or {}).get(job.name), total_s, wait_s
        )
        for job in jobs
    }


def _features(
    path: Path,
    job: _Job,
    reader: Any,
    decode: dict[str, Any],
    checkpoints: Mapping[str, str | Path] | None,
    total_s: float,
    wait_s: float,
) -> VideoFeatures:
    spec = job.model.spec
    num_frames = int(job.assembler.num_frames or 0)
    timestamps = snippet_timestamps(num_frames, job.output)
    arrays = {
        s: (np.concatenate(v) if v else np.zeros((0, d), np.float32)).astype(np.float32, copy=False)
        for (s, v), d in zip(job.features.items(), spec.streams.values(), strict=True)
    }
    if any(a.shape[0] != timestamps.shape[0] for a in arrays.values()):
        raise AssertionError(
            f"internal: {path} gave {[a.shape[0] for a in arrays.values()]} snippets "
            f"for {timestamps.shape[0]} timestamps ({job.name})"
        )
    notes: list[str] = []
    if timestamps.shape[0] == 0:
        note = (
            f"{path}: {num_frames} frame(s) at {spec.fps:g} fps, fewer than the "
            f"{spec.clip_len} one snippet needs; no features were extracted"
        )
        notes.append(note)
        warnings.warn(note, ShortVideoWarning, stacklevel=4)
    damage = reader.damage
    meta: dict[str, Any] = {
        "path": str(path),
        "video": reader.meta.to_dict(),
        "num_frames": num_frames,
        "num_snippets": int(timestamps.shape[0]),
        "damage": damage.to_dict() if damage is not None else None,
        "warnings": notes,
        "checkpoints": {s: str(p) for s, p in (checkpoints or {}).items()},
        "device": str(job.model.device),
        "batch_size": job.batch_size,
        "flow_workers": job.flow.computer.workers if job.flow is not None else 0,
        "decode": dict(decode),
        "timing_s": {
            "total": total_s,
            "forward": job.forward_s,
            "waiting_for_input": wait_s,
        },
    }
    return VideoFeatures(streams=arrays, timestamps=timestamps, spec=spec, meta=meta)
