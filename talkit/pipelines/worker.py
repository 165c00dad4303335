"""The extraction worker: backbones loaded once, then one video at a time.

A worker is a long-lived process (a Ray actor in the pipeline, or a plain object in
process): its models are built and their weights loaded in ``__init__``, so a run pays
that once per worker, not once per video. ``process(item)`` turns one video into the
arrays of every requested backbone, or into a :class:`~talkit.pipelines.failures.Failure`
with the reason; it never raises for a bad video, so one broken file cannot take a
worker down.

The unit of work is a video with a *list* of backbones: the video is decoded once for
all of them (``extract_video_multi``), each video's result carries one output per
feature set, and all of them are committed together.
"""

from __future__ import annotations

import os
import resource
import socket
import sys
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from talkit.errors import WorkFailedError
from talkit.extractors.flow import FlowComputer
from talkit.pipelines.failures import Failure, failure_from_exception
from talkit.pipelines.objects import clean_stale_spools, relabel, spooled
from talkit.pipelines.plan import VideoItem
from talkit.pipelines.resume import Fingerprint, fingerprint, object_fingerprint


class NoSnippetsError(WorkFailedError):
    """The video decoded but is shorter than one snippet, so it has no features."""


@dataclass(frozen=True)
class BackboneJob:
    """One backbone of a run and the feature set it writes to.

    ``options`` are this backbone's own (its config block, never another's);
    ``checkpoints`` map its streams to files.
    """

    backbone: str
    feature_set: str
    options: dict[str, Any] = field(default_factory=dict)
    checkpoints: dict[str, str] = field(default_factory=dict)
    random_weights_seed: int | None = None


@dataclass
class VideoOutput:
    """One backbone's features for one video, ready for ``Writer.write_video``."""

    streams: dict[str, np.ndarray]
    timestamps: np.ndarray
    attrs: dict[str, Any]

    @property
    def snippets(self) -> int:
        return int(self.timestamps.shape[0])

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.streams.values()) + self.timestamps.nbytes


@dataclass
class VideoResult:
    """What a worker sends back for one video: outputs per feature set, or a failure."""

    item: VideoItem
    node_id: str
    pid: int
    seconds: float
    outputs: dict[str, VideoOutput] | None = None
    failure: Failure | None = None
    attempts: int = 1
    peak_rss: int | None = None  # the worker process's peak resident memory so far, bytes
    # Frames the decoder delivered for this video, for all its backbones together: one
    # decode, so a several-backbone run decodes what a one-backbone run does.
    frames_decoded: int | None = None
    # Torch thread changes applied since the worker's previous result (see set_threads).
    thread_changes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def snippets(self) -> int:
        if not self.outputs:
            return 0
        return next(iter(self.outputs.values())).snippets

    @property
    def nbytes(self) -> int:
        return sum(o.nbytes for o in (self.outputs or {}).values())


def build_backbone(job: BackboneJob, device: str = "cpu") -> Any:
    """A backbone from the registry with its weights (checkpoints, or seeded random)."""
    from talkit.extractors.extract import build_backbone as build

    return build(
        job.backbone,
        checkpoints=job.checkpoints or None,
        random_weights_seed=job.random_weights_seed,
        device=device,
        **job.options,
    )


def backbone_streams(name: str, options: dict[str, Any]) -> tuple[str, ...]:
    """The streams backbone ``name`` computes with these options (from its spec)."""
    from talkit.extractors import registry

    return tuple(registry.get(name, **options).spec.streams)


def backbone_spec(job: BackboneJob) -> Any:
    """The spec a worker's backbone will have, without paying for random init.

    Checkpoints are loaded (so a wrong file fails here, once, with exit code 2); random
    weights are only labelled, as the backbone labels them (``random:<seed>``).
    """
    from talkit.errors import CheckpointError
    from talkit.extractors import registry, weights

    spec = registry.get(job.backbone, **job.options).spec
    if job.random_weights_seed is None:
        missing = [s for s in spec.streams if s not in job.checkpoints]
        if missing:
            known = [w.name for w in weights.all_weights().values() if w.backbone == job.backbone]
            single = len(spec.streams) == 1
            example = (
                f"--checkpoint {job.backbone}=PATH"
                if single
                else " ".join(f"--checkpoint {job.backbone}.{s}=PATH" for s in missing)
            )
            raise CheckpointError(
                f"{job.backbone}: no weights given for stream(s) {', '.join(missing)}",
                hint=f"pass {example}"
                + (f" or --weights {' / '.join(known)}" if known else "")
                + ", or --random-weights SEED for test features that are not real ones",
            )
        return build_backbone(job).spec
    seed = int(job.random_weights_seed)
    return spec.model_copy(update={"weights": {s: f"random:{seed}" for s in spec.streams}})


