"""Ray for extraction: start it embedded or join a cluster, and size the workers to it.

By default ``talkit extract`` starts Ray inside the command, sized to this machine, and
stops it at the end, even where another Ray cluster runs on the machine. ``--ray-address``
joins a running cluster instead (``auto`` or ``HOST:PORT``); talkit must be installed on its
nodes (docs/cluster.md). A ``HOST:PORT`` is checked first (:func:`check_address`): an
address where nothing listens, or a cluster that wants a token this process lacks, fails in
seconds with what to do, where ``ray.init`` alone retries for 20 s to minutes. When Ray is
already initialised in this process (a notebook, the test suite) it is used as it is and
left running.

Worker sizing follows what the cluster *has* (``ray.available_resources()``), never a
fixed request: one worker per CPU (or per GPU with ``--device cuda``), each asking for a
*fraction* of a CPU. Whole-CPU requests on a 2-CPU machine leave nothing for any other
task, which is how Ray pipelines deadlock there; a fraction above one half still makes Ray
place one worker per CPU, so workers spread over the nodes of a cluster.

A run with fewer videos than CPUs gets fewer, wider workers: ``min(CPUs, videos)`` of
them, each with ``CPUs // workers`` torch threads, so that every core works on the few
videos there are (one video on 2 CPUs: one worker with 2 threads, not two workers of
which one idles). ``--threads N`` alone gives ``CPUs // N`` workers; ``--num-workers``
and ``--threads`` together are taken as they are. Each worker's share of the cluster's
memory (Ray's ``memory`` resource) sizes ``--batch-size auto``
(:mod:`talkit.extractors.batching`).
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from talkit.errors import InputError
from talkit.pipelines.niceness import WORKER_ENV

Device = Literal["cpu", "cuda"]
CPU_FRACTION = 0.8  # of its share of CPUs that each worker requests (see module docstring)
CONNECT_TIMEOUT_S = 5.0  # for the head's port to accept a TCP connection
GCS_CHECK_S = 10.0  # for the head to accept or refuse this process


class RayUnavailableError(InputError):
    """Ray could not be started or reached at the given address."""


@dataclass
class RayRuntime:
    """A Ray connection this process either started (and will stop) or found."""

    address: str | None
    started_here: bool
    startup_s: float
    resources: dict[str, float]

    @property
    def embedded_here(self) -> bool:
        """Ray that this process started on this machine (not joined, not found running).

        Its raylet started with the workers' environment (niceness.WORKER_ENV), so actors
        need no runtime env of their own, and its shutdown may stop the autoscaler
        monitor first (see start_ray and shutdown)."""
        return self.started_here and self.address is None

    @property
    def num_nodes(self) -> int:
        import ray

        return sum(1 for n in ray.nodes() if n.get("Alive"))

    def shutdown(self) -> None:
        """Stop Ray if this runtime started it."""
        import ray

        if self.started_here and ray.is_initialized():
            if self.embedded_here:
                _stop_autoscaler_monitor()
            ray.shutdown()


# Ray's embedded start-up, tuned for a Ray that only talkit's actors use (measured on 2
# CPUs): no prestarted idle workers. Ray starts one per CPU, for tasks only; actors never
# use them, and their start-up competes for the CPUs with Ray's own and the driver's.
EMBEDDED_SYSTEM_CONFIG = {"prestart_worker_first_driver": False}


def _stop_autoscaler_monitor() -> None:
    """Kill the embedded Ray's autoscaler monitor before ``ray.shutdown``.

    Ray stops it after the GCS, and its SIGTERM handler then blocks on reporting to the
    GCS that is gone until Ray's one-second grace period ends in a SIGKILL: 1.0 of the
    1.3 s ``ray.shutdown`` took (measured). An embedded Ray has nothing to autoscale, and
    the monitor holds no state, so it is killed first. Skipped if Ray's internals moved.
    """
    try:
        from ray._private import ray_constants
        from ray._private import worker as ray_worker

        node = ray_worker._global_node
        monitors = node.all_processes.get(ray_constants.PROCESS_TYPE_MONITOR, [])
        for info in monitors:
            info.process.kill()
        for info in monitors:
            info.process.wait(timeout=2)
    except Exception:  # pragma: no cover - another Ray version: its own shutdown does it
        pass


def start_ray(address: str | None = None, *, num_cpus: int | None = None) -> RayRuntime:
    """Join ``address`` (``auto``, ``HOST:PORT``) or start Ray embedded on this machine."""
    import ray

    if ray.is_initialized():
        return RayRuntime(None, False, 0.0, dict(ray.available_resources()))
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "logging_level": logging.ERROR,
        "log_to_driver": False,
        "configure_logging": True,
    }
    t0 = time.perf_counter()
    if address:
        check_address(resolve_address(address))
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            # "local": always a Ray of our own. Without it ray.init() joins whatever cluster
            # RAY_ADDRESS or Ray's current-cluster file names (another user's `ray start`,
            # or a stale file), and then refuses num_cpus.
            with _environment(WORKER_ENV):
                ray.init(
                    address="local",
                    num_cpus=num_cpus or os.cpu_count() or 1,
                    _system_config=EMBEDDED_SYSTEM_CONFIG,
                    **kwargs,
                )
    except ray.exceptions.AuthenticationError as exc:
        raise _token_error(address, exc) from exc
    except (ConnectionError, RuntimeError, ValueError, ray.exceptions.RayError) as exc:
        where = f"at {address}" if address else "on this machine"
        raise RayUnavailableError(
            f"cannot start or reach Ray {where}: {exc}",
            hint="check --ray-address (e.g. auto, or HOST:6379 of the head node) and that "
            "`ray status` works there; a cluster with token authentication also needs "
            "RAY_AUTH_MODE=token and its token here; leave --ray-address out to run Ray "
            "embedded",
        ) from exc
    return RayRuntime(address, True, time.perf_counter() - t0, dict(ray.available_resources()))


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """``values`` in this process's environment while Ray starts its processes.

    Ray's workers inherit the environment of the raylet, which inherits this process's.
    With the workers' environment set there (``RAY_worker_niceness=0``), talkit's actors
    need no runtime env: a worker with one waits for Ray's runtime-env agent, and started
    0.3 s later (spawn to first line of Python 0.72 s against 0.39 s, measured). Restored
    afterwards, so a Ray started later by this process gets Ray's own defaults.
    """
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def resolve_address(address: str) -> str:
    """The address ``ray.init(address=...)`` will really join.

    Ray lets ``RAY_ADDRESS`` override the address it is given. That is right for ``auto``
    (inside a Ray job, RAY_ADDRESS names the job's cluster), but a ``--ray-address
    HOST:PORT`` that Ray silently replaces by another cluster is not: that is refused.
    """
    env = os.environ.get("RAY_ADDRESS", "").strip()
    if not env or env == address:
        return address
    if address == "auto":
        return env
    raise RayUnavailableError(
        f"--ray-address {address}, but RAY_ADDRESS={env} in the environment, which Ray "
        "would join instead",
        hint="unset RAY_ADDRESS, or pass --ray-address auto to join the cluster it names",
    )


def check_address(address: str) -> None:
    """Fail in seconds, saying what to do, where ``ray.init`` retries for a minute or more.

    For ``HOST:PORT``: is anything listening there (else ``ray.init`` waits ~2 minutes),
    and does the cluster accept this process (with token authentication and no token,
    ``ray.init`` retries for 20 s and then only says it failed to connect). ``auto`` and
    ``ray://`` addresses are left to Ray.
    """
    host, _, port = address.rpartition(":")
    if "://" in address or not host or not port.isdigit():
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise RayUnavailableError(
            f"nothing answers at --ray-address {address} ({exc.strerror or exc})",
            hint="check the head node's address (`ray start --head` prints it; `ray status` "
            "there shows the cluster) and that this machine may reach that port",
        ) from exc
    refused = _gcs_refusal(address)
    if refused is not None:
        raise _token_error(address, refused)


def _gcs_refusal(address: str) -> BaseException | None:
    """The AuthenticationError the cluster's GCS answers this process with, if any.

    Asked through Ray's own GCS client, in a thread given GCS_CHECK_S; anything else
    (another error, no answer in time, a Ray without this client) is left to ``ray.init``.
    """
    import ray

    try:
        from ray._raylet import GcsClient
    except ImportError:  # pragma: no cover - Ray moved its internals
        return None
    found: list[BaseException] = []

    def ask() -> None:
        try:
            GcsClient(address=address)
        except ray.exceptions.AuthenticationError as exc:
            found.append(exc)
        except Exception:  # ray.init reports the same problem in its own words
            pass

    thread = threading.Thread(target=ask, name="talkit-gcs-check", daemon=True)
    thread.start()
    thread.join(GCS_CHECK_S)
    return found[0] if found else None


def _token_error(address: str | None, exc: BaseException) -> RayUnavailableError:
    return RayUnavailableError(
        f"the Ray cluster at {address} refused this process: it requires token "
        f"authentication ({_first_line(exc)})",
        hint="set RAY_AUTH_MODE=token and the cluster's token in RAY_AUTH_TOKEN (or "
        "~/.ray/auth_token); `ray get-auth-token` prints it on the head node",
    )


def _first_line(exc: BaseException) -> str:
    """The first sentence of an error's message (Ray's go on for a paragraph)."""
    lines = str(exc).strip().splitlines()
    return lines[0].split(". ", 1)[0][:200] if lines else type(exc).__name__


@dataclass(frozen=True)
class WorkerResources:
    """How many extraction workers to run and what each asks Ray for."""

    num_workers: int
    num_cpus: float
    num_gpus: float
    torch_threads: int
    device: Device
    memory_bytes: int | None = None  # each worker's share of the memory (None: unknown)

    def actor_options(self) -> dict[str, Any]:
        return {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}


def size_workers(
    resources: dict[str, float],
    *,
    num_workers: int | None = None,
    device: Device = "cpu",
    torch_threads: int | None = None,
    cpu_flow: bool = False,
    num_videos: int | None = None,
) -> WorkerResources:
    """Workers and per-worker requests that fit ``resources`` (see module docstring).

    ``num_videos`` (the videos this run will extract) caps the number of CPU workers, so
    that a run with few videos gets fewer workers with more threads each.
    Torch threads default to the worker's share of the CPUs on CPU workers. A GPU worker
    gets one thread (its model runs on the GPU) unless ``cpu_flow``: then the torch TV-L1
    runs on its CPUs (``--flow-device cpu``) and gets the worker's share of them, so flow
    is sized apart from the model.
    """
    cpus = float(resources.get("CPU", 0.0))
    gpus = float(resources.get("GPU", 0.0))
    if num_workers is not None and num_workers < 1:
        raise InputError(f"--num-workers must be at least 1, got {num_workers}")
    if cpus <= 0:
        raise InputError(
            "the Ray cluster has no free CPUs for extraction workers",
            hint="free some (other jobs hold them), or add nodes",
        )
    if device == "cuda":
        if gpus <= 0:
            raise InputError(
                "--device cuda, but the Ray cluster has no free GPUs",
                hint="use --device cpu, or join a cluster with GPUs via --ray-address",
            )
        n = num_workers or max(1, int(gpus))
        per_gpu = gpus / n
        num_gpus = 1.0 if per_gpu >= 1 else _floor_to(per_gpu, 0.01)
    elif device == "cpu":
        if num_workers is not None:
            n = num_workers
        else:
            # Whole cores per worker: N threads each (--threads N), else one per CPU.
            n = max(1, int(cpus) // (torch_threads or 1))
            if num_videos is not None:
                n = max(1, min(n, num_videos))
        num_gpus = 0.0
    else:
        raise InputError(f"unknown device {device!r}", hint="use --device cpu or --device cuda")
    share = cpus / n
    num_cpus = max(0.01, _floor_to(min(1.0, share) * CPU_FRACTION, 0.01))
    cpu_threads = device == "cpu" or cpu_flow
    threads = torch_threads or (max(1, math.floor(share)) if cpu_threads else 1)
    memory = resources.get("memory")
    memory_bytes = int(float(memory) / n) if memory else None
    return WorkerResources(n, num_cpus, num_gpus, threads, device, memory_bytes)


def _floor_to(value: float, step: float) -> float:
    return math.floor(value / step + 1e-9) * step
