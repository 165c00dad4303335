"""The CPU priority (niceness) of extraction workers: what the user asks, not Ray's 15.

Ray's core worker calls ``nice(RAY_worker_niceness)`` when it starts (15 by default), so
on a shared node every Ray worker yields the CPU to everything else. talkit starts its
workers with ``RAY_worker_niceness=0`` in their runtime environment (Ray's job
supervisor does the same for itself), or, in the embedded Ray it starts itself, in the
environment of that Ray's raylet, which its workers inherit. So they start at the
niceness of the Ray node (the raylet), and then each worker sets the niceness asked for
(``--niceness``, default 0) on every one of its threads: Linux keeps a niceness per
thread, and threads started later inherit their creator's.

Raising a niceness is always allowed; lowering it below what the process has needs
root, CAP_SYS_NICE or a RLIMIT_NICE that allows it (``ulimit -e``). When a worker cannot
reach the value asked for, it keeps the nearest it could and the driver says so in one
line (the run goes on).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RAY_NICENESS_ENV = "RAY_worker_niceness"  # read by Ray's core worker at start-up
MIN_NICENESS, MAX_NICENESS = -20, 19


WORKER_ENV = {RAY_NICENESS_ENV: "0"}  # stops Ray from renicing a worker at start-up


def worker_runtime_env() -> dict[str, Any]:
    """Actor runtime environment with :data:`WORKER_ENV`, for a Ray talkit did not start
    (an embedded Ray's raylet has it in its own environment: runtime.start_ray)."""
    return {"env_vars": dict(WORKER_ENV)}


@dataclass(frozen=True)
class NicenessResult:
    """What a worker asked for and what its threads run at afterwards."""

    requested: int
    achieved: int  # of the thread that runs the extraction
    at_start: int  # what Ray started it at (the node's niceness, unless Ray reniced it)
    error: str = ""  # why ``requested`` could not be set ("" when it was)

    @property
    def ok(self) -> bool:
        return self.achieved == self.requested


def _thread_ids() -> list[int]:
    """This process's thread ids (Linux); elsewhere the process itself (0)."""
    tasks = Path("/proc/self/task")
    try:
        return sorted(int(t.name) for t in tasks.iterdir())
    except OSError:
        return [0]


def apply_niceness(requested: int) -> NicenessResult:
    """Set every thread of this process to niceness ``requested``, as far as allowed."""
    if not MIN_NICENESS <= requested <= MAX_NICENESS:
        raise ValueError(f"niceness must be in {MIN_NICENESS}..{MAX_NICENESS}, got {requested}")
    if not hasattr(os, "setpriority"):  # Windows has no niceness, and Ray sets none there
        return NicenessResult(requested, requested, requested, "")
    error = ""
    at_start = os.getpriority(os.PRIO_PROCESS, 0)
    for tid in _thread_ids():
        try:
            if os.getpriority(os.PRIO_PROCESS, tid) != requested:
                os.setpriority(os.PRIO_PROCESS, tid, requested)
        except ProcessLookupError:
            continue  # the thread ended meanwhile
        except PermissionError as exc:
            error = error or f"{exc.strerror or exc}"
    achieved = os.getpriority(os.PRIO_PROCESS, 0)
    if achieved != requested and not error:
        error = "the system kept another value"
    return NicenessResult(requested, achieved, at_start, error)


def niceness_note(requested: int, achieved: int, where: str) -> str:
    """One line for the user when workers could not get the niceness asked for."""
    lower = achieved > requested
    why = (
        "lowering a niceness needs root, CAP_SYS_NICE or a RLIMIT_NICE that allows it "
        "(ulimit -e); the Ray node runs at a higher one"
        if lower
        else "the system refused it"
    )
    return (
        f"extraction workers on {where} run at niceness {achieved}, not the {requested} "
        f"asked for: {why}; start Ray (or talkit) at niceness {requested}, or pass "
        f"--niceness {achieved}"
    )
