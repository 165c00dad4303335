"""``talkit extract`` as a function: plan -> resume -> Ray workers -> periodic commits.

::

    plan (videos) ──► resume (skip done) ──► queue ──► Ray actors (one per CPU/GPU and
                                                       at most one per video, models
                                                       loaded once, one video per call,
                                                       2 calls in flight while the
                                                       queue has work for all)
                                                            │ arrays
                     store  ◄── one commit per N videos ◄── driver (the only writer)

- Only the driver writes, so workers need no access to the store (a cluster's nodes
  may not see a local store path), and each commit is one atomic store version: a crash
  (even SIGKILL of the driver) loses at most the videos since the last commit, and the
  next run of the same command skips everything committed.
- Memory stays bounded: a worker holds one video's snippet batches (``extract_video``
  streams them), the driver holds at most one commit's worth of results (``commit_every``
  videos or 256 MiB), and at most two calls per worker are in flight.
- At the end of a run (queue empty), idle workers' torch threads go to the workers still
  extracting, applied between batches (``_Scheduler._rebalance``); not with ``--threads``.
- A worker that dies (killed, out of memory, its node removed) is replaced; its videos go
  back in the queue, up to ``max_attempts`` tries each.
- Several runs may write one store at once: each commit decides per video against the
  store as it is then (:mod:`talkit.pipelines.commit`), so nothing is lost or written twice.
- Failures of one video never stop the others; errors of the machine or the setup stop the
  run at once, and so do too many failures in a row (:mod:`talkit.pipelines.failures`).
  Ctrl-C stops it cleanly, a second one at once (:mod:`talkit.pipelines.interrupt`). A
  stopped run commits what is finished and writes its report first.
- On a cluster (``--ray-address``, or more than one node), every node that can host a
  worker is checked before any model loads (:mod:`talkit.pipelines.nodes`), and each
  worker's talkit version is compared with the driver's when it is ready.
"""

from __future__ import annotations

import contextlib
import shlex
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from talkit.errors import InputError, Interrupted, TalkitError, WorkFailedError
from talkit.pipelines.commit import Committer, common_sources, read_sources
from talkit.pipelines.config import ExtractConfig
from talkit.pipelines.failures import (
    SETUP,
    SYSTEMATIC,
    Failure,
    FailureGuard,
    RunStoppedError,
    SetupFailureError,
    SystematicFailureError,
    WorkerDiedError,
    failure_scope,
    start_failure_scope,
)
from talkit.pipelines.interrupt import InterruptGuard
from talkit.pipelines.niceness import niceness_note, worker_runtime_env
from talkit.pipelines.nodes import cause_line, check_nodes, check_version, node_needs
from talkit.pipelines.plan import Plan, VideoItem
from talkit.pipelines.progress import RunObserver
from talkit.pipelines.report import RunReport, VideoDone, new_run_id
from talkit.pipelines.resume import decide
from talkit.pipelines.runtime import RayRuntime, WorkerResources, size_workers, start_ray
from talkit.pipelines.worker import (
    BackboneJob,
    ExtractWorker,
    VideoResult,
    backbone_spec,
    backbone_streams,
    snippet_footprint,
)

CALLS_IN_FLIGHT = 2
CONTROL_GROUP = "control"  # the actors' concurrency group for calls made during process()
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
    runtime: RayRuntime | None = None  # Ray started by the caller (the CLI starts it early)

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
                options=cfg.options_for(name),
                checkpoints=cfg.checkpoints_for(
                    name, backbone_streams(name, cfg.options_for(name))
                ),
                random_weights_seed=cfg.random_weights_seed,
            )
            for name in cfg.backbones
        ]