def resolve_batch_size(
    backbones: list[Any], memory_bytes: int | None, device: str, per_snippet: int | None = None
) -> int:
    """``--batch-size auto``: the largest batch every backbone fits in the memory share.

    ``per_snippet``: the bytes :func:`snippet_footprint` measured on the driver, if it did.
    """
    from talkit.extractors.batching import auto_batch_size, backbone_snippet_bytes

    if per_snippet is None:
        per_snippet = max(backbone_snippet_bytes(b) for b in backbones)
    return auto_batch_size(per_snippet, memory_bytes, device=device)


def snippet_footprint(jobs: list[BackboneJob]) -> int:
    """Bytes one snippet costs in a batch, for the largest of these backbones.

    Measured once per run on the driver, before the workers start, and handed to them:
    the shape-only forward imports sympy (PyTorch's meta kernels check shapes with it),
    0.3 s that would otherwise come before every worker's first video. It depends only
    on the networks' shapes, which the driver builds unset (no weights) for the specs.
    """
    from talkit.extractors import registry
    from talkit.extractors.batching import backbone_snippet_bytes

    return max(backbone_snippet_bytes(registry.get(j.backbone, **j.options)) for j in jobs)


def peak_rss() -> int:
    """This process's peak resident memory in bytes.

    On Linux the high-water mark of its own address space (``VmHWM``): ``ru_maxrss``
    would start at the peak of the process that spawned it (Linux carries the old
    address space's peak over fork/vfork and exec). Elsewhere ``ru_maxrss`` (macOS: bytes).
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def _torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def _node_id() -> str:
    try:
        import ray

        if ray.is_initialized():
            return ray.get_runtime_context().get_node_id()
    except Exception:  # pragma: no cover - outside Ray
        pass
    return "local"


class ExtractWorker:
    """Backbones loaded once; ``process`` one video at a time (see module docstring)."""

    def __init__(
        self,
        jobs: list[BackboneJob],
        *,
        specs: dict[str, Any] | None = None,
        dataset: str = "dataset",
        batch_size: int | str,
        device: str = "cpu",
        torch_threads: int | None = None,
        frames_fps: float | None = None,
        niceness: int | None = None,
        memory_bytes: int | None = None,
        snippet_bytes: int | None = None,
    ) -> None:
        import torch

        from talkit.extractors.batching import release_large_blocks
        from talkit.pipelines.niceness import apply_niceness

        # First, so every thread started from here on (torch's, the decoder's) inherits it.
        self.niceness = apply_niceness(niceness) if niceness is not None else None
        if torch_threads:
            torch.set_num_threads(torch_threads)
        release_large_blocks()  # see talkit.extractors.batching: lower peak memory
        self.jobs = list(jobs)
        self.device = device
        self.frames_fps = frames_fps
        self.backbones = {job.feature_set: build_backbone(job, device) for job in self.jobs}
        self.memory_bytes = memory_bytes
        self.batch_size = (
            resolve_batch_size(list(self.backbones.values()), memory_bytes, device, snippet_bytes)
            if batch_size == "auto"
            else int(batch_size)
        )
        # One flow computer per flow spec and worker, reused for every video; backbones
        # with equal flow specs share it (and the flow it computes for a video).
        computers: dict[str, FlowComputer] = {}
        self.flows: dict[str, FlowComputer | None] = {}
        for fs, b in self.backbones.items():
            flow = b.spec.flow
            if flow is not None and flow.model_dump_json() not in computers:
                computers[flow.model_dump_json()] = FlowComputer(flow, workers=1)
            self.flows[fs] = None if flow is None else computers[flow.model_dump_json()]
        self.specs = dict(specs or {})
        self.dataset = dataset
        for fs, backbone in self.backbones.items():
            expected = self.specs.get(fs)
            if expected is not None and backbone.spec.to_store_spec() != expected:
                changes = ", ".join(backbone.spec.to_store_spec().diff(expected))
                raise WorkFailedError(
                    f"worker on {_node_id()} built {fs} with another spec than the driver "
                    f"(differs in: {changes})",
                    hint="every node must run the same talkit, torch and OpenCV versions",
                )
        self.node_id = _node_id()
        self.pid = os.getpid()
        self.threads_wanted: int | None = None  # set by set_threads, applied between batches
        self.thread_changes: list[dict[str, Any]] = []
        self._frames_decoded: int | None = None  # by the current video's one decode
        clean_stale_spools()  # left by workers killed on this machine mid-video

    def ready(self) -> dict[str, Any]:
        """Where this worker runs and its talkit version: answered once the models are loaded.

        The driver compares the version with its own: a node installed with another talkit
        (one that joined the cluster after the start-up checks) must not add its features.
        """
        from talkit import __version__

        return {
            "node_id": self.node_id,
            "pid": self.pid,
            "host": socket.gethostname(),
            "talkit": __version__,
            "niceness": None if self.niceness is None else self.niceness.achieved,
            "niceness_at_start": None if self.niceness is None else self.niceness.at_start,
            "niceness_error": None if self.niceness is None else self.niceness.error,
            "torch_threads": _torch_threads(),
            "batch_size": self.batch_size,
            "memory_share": self.memory_bytes,
        }

    def set_threads(self, n: int) -> None:
        """Ask for ``n`` torch threads from the next batch on.

        The driver calls this while ``process`` runs (from another thread of the actor), to
        give the cores of idle workers to the busy ones at the end of a run. Torch's thread
        count is per calling thread (a thread that has run an operation keeps its own), so
        it is only recorded here and applied by the forward thread between batches.
        """
        self.threads_wanted = max(1, int(n))

    def _apply_threads(self, video_id: str, snippets_done: int) -> None:
        """In the forward thread: switch to the thread count last asked for, if it differs."""
        wanted = self.threads_wanted
        if wanted is None:
            return
        import torch

        current = int(torch.get_num_threads())
        if wanted != current:
            torch.set_num_threads(wanted)
            self.thread_changes.append(
                {"time": time.time(), "from": current, "to": wanted, "video": video_id,
                 "snippets_done": snippets_done}
            )  # fmt: skip

    def process(self, item: VideoItem) -> VideoResult:
        """Extract one video with every backbone; failures come back as data."""
        t0 = time.perf_counter()
        self._apply_threads(item.video_id, 0)
        self._frames_decoded = None
        spool: tuple[str, str] | None = None  # (local copy, object URL) of an object
        try:
            if isinstance(item.path, str):  # an object: spooled to a local file, then deleted
                with spooled(item.path) as (local, size, etag):
                    spool = (str(local), item.path)
                    source = object_fingerprint(item.path, size, etag)
                    outputs = self._extract_all(item, local, source)
                outputs = {
                    fs: replace(out, attrs=relabel(out.attrs, *spool))
                    for fs, out in outputs.items()
                }
            else:
                outputs = self._extract_all(item, item.path, fingerprint(item.path))
            for fs, out in outputs.items():
                self._validate(item, fs, out)
        except Exception as exc:
            failure = failure_from_exception(
                item.video_id, str(item.path), exc, node_id=self.node_id
            )
            if spool is not None:
                failure = replace(failure, message=relabel(failure.message, *spool))
            return VideoResult(
                item, self.node_id, self.pid, time.perf_counter() - t0, failure=failure,
                peak_rss=peak_rss(), thread_changes=self._take_thread_changes(),
            )  # fmt: skip
        return VideoResult(
            item, self.node_id, self.pid, time.perf_counter() - t0, outputs=outputs,
            peak_rss=peak_rss(), thread_changes=self._take_thread_changes(),
            frames_decoded=self._frames_decoded,
        )  # fmt: skip

    def _take_thread_changes(self) -> list[dict[str, Any]]:
        changes, self.thread_changes = self.thread_changes, []
        return changes

    def _extract_all(
        self, item: VideoItem, path: Path, source: Fingerprint
    ) -> dict[str, VideoOutput]:
        """Every backbone's output from one decode of the video, or an exception for all.

        All or nothing: a video too short for one backbone's snippet fails for every
        feature set (NoSnippetsError naming them), so a video is written to all of a
        run's feature sets or to none, as a run with one backbone at a time would do.
        """
        feats = self._extract(path, item.video_id)
        if feats:
            self._frames_decoded = int(next(iter(feats.values())).meta["decode"]["frames_decoded"])
        short = [fs for fs, f in feats.items() if f.num_snippets == 0]
        if short and len(feats) > 1:
            frames = ", ".join(
                f"{fs}: {feats[fs].meta.get('num_frames')} frame(s) at {feats[fs].spec.fps:g} fps"
                for fs in short
            )
            raise NoSnippetsError(
                f"video {item.video_id} ({item.path}) is shorter than one snippet of "
                f"{', '.join(short)} ({frames}), so no feature set gets it",
                hint="check the file; a video must cover at least one clip length of "
                "every backbone",
            )
        return {fs: to_output(item, f, source) for fs, f in feats.items()}

    def _validate(self, item: VideoItem, fs: str, out: VideoOutput) -> None:
        """The store's own checks (dims, NaN/Inf, timestamps, attrs), here in the worker.

        A video that would fail to write fails now, as a per-video failure, instead of
        failing the driver's commit.
        """
        spec = self.specs.get(fs)
        if spec is None:
            return
        from talkit.store.validate import prepare_video

        prepare_video(
            spec, f"{self.dataset}/{fs}", item.video_id, out.streams, out.timestamps, out.attrs
        )

    def _extract(self, path: Path, video_id: str) -> dict[str, Any]:
        """VideoFeatures per feature set, decoding the video once for all backbones.

        After each batch (in this, the forward thread) a thread count asked for by
        ``set_threads`` is applied.
        """
        from talkit.extractors.extract import ShortVideoWarning
        from talkit.extractors.multi import extract_video_multi

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ShortVideoWarning)  # reported as NoSnippetsError
            return extract_video_multi(
                path,
                {job.feature_set: self.backbones[job.feature_set] for job in self.jobs},
                batch_size=self.batch_size,
                flow_computers={fs: f for fs, f in self.flows.items() if f is not None},
                fps_for_frames=self.frames_fps,
                progress=lambda _name, done: self._apply_threads(video_id, done),
            )


# Video attrs kept from extract_video's meta: deterministic facts about the source only
# (no timings, device or local checkpoint paths), so re-runs write identical attrs.
_META_KEYS = ("video", "num_frames", "damage", "warnings")


def to_output(item: VideoItem, feats: Any, source: Fingerprint) -> VideoOutput:
    """Arrays and attrs of an ``extract_video`` result, as the store takes them."""
    streams = {name: np.asarray(a) for name, a in feats.streams.items()}
    timestamps = np.asarray(feats.timestamps, dtype=np.float64)
    meta = dict(feats.meta or {})
    if timestamps.shape[0] == 0:
        frames = meta.get("num_frames")
        raise NoSnippetsError(
            f"video {item.video_id} ({item.path}) is shorter than one snippet"
            + (f" ({frames} frame(s) at the backbone's fps)" if frames is not None else "")
            + ", so it has no features",
            hint="check the file; a video must cover at least one clip length",
        )
    video = dict(meta.get("video") or {})
    video.pop("path", None)
    attrs: dict[str, Any] = {"source": source.to_attrs()}
    attrs.update({k: meta[k] for k in _META_KEYS if k in meta and k != "video"})
    attrs["video"] = video
    if video:
        attrs.update(
            native_fps=video.get("fps"),
            frame_count=video.get("num_frames"),
            duration_s=video.get("duration_s"),
        )
    return VideoOutput(streams, timestamps, attrs)
