"""``talkit extract`` as a function: plan -> resume -> Ray workers -> periodic commits.

::

    plan (videos) ──► resume (skip done) ──► queue ──► Ray actors (one per CPU/GPU,
                                                       models loaded once, one video
                                                       per call, 2 calls in flight)
                                                            │ arrays
                     store  ◄── one commit per N videos ◄── driver (the only writer)

- Only the driver writes, so workers need no access to the store (a cluster's nodes
  may not see a local store path), and each commit is one atomic store version: a crash
  (even SIGKILL of the driver) loses at most the videos since the last commit, and the
  next run of the same command skips everything committed.
- Memory stays bounded: a worker holds one video's snippet batches (``extract_video``
  streams them), the driver holds at most one commit's worth of results (``commit_every``
  videos or 256 MiB), and at most two calls per worker are in flight.
- A worker that dies (killed, out of memory, its node removed) is replaced; its videos go
  back in the queue, up to ``max_attempts`` tries each.
- On a cluster (``--ray-address``, or more than one node), every node that can host a
  worker is checked before any model loads (:mod:`talkit.pipelines.nodes`), and each
  worker's talkit version is compared with the driver's when it is ready.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from talkit.errors import InputError, TalkitError, WorkFailedError
from talkit.pipelines.config import ExtractConfig
from talkit.pipelines.failures import (
    Failure,
    TooManyFailuresError,
    WorkerDiedError,
    check_max_failures,
)
from talkit.pipelines.nodes import cause_line, check_nodes, check_version, node_needs
from talkit.pipelines.plan import Plan, VideoItem
from talkit.pipelines.progress import RunObserver
from talkit.pipelines.report import RunReport, VideoDone, commit_record, new_run_id
from talkit.pipelines.resume import SOURCE_ATTR, decide
from talkit.pipelines.runtime import RayRuntime, WorkerResources, size_workers, start_ray
from talkit.pipelines.worker import BackboneJob, ExtractWorker, VideoResult, backbone_spec

MAX_BUFFER_BYTES = 256 << 20
CALLS_IN_FLIGHT = 2
START_TIMEOUT_S = 600.0


@dataclass
class ExtractJob:
    """Everything one ``talkit extract`` run needs."""

    plan: Plan
    store: str
    dataset: str
    config: ExtractConfig = field(default_factory=ExtractConfig)
    feature_set: str | None = None
    force: bool = False
    ray_address: str | None = None
    report_path: Path | None = None
    command: list[str] = field(default_factory=list)

    def backbone_jobs(self) -> list[BackboneJob]:
        cfg = self.config
        if self.feature_set and len(cfg.backbones) > 1:
            raise InputError(
                "--feature-set names one feature set, but several backbones were asked for",
                hint="leave --feature-set out: each backbone then writes a set named after it",
            )
        return [
            BackboneJob(
                backbone=name,
                feature_set=self.feature_set or name,
                options=cfg.backbone_options(),
                checkpoints=dict(cfg.checkpoints),
                random_weights_seed=cfg.random_weights_seed,
            )
            for name in cfg.backbones
        ]


def run_extraction(job: ExtractJob, observer: RunObserver | None = None) -> RunReport:
    """Run one extraction; return its report (failures are in it, not raised).

    Raises TalkitError subclasses for problems with the setup (store, spec, checkpoints,
    Ray) and TooManyFailuresError when ``max_failures`` is exceeded (after committing what
    was done).
    """
    from talkit.store import FeatureStore
    from talkit.store.errors import StoreFormatError

    observer = observer or RunObserver()
    t0 = time.perf_counter()
    jobs = job.backbone_jobs()
    # Specs first: bad checkpoints fail now (exit 2), not once per video on every worker.
    specs = {j.feature_set: backbone_spec(j).to_store_spec() for j in jobs}

    try:
        store = FeatureStore.open(job.store, mode="a")
    except StoreFormatError:
        # exist_ok: on object storage another run may be creating the same store right now.
        store = FeatureStore.create(job.store, exist_ok=True)
    for fs_name, spec in specs.items():
        _check_existing_spec(store, job.dataset, fs_name, spec)
        store.create_feature_set(job.dataset, fs_name, spec, exist_ok=True)

    report = RunReport(
        run_id=new_run_id(),
        store=job.store,
        dataset=job.dataset,
        feature_sets=[f"{job.dataset}/{name}" for name in specs],
        command=list(job.command),
        config=job.config.model_dump(mode="json"),
        planned=len(job.plan.items) + len(job.plan.rejected),
        missing=list(job.plan.missing),
    )
    for rej in job.plan.rejected:
        report.failures.append(
            Failure(rej.video_id, str(rej.path) if rej.path else None, rej.error_type, rej.message)
        )
    stored = _stored_sources(store, job.dataset, list(specs))
    decision = decide(job.plan.items, stored, force=job.force)
    report.skipped = [i.video_id for i in decision.done]
    report.redo = decision.redo
    observer.on_start(report, len(decision.todo))

    committer = _Committer(store, job, report, observer, set(stored))
    try:
        if decision.todo:
            _Scheduler(job, jobs, specs, committer, report, observer).run(decision.todo)
        committer.commit(final=True)
    except BaseException as exc:
        if isinstance(exc, TooManyFailuresError):
            report.aborted = exc.message
        elif isinstance(exc, KeyboardInterrupt):
            report.aborted = "interrupted"
        with contextlib.suppress(TalkitError):
            committer.commit(final=True)  # keep what is done
        raise
    finally:
        report.elapsed_s = time.perf_counter() - t0
        report.finished_at = datetime.now(UTC).isoformat(timespec="seconds")
        if job.report_path is not None:
            report.write(job.report_path)
        observer.on_finish(report)
    return report


class SpecMismatchError(InputError):
    """The feature set exists with another spec: its features were made differently."""


def _check_existing_spec(store: Any, dataset: str, name: str, spec: Any) -> None:
    key = f"{dataset}/{name}"
    if key not in store.feature_sets():
        return
    old = store.feature_set(dataset, name).spec
    changes = old.diff(spec)
    if changes:
        shown = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in list(changes.items())[:4])
        raise SpecMismatchError(
            f"feature set {key} in {store.url} was extracted with other settings ({shown}"
            f"{'; ...' if len(changes) > 4 else ''}); mixing them would give a set whose "
            "videos disagree",
            hint=f"write these features to a new feature-set name with --feature-set (e.g. "
            f"{name}_2), or re-run with the settings of the existing set to resume it",
        )


def _stored_sources(store: Any, dataset: str, names: list[str]) -> dict[str, Any]:
    """Video id -> stored source attrs, for videos complete in every feature set."""
    per_set = []
    for name in names:
        fs = store.feature_set(dataset, name)
        per_set.append({vid: fs.video(vid).attrs.get(SOURCE_ATTR) for vid in fs.videos()})
    common = set.intersection(*(set(d) for d in per_set)) if per_set else set()
    out: dict[str, Any] = {}
    for vid in common:
        sources = [d[vid] for d in per_set]
        out[vid] = sources[0] if all(s == sources[0] for s in sources) else None
    # Present in some sets only: redo (overwrite) so that all sets agree again.
    for d in per_set:
        for vid in set(d) - common:
            out.setdefault(vid, None)
    return out


class _Committer:
    """Buffers finished videos and commits them as one store version at a time."""

    def __init__(
        self,
        store: Any,
        job: ExtractJob,
        report: RunReport,
        observer: RunObserver,
        stored: set[str],
    ) -> None:
        self.store = store
        self.job = job
        self.report = report
        self.observer = observer
        self.stored = stored
        self.buffer: list[VideoResult] = []
        self.bytes = 0
        self.part = 0
        self.last = time.monotonic()

    def add(self, result: VideoResult) -> None:
        self.buffer.append(result)
        self.bytes += result.nbytes
        cfg = self.job.config
        if (
            len(self.buffer) >= cfg.commit_every
            or self.bytes >= MAX_BUFFER_BYTES
            or time.monotonic() - self.last >= cfg.commit_interval_s
        ):
            self.commit(final=False)

    def commit(self, *, final: bool) -> None:
        self.last = time.monotonic()
        if not self.buffer:
            return
        batch, self.buffer, self.bytes = self.buffer, [], 0
        self.part += 1
        report = self.report
        ids = [r.item.video_id for r in batch]
        meta = commit_record(report, self.part, ids, final=final)
        message = (
            f"extract {', '.join(report.feature_sets)}: {len(batch)} videos "
            f"(run {report.run_id}, part {self.part})"
        )
        # Workers validated every array against the spec (store.validate), so a write
        # error here is the store's (disk, permissions) and stops the run.
        with self.store.writer(message=message, metadata=meta) as w:
            for result in batch:
                for fs_name, out in (result.outputs or {}).items():
                    w.write_video(
                        self.job.dataset,
                        fs_name,
                        result.item.video_id,
                        streams=out.streams,
                        timestamps=out.timestamps,
                        attrs=out.attrs,
                        overwrite=result.item.video_id in self.stored,
                    )
        snapshot = w.snapshot_id
        if snapshot:
            report.commits.append(snapshot)
        for r in batch:
            report.extracted.append(
                VideoDone(r.item.video_id, str(r.item.path), r.snippets, r.seconds, r.node_id,
                          r.pid, r.attempts)
            )  # fmt: skip
        self.stored.update(ids)
        self.observer.on_commit(snapshot, len(batch))
        if self.job.report_path is not None:
            report.write(self.job.report_path)


@dataclass
class _Slot:
    """One worker actor and the calls it has in flight."""

    name: str
    handle: Any
    ready_ref: Any
    ready: bool = False
    dead: bool = False
    node_id: str | None = None
    calls: dict[Any, VideoItem] = field(default_factory=dict)


class _Scheduler:
    """Feeds videos to Ray actors, replaces dead ones, hands results to the committer."""

    def __init__(
        self,
        job: ExtractJob,
        jobs: list[BackboneJob],
        specs: dict[str, Any],
        committer: _Committer,
        report: RunReport,
        observer: RunObserver,
    ) -> None:
        self.job = job
        self.jobs = jobs
        self.specs = specs
        self.committer = committer
        self.report = report
        self.observer = observer
        self.attempts: dict[str, int] = {}
        self.slots: list[_Slot] = []
        self.spawned = 0
        self.runtime: RayRuntime | None = None
        self.resources: WorkerResources | None = None
        self.start_errors: list[str] = []
        self.t_spawn = 0.0
        self.t_first_ready: float | None = None

    # -- actors ---------------------------------------------------------------------------
    def _spawn(self) -> None:
        import ray

        assert self.resources is not None
        res = self.resources
        cfg = self.job.config
        remote = ray.remote(ExtractWorker)
        name = f"talkit-extract-{self.report.run_id}-{self.spawned}"
        self.spawned += 1
        handle = remote.options(
            name=name,
            max_restarts=0,
            max_concurrency=1,
            scheduling_strategy="SPREAD",
            **res.actor_options(),
        ).remote(
            self.jobs,
            specs=self.specs,
            dataset=self.job.dataset,
            batch_size=cfg.batch_size,
            device=res.device,
            torch_threads=res.torch_threads,
            frames_fps=cfg.frames_fps,
        )
        self.slots.append(_Slot(name, handle, handle.ready.remote()))

    def _live(self) -> list[_Slot]:
        return [s for s in self.slots if not s.dead]

    # -- main loop ------------------------------------------------------------------------
    def run(self, todo: list[VideoItem]) -> None:
        import ray

        cfg = self.job.config
        self.runtime = start_ray(self.job.ray_address)
        try:
            self.resources = size_workers(
                self.runtime.resources,
                num_workers=cfg.num_workers,
                device=cfg.device,
                torch_threads=cfg.torch_threads,
            )
            n = min(self.resources.num_workers, len(todo))
            if self.job.ray_address or self.runtime.num_nodes > 1:
                # Workers run on other machines: check them all before any model loads.
                needs = node_needs((i.path for i in todo), cfg.checkpoints.values())
                check_nodes(needs, self.resources.actor_options())
            self.t_spawn = time.perf_counter()
            for _ in range(n):
                self._spawn()
            self.report.ray = {
                "address": self.job.ray_address or "embedded",
                "startup_s": round(self.runtime.startup_s, 3),
                "workers": n,
                "nodes": self.runtime.num_nodes,
                "cpus_per_worker": self.resources.num_cpus,
                "gpus_per_worker": self.resources.num_gpus,
                "torch_threads": self.resources.torch_threads,
                "worker_starts": [],
            }
            self.observer.on_workers(n, self.runtime.num_nodes)
            self._loop(deque(todo), ray)
        finally:
            if self.t_first_ready is not None:
                self.report.extract_s = time.perf_counter() - self.t_first_ready
            with contextlib.suppress(Exception):
                self.report.ray["node_info"] = _node_info(ray)
            for slot in self.slots:
                if not slot.dead:
                    with contextlib.suppress(Exception):
                        ray.kill(slot.handle, no_restart=True)
            self.runtime.shutdown()

    def _loop(self, queue: deque[VideoItem], ray: Any) -> None:
        max_spawns = len(self.slots) * (self.job.config.max_attempts + 1) + 2
        idle_since = time.monotonic()
        while queue or any(s.calls for s in self.slots):
            for slot in self._live():
                while slot.ready and queue and len(slot.calls) < CALLS_IN_FLIGHT:
                    item = queue.popleft()
                    slot.calls[slot.handle.process.remote(item)] = item
            waiting = {s.ready_ref: s for s in self._live() if not s.ready}
            calls = {ref: s for s in self.slots for ref in s.calls}
            refs = list(waiting) + list(calls)
            if not refs:  # every worker is dead and none is starting
                if self.spawned >= max_spawns:
                    raise WorkFailedError(
                        f"extraction workers keep dying ({self.spawned} started)"
                        + (
                            f"; last start error: {self.start_errors[-1]}"
                            if self.start_errors
                            else ""
                        ),
                        hint="check memory per worker (try fewer --num-workers) and the Ray logs",
                    )
                self._spawn()
                continue
            done, _ = ray.wait(refs, num_returns=1, timeout=1.0)
            if not done:
                if any(s.ready for s in self._live()):
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since > START_TIMEOUT_S:
                    raise WorkFailedError(
                        f"no extraction worker started within {START_TIMEOUT_S:.0f} s",
                        hint=f"the cluster may lack the resources a worker asks for "
                        f"({self.resources.actor_options() if self.resources else '?'})",
                    )
                continue
            ref = done[0]
            if ref in waiting:
                self._on_ready(waiting[ref], ray)
            else:
                slot = calls[ref]
                item = slot.calls.pop(ref)
                self._on_result(slot, item, ref, queue, ray, max_spawns)

    def _on_ready(self, slot: _Slot, ray: Any) -> None:
        from talkit import __version__

        try:
            info = ray.get(slot.ready_ref)
            slot.node_id, pid = info["node_id"], info["pid"]
            slot.ready = True
            self.report.ray.setdefault("worker_starts", []).append(
                {"worker": slot.name, "node_id": slot.node_id, "host": info.get("host"),
                 "pid": pid, "ready_s": round(time.perf_counter() - self.t_spawn, 3)}
            )  # fmt: skip
            check_version(__version__, info.get("talkit"), f"{info.get('host')} ({slot.node_id})")
            self.observer.on_worker_ready(slot.name, slot.node_id, pid)
            if self.t_first_ready is None:
                self.t_first_ready = time.perf_counter()
                self.report.ray["workers_ready_s"] = round(self.t_first_ready - self.t_spawn, 3)
        except ray.exceptions.RayError as exc:
            slot.dead = True
            self.start_errors.append(cause_line(exc))
            if not any(s.ready for s in self._live()) and not any(
                not s.ready for s in self._live()
            ):
                raise WorkFailedError(
                    f"no extraction worker could start: {self.start_errors[-1]}",
                    hint="the worker's error is above; --debug shows Ray's full report",
                ) from exc

    def _on_result(
        self,
        slot: _Slot,
        item: VideoItem,
        ref: Any,
        queue: deque[VideoItem],
        ray: Any,
        max_spawns: int,
    ) -> None:
        try:
            result: VideoResult = ray.get(ref)
        except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError,
                ray.exceptions.ObjectLostError, ray.exceptions.NodeDiedError) as exc:  # fmt: skip
            self._worker_died(slot, item, exc, queue, max_spawns)
            return
        except ray.exceptions.RayTaskError as exc:
            result = VideoResult(
                item, slot.node_id or "?", 0, 0.0,
                failure=Failure(item.video_id, str(item.path), type(exc.cause).__name__
                                if exc.cause else "RayTaskError", _short(exc)),
            )  # fmt: skip
        result.attempts = self.attempts.get(item.video_id, 0) + 1
        if result.failure is not None:
            self._fail(result.failure)
        else:
            self.committer.add(result)
            self.observer.on_video(
                VideoDone(item.video_id, str(item.path), result.snippets, result.seconds,
                          result.node_id, result.pid, self.attempts.get(item.video_id, 0) + 1)
            )  # fmt: skip

    def _worker_died(
        self, slot: _Slot, item: VideoItem, exc: Exception, queue: deque[VideoItem], max_spawns: int
    ) -> None:
        import ray

        if not slot.dead:
            slot.dead = True
            # "Unavailable" may also mean cut off for a while: make sure it is gone, so that
            # it frees its CPUs for the replacement and sends nothing more.
            with contextlib.suppress(Exception):
                ray.kill(slot.handle, no_restart=True)
            if queue and self.spawned < max_spawns:
                self._spawn()
        n = self.attempts.get(item.video_id, 0) + 1
        self.attempts[item.video_id] = n
        if n >= self.job.config.max_attempts:
            self._fail(
                Failure(
                    item.video_id,
                    str(item.path),
                    WorkerDiedError.__name__,
                    f"the worker died {n} times while extracting this video (last: "
                    f"{_short(exc)}); it may crash the decoder or exhaust memory",
                    attempts=n,
                    node_id=slot.node_id,
                )
            )
            return
        self.observer.on_retry(item.video_id, f"worker {slot.name} died ({type(exc).__name__})")
        queue.appendleft(item)

    def _fail(self, failure: Failure) -> None:
        self.report.failures.append(failure)
        self.observer.on_failure(failure)
        check_max_failures(len(self.report.failures), self.job.config.max_failures, failure)


def _node_info(ray: Any) -> dict[str, dict[str, Any]]:
    """Node id -> host name, IP and whether it was alive at the end (to read ``node_id``s)."""
    return {
        n["NodeID"]: {
            "host": n.get("NodeManagerHostname"),
            "ip": n.get("NodeManagerAddress"),
            "alive": bool(n.get("Alive")),
        }
        for n in ray.nodes()
    }


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:500]
