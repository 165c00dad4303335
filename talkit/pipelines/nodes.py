"""Before workers start on a cluster: can every node run this extraction?

On an existing cluster (``--ray-address``) the workers run on machines the driver has
never seen, each with its own installation and environment. The usual mistakes there
(talkit missing or at another version, videos at paths only the driver has, AWS
variables set on the driver only) would otherwise show up as one failure per video,
node by node, or as a Ray traceback. So the driver first runs one small task on every
node that can host a worker (:func:`check_nodes`), and refuses to start, in one message
that names each node and what it lacks, if any of them cannot do the work.

What is checked, on each node:

- talkit imports, at the driver's version (features must come from one code base);
- a sample of the local video paths and every checkpoint path exist (on a cluster they
  must be on a filesystem every node mounts, at the same path);
- the buckets of ``s3://`` videos can be reached with the node's own AWS environment.

Nodes that join later (autoscaling) are not probed: a worker there still reports its
talkit version when it is ready, and the driver stops on a mismatch
(:func:`check_version`).
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from talkit.errors import InputError, TalkitError

PROBE_TIMEOUT_S = 120.0  # a node may have to start a Python worker first
PATH_SAMPLE = 8  # local video paths checked per node (first, last and spread between)
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b.*?:")


class ClusterSetupError(InputError):
    """Some node of the Ray cluster cannot run the extraction as set up."""


class VersionMismatchError(ClusterSetupError):
    """A worker runs another talkit version than the driver."""


@dataclass(frozen=True)
class NodeNeeds:
    """What this run's workers will need on a node."""

    talkit_version: str
    local_paths: tuple[str, ...] = ()
    buckets: tuple[str, ...] = ()  # s3://BUCKET/ of the videos


@dataclass
class NodeReport:
    """One node's answer: where it is and what it lacks."""

    node_id: str
    host: str
    ip: str
    talkit_version: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.host} ({self.ip}, node {self.node_id[:8]})"


def node_needs(paths: Iterable[Any], checkpoints: Iterable[str] = ()) -> NodeNeeds:
    """The needs of a run over ``paths`` (local paths or s3:// URLs) and checkpoint files."""
    from talkit import __version__
    from talkit.s3 import is_s3_url, split_url

    local: list[str] = []
    buckets: set[str] = set()
    for path in paths:
        if isinstance(path, str) and is_s3_url(path):
            buckets.add(f"s3://{split_url(path)[0]}/")
        else:
            local.append(os.path.abspath(os.fspath(path)))
    sample = _spread(local, PATH_SAMPLE)
    extra = [os.path.abspath(os.fspath(c)) for c in checkpoints if not is_s3_url(str(c))]
    return NodeNeeds(__version__, tuple(sample + extra), tuple(sorted(buckets)))


def _spread(items: Sequence[str], n: int) -> list[str]:
    """Up to ``n`` items, first and last included, evenly spaced."""
    if len(items) <= n:
        return list(items)
    step = (len(items) - 1) / (n - 1)
    return [items[round(i * step)] for i in range(n)]


def probe(needs: NodeNeeds) -> dict[str, Any]:
    """Runs on a node: its host name, talkit version, and what it lacks of ``needs``."""
    from talkit import __version__
    from talkit import s3 as s3_mod

    problems: list[str] = []
    if __version__ != needs.talkit_version:
        problems.append(
            f"talkit {__version__} is installed, the driver runs {needs.talkit_version}"
        )
    missing = [p for p in needs.local_paths if not os.path.exists(p)]
    if missing:
        more = f" and {len(missing) - 1} more of the run's files" if len(missing) > 1 else ""
        problems.append(f"no file {missing[0]}{more}")
    for url in needs.buckets:
        try:
            s3_mod.check_bucket(url)
        except TalkitError as exc:
            problems.append(exc.message)
    return {"host": socket.gethostname(), "talkit": __version__, "problems": problems}


def check_nodes(needs: NodeNeeds, worker_request: dict[str, float]) -> list[NodeReport]:
    """Probe every live node that can host a worker; raise ClusterSetupError if one can't run.

    ``worker_request`` is what one worker asks Ray for (``{"num_cpus": .., "num_gpus": ..}``);
    nodes too small for it (a head started with ``--num-cpus 0``) get no workers, so they
    are not asked.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    want = {"CPU": worker_request.get("num_cpus", 0.0), "GPU": worker_request.get("num_gpus", 0.0)}
    nodes = [
        n
        for n in ray.nodes()
        if n.get("Alive") and all(n.get("Resources", {}).get(k, 0.0) >= v for k, v in want.items())
    ]
    if not nodes:
        return []
    remote = ray.remote(probe)
    pending: dict[Any, NodeReport] = {}
    for n in nodes:
        report = NodeReport(
            n["NodeID"], n.get("NodeManagerHostname", "?"), n.get("NodeManagerAddress", "?")
        )
        strategy = NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
        ref = remote.options(num_cpus=0, max_retries=0, scheduling_strategy=strategy).remote(needs)
        pending[ref] = report
    ready, late = ray.wait(list(pending), num_returns=len(pending), timeout=PROBE_TIMEOUT_S)
    for ref in late:
        pending[ref].problems.append(f"did not answer within {PROBE_TIMEOUT_S:.0f} s")
        ray.cancel(ref, force=True)
    for ref in ready:
        report = pending[ref]
        try:
            answer = ray.get(ref)
        except ray.exceptions.RayError as exc:
            report.problems.append(f"cannot run talkit there ({cause_line(exc)})")
            continue
        report.host = answer["host"]
        report.talkit_version = answer["talkit"]
        report.problems.extend(answer["problems"])
    reports = list(pending.values())
    bad = [r for r in reports if r.problems]
    if bad:
        shown = " | ".join(f"{r.where}: {'; '.join(r.problems)}" for r in bad[:4])
        more = f" | and {len(bad) - 4} more node(s)" if len(bad) > 4 else ""
        raise ClusterSetupError(
            f"{len(bad)} of {len(reports)} Ray node(s) cannot run this extraction: {shown}{more}",
            hint="every node needs the driver's talkit version, the videos and checkpoints at "
            "the same paths (a shared filesystem) or in object storage, and the AWS_* "
            "variables in the environment `ray start` ran with (see docs/cluster.md)",
        )
    return reports


def check_version(driver: str, worker: str | None, where: str) -> None:
    """Raise VersionMismatchError unless a worker's talkit version is the driver's."""
    if worker != driver:
        raise VersionMismatchError(
            f"the extraction worker on {where} runs talkit {worker}, the driver runs {driver}; "
            "features from two versions may differ",
            hint=f"install talkit {driver} on every node of the cluster (or the driver's "
            "version there), then re-run the same command to resume",
        )


def cause_line(exc: BaseException) -> str:
    """The line of a Ray error that names the real exception (``Type: message``).

    Ray's messages start with where the error happened (``ray::Actor.__init__() (pid=..)``)
    and end with the exception that caused it, which is what a user can act on.
    """
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    for line in reversed(lines):
        if _EXCEPTION_LINE.match(line):
            return line[:500]
    return (lines[0] if lines else type(exc).__name__)[:500]