def run_extraction(job: ExtractJob, observer: RunObserver | None = None) -> RunReport:
    """Run one extraction; return its report (per-video failures are in it, not raised).

    Raises TalkitError subclasses for problems with the setup (store, spec, checkpoints,
    Ray); a RunStoppedError (TooManyFailuresError, SystematicFailureError,
    SetupFailureError) when failures stop the run, and Interrupted on Ctrl-C. A stopped run
    first commits what is finished (a second Ctrl-C skips that) and writes its report.
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
        # exist_ok: another run may be creating the same store right now.
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
    planned = read_sources(store, job.dataset, list(specs))
    decision = decide(job.plan.items, common_sources(planned), force=job.force)
    report.skipped = [i.video_id for i in decision.done]
    report.redo = decision.redo
    observer.on_start(report, len(decision.todo))

    def write_report() -> None:
        if job.report_path is not None:
            report.write(job.report_path)

    committer = Committer(
        store,
        dataset=job.dataset,
        feature_sets=list(specs),
        planned=planned,
        report=report,
        observer=observer,
        commit_every=job.config.commit_every,
        commit_interval_s=job.config.commit_interval_s,
        write_report=write_report,
    )
    with InterruptGuard() as interrupts:
        try:
            try:
                if decision.todo:
                    _Scheduler(job, jobs, specs, committer, report, observer, interrupts).run(
                        decision.todo
                    )
                committer.commit(final=True)
            except _StopRequested:
                report.aborted, report.stopped_by = "interrupted", "interrupt"
                _keep_done(committer, report)
                raise _interrupted(report, len(decision.todo), len(job.plan.rejected)) from None
            except RunStoppedError as exc:
                report.aborted, report.stopped_by = exc.message, _stop_kind(exc)
                _keep_done(committer, report)
                raise
            except TalkitError as exc:
                report.aborted, report.stopped_by = exc.message, "error"
                _keep_done(committer, report)
                raise
        except KeyboardInterrupt:
            # A second Ctrl-C (or one this process's handler did not see): stop at once.
            report.aborted, report.stopped_by = "interrupted", "interrupt"
            report.uncommitted = committer.pending
            raise _interrupted(report, len(decision.todo), len(job.plan.rejected)) from None
        except (Interrupted, TalkitError):
            raise
        except Exception as exc:  # a bug: still say so in the report
            report.aborted, report.stopped_by = f"{type(exc).__name__}: {exc}", "error"
            report.uncommitted = committer.pending
            raise
        finally:
            report.elapsed_s = time.perf_counter() - t0
            report.finished_at = datetime.now(UTC).isoformat(timespec="seconds")
            write_report()
            observer.on_finish(report)
    return report


class _StopRequested(Exception):
    """Raised in the scheduler once a Ctrl-C asked the run to stop."""


def _keep_done(committer: Committer, report: RunReport) -> None:
    """Commit what is finished after a stop; what cannot be committed is listed."""
    with contextlib.suppress(TalkitError):
        committer.commit(final=True)
    report.uncommitted = committer.pending


def _stop_kind(exc: RunStoppedError) -> str:
    if isinstance(exc, SystematicFailureError):
        return "systematic"
    if isinstance(exc, SetupFailureError):
        return "setup"
    return "max-failures"


def _interrupted(report: RunReport, todo: int, rejected: int) -> Interrupted:
    """The error for a Ctrl-C: what is committed, what is not, and how to resume."""
    failed = len(report.failures) - rejected
    rest = max(0, todo - len(report.extracted) - len(report.concurrent) - failed)
    message = (
        f"interrupted: {len(report.extracted)} video(s) extracted by this run are committed "
        f"to {report.store} (store version {report.version or 'unchanged'})"
    )
    if report.uncommitted:
        message += (
            f"; a second Ctrl-C stopped it at once, so {len(report.uncommitted)} finished "
            "video(s) were not committed"
        )
    message += f"; {rest} video(s) still to extract"
    command = shlex.join(report.command) if report.command else None
    hint = (
        f"resume with the same command: {command}"
        if command
        else "run the same extraction again to resume: committed videos are skipped"
    )
    return Interrupted(message, hint=hint)


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
    base_threads: int | None = None  # torch threads it started with
    threads: int | None = None  # torch threads last asked of it (see _rebalance)


class _Scheduler:
    """Feeds videos to Ray actors, replaces dead ones, hands results to the committer."""

    def __init__(
        self,
        job: ExtractJob,
        jobs: list[BackboneJob],
        specs: dict[str, Any],
        committer: Committer,
        report: RunReport,
        observer: RunObserver,
        interrupts: InterruptGuard,
    ) -> None:
        self.job = job
        self.interrupts = interrupts
        self.guard = FailureGuard(
            max_failures=job.config.max_failures,
            max_consecutive=job.config.max_consecutive_failures,
        )
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
        self.t_spawn_epoch = 0.0  # time.time() of the first spawn (for thread changes)
        self.t_first_ready: float | None = None
        self.niceness_noted: set[str] = set()
        self.snippet_bytes: int | None = None  # for --batch-size auto, measured once here

    # -- actors ---------------------------------------------------------------------------
    def _spawn(self) -> None:
        import ray

        assert self.resources is not None and self.runtime is not None
        res = self.resources
        cfg = self.job.config
        # set_threads() runs in its own concurrency group, so it arrives while process()
        # runs (process() stays one at a time, in the default group: max_concurrency=1).
        remote = ray.remote(concurrency_groups={CONTROL_GROUP: 1})(ExtractWorker)
        name = f"talkit-extract-{self.report.run_id}-{self.spawned}"
        self.spawned += 1
        handle = remote.options(
            name=name,
            max_restarts=0,
            max_concurrency=1,
            scheduling_strategy="SPREAD",
            **({} if self.runtime.embedded_here else {"runtime_env": worker_runtime_env()}),
            **res.actor_options(),
        ).remote(
            self.jobs,
            specs=self.specs,
            dataset=self.job.dataset,
            batch_size=cfg.batch_size,
            device=res.device,
            torch_threads=res.torch_threads,
            frames_fps=cfg.frames_fps,
            niceness=cfg.niceness,
            memory_bytes=res.memory_bytes,
            snippet_bytes=self.snippet_bytes,
        )
        self.slots.append(_Slot(name, handle, handle.ready.remote()))

    def _live(self) -> list[_Slot]:
        return [s for s in self.slots if not s.dead]

    # -- main loop ------------------------------------------------------------------------
    def run(self, todo: list[VideoItem]) -> None:
        import ray

        cfg = self.job.config
        if cfg.batch_size == "auto":
            self.snippet_bytes = snippet_footprint(self.jobs)
        given = self.job.runtime
        self.runtime = given if given and ray.is_initialized() else start_ray(self.job.ray_address)
        try:
            self.resources = size_workers(
                self.runtime.resources,
                num_workers=cfg.num_workers,
                device=cfg.device,
                torch_threads=cfg.torch_threads,
                cpu_flow=cfg.torch_flow_on_cpu(),
                num_videos=len(todo),
            )
            n = min(self.resources.num_workers, len(todo))
            if self.job.ray_address or self.runtime.num_nodes > 1:
                # Workers run on other machines: check them all before any model loads.
                needs = node_needs((i.path for i in todo), cfg.checkpoint_files())
                check_nodes(needs, self.resources.actor_options())
            self.t_spawn = time.perf_counter()
            self.t_spawn_epoch = time.time()
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
                "memory_per_worker": self.resources.memory_bytes,
                "worker_starts": [],
            }
            self.observer.on_workers(n, self.runtime.num_nodes)
            self._check_interrupt()
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
            self._check_interrupt()
            self._hand_out(queue)
            self._rebalance(queue)
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

    def _hand_out(self, queue: deque[VideoItem]) -> None:
        """One call per ready worker first, then a second only while videos remain for all.

        A worker's second call waits in its own queue; near the end of a run (or at its
        start, while other workers still load their models) that would leave one worker
        with two videos while another idles, so it is only sent while the queue still
        holds a video for every live worker, ready or starting.
        """
        live = self._live()
        ready = [s for s in live if s.ready]
        for depth in range(1, CALLS_IN_FLIGHT + 1):
            for slot in ready:
                if not queue or (depth > 1 and len(queue) < len(live)):
                    return
                if len(slot.calls) < depth:
                    item = queue.popleft()
                    slot.calls[slot.handle.process.remote(item)] = item

    def _rebalance(self, queue: deque[VideoItem]) -> None:
        """Give the threads of idle workers to the busy ones once the queue is empty.

        At the end of a run, workers that have no video left would leave their cores
        unused while the others extract their last videos. Each node's cores (the threads
        its ready workers started with) are shared among its busy workers; each applies
        the new count between two batches. While the queue has videos (a retry put one
        back) every worker goes back to the threads it started with. Only on CPU workers
        and only when ``--threads`` is not given: thread counts change features in the
        last bits, and pinned threads keep them bit-identical (docs/performance.md).
        """
        if self.job.config.torch_threads is not None or self.job.config.device != "cpu":
            return
        ready = [s for s in self._live() if s.ready and s.base_threads]
        wanted: dict[str, int] = {}
        if queue:
            wanted = {s.name: s.base_threads or 1 for s in ready}
        else:
            nodes: dict[str | None, list[_Slot]] = {}
            for s in ready:
                nodes.setdefault(s.node_id, []).append(s)
            for slots in nodes.values():
                busy = [s for s in slots if s.calls]
                if not busy:
                    continue
                cores = sum(s.base_threads or 1 for s in slots)
                share, extra = divmod(cores, len(busy))
                for i, s in enumerate(busy):
                    wanted[s.name] = max(1, share + (1 if i < extra else 0))
        for s in ready:
            n = wanted.get(s.name)
            if n is None or n == s.threads:
                continue
            s.threads = n
            s.handle.set_threads.options(concurrency_group=CONTROL_GROUP).remote(n)

    def _on_ready(self, slot: _Slot, ray: Any) -> None:
        from talkit import __version__

        try:
            info = ray.get(slot.ready_ref)
            slot.node_id, pid = info["node_id"], info["pid"]
            slot.ready = True
            if info.get("torch_threads"):
                slot.base_threads = slot.threads = int(info["torch_threads"])
            self.report.ray.setdefault("worker_starts", []).append(
                {"worker": slot.name, "node_id": slot.node_id, "host": info.get("host"),
                 "pid": pid, "ready_s": round(time.perf_counter() - self.t_spawn, 3),
                 "niceness": info.get("niceness"),
                 "niceness_at_start": info.get("niceness_at_start"),
                 "torch_threads": info.get("torch_threads"), "batch_size": info.get("batch_size"),
                 "memory_share": info.get("memory_share")}
            )  # fmt: skip
            if info.get("batch_size") is not None:
                self.report.batch_size = int(info["batch_size"])
            self._check_niceness(info, slot.node_id)
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
                raise _start_error(self.start_errors[-1]) from exc

    def _check_niceness(self, info: dict[str, Any], node_id: str) -> None:
        """Say once per node when workers could not get the niceness asked for."""
        wanted, got = self.job.config.niceness, info.get("niceness")
        if got is None or got == wanted or node_id in self.niceness_noted:
            return
        self.niceness_noted.add(node_id)
        note = niceness_note(wanted, got, f"{info.get('host')} (node {node_id[:8]})")
        self.report.ray.setdefault("notes", []).append(note)
        self.observer.on_note(note)

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
            cause = exc.cause if isinstance(exc.cause, BaseException) else None
            if isinstance(cause, KeyboardInterrupt):  # a terminal's Ctrl-C reached the worker
                queue.appendleft(item)
                return
            result = VideoResult(
                item, slot.node_id or "?", 0, 0.0,
                failure=Failure(item.video_id, str(item.path), type(cause).__name__
                                if cause else "RayTaskError", _short(exc),
                                scope=failure_scope(cause) if cause else "video"),
            )  # fmt: skip
        result.attempts = self.attempts.get(item.video_id, 0) + 1
        if result.peak_rss is not None:
            self.report.note_peak_rss(slot.name, result.peak_rss)
        for change in result.thread_changes:
            self.report.note_thread_change(slot.name, change, since=self.t_spawn_epoch)
        if result.failure is not None:
            self._fail(result.failure)
            return
        self.guard.success()
        self.observer.on_video(
            VideoDone(item.video_id, str(item.path), result.snippets, result.seconds,
                      result.node_id, result.pid, result.attempts, result.frames_decoded)
        )  # fmt: skip
        if self.committer.add(result) and queue and not self.job.force:
            # Another run may be extracting the same videos into this store: skip what it
            # has committed meanwhile from the same files.
            done = self.committer.done_elsewhere(list(queue))
            if done:
                ids = {i.video_id for i in done}
                kept = [i for i in queue if i.video_id not in ids]
                queue.clear()
                queue.extend(kept)
                self.report.concurrent.extend(i.video_id for i in done)
                self.observer.on_done_elsewhere([i.video_id for i in done])

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
        self.guard.failure(failure, len(self.report.failures))

    def _check_interrupt(self) -> None:
        """After a Ctrl-C: hand out nothing more (the driver then commits what is done)."""
        if self.interrupts.requested:
            self.observer.on_interrupt()
            raise _StopRequested


def _start_error(cause: str) -> TalkitError:
    """No worker could start: an error of the setup (exit 2) or of the machine (exit 1)."""
    scope = start_failure_scope(cause)
    hint = "the worker's error is above; --debug shows Ray's full report"
    if scope == SETUP:
        return SetupFailureError(
            f"no extraction worker could start: {cause}",
            hint="a file the workers load (a checkpoint, a module) is missing or unreadable "
            "where they run; fix it and re-run the same command",
        )
    if scope == SYSTEMATIC:
        return SystematicFailureError(f"no extraction worker could start: {cause}", hint=hint)
    return WorkFailedError(f"no extraction worker could start: {cause}", hint=hint)


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
