"""A real Ray cluster on this machine, made with the ``ray start`` CLI as users make one.

A head and further nodes, each a ``ray start`` of its own, as on separate machines: own
``--temp-dir`` (a short path: Ray's socket paths must stay under 108 bytes), own free
ports for everything a node listens on (two nodes, and other people's Ray, share this
machine), token authentication with a token of the test's own (never ``~/.ray``), and
fast node-death detection so that a killed node is noticed in seconds, not 30.

Nothing here uses ``ray stop`` (it stops every Ray on the machine) or Ray's
current-cluster file under /tmp/ray: each node is started in a session of its own, and
:meth:`Node.kill` SIGKILLs that session's processes and nothing else.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

# Seconds until the head's GCS declares a silent node dead: period x threshold (+ delay).
FAST_NODE_DEATH = {
    "RAY_health_check_initial_delay_ms": "1000",
    "RAY_health_check_period_ms": "500",
    "RAY_health_check_timeout_ms": "500",
    "RAY_health_check_failure_threshold": "4",
}
START_TIMEOUT_S = 120


def free_port() -> int:
    """A TCP port that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


def _session_pids(sid: int) -> list[int]:
    """PIDs of every process in session ``sid`` (Linux /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[3]) == sid:  # state ppid pgrp session
                pids.append(int(entry.name))
    return pids


@dataclass
class Node:
    """One ``ray start``: its temp dir, its session (for killing it) and its output."""

    name: str
    temp_dir: Path
    sid: int
    output: str

    def pids(self) -> list[int]:
        return _session_pids(self.sid)

    def node_id(self) -> str:
        """The Ray node id, from this node's raylet command line."""
        for pid in self.pids():
            with contextlib.suppress(OSError):
                args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                if args and args[0].endswith(b"/raylet"):
                    for arg in args:
                        if arg.startswith(b"--node_id="):
                            return arg.split(b"=", 1)[1].decode()
        raise RuntimeError(f"no raylet running for node {self.name}")

    def kill(self) -> None:
        """SIGKILL every process of this node (a machine that dies, not a clean stop)."""
        for _ in range(3):  # workers forked while we kill
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)


@dataclass
class RayCliCluster:
    """Nodes made with ``ray start``; :attr:`env` is what a driver needs to join them."""

    root: Path
    env: dict[str, str]
    address: str = ""
    nodes: list[Node] = field(default_factory=list)

    @classmethod
    def create(cls, env: dict[str, str] | None = None) -> RayCliCluster:
        """An empty cluster: nodes come with :meth:`start_head` and :meth:`add_node`."""
        root = Path(tempfile.mkdtemp(prefix="tkr", dir="/tmp"))
        base = {k: v for k, v in (env or os.environ).items() if k != "RAY_ADDRESS"}
        base.update(
            RAY_AUTH_MODE="token",
            RAY_AUTH_TOKEN=secrets.token_hex(32),
            RAY_USAGE_STATS_ENABLED="0",
            **FAST_NODE_DEATH,
        )
        return cls(root, base)

    def _start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Node:
        temp_dir = self.root / name
        cmd = [
            "ray", "start", *args, "--temp-dir", str(temp_dir), "--num-cpus", "1",
            "--disable-usage-stats",
            "--node-manager-port", str(free_port()),
            "--object-manager-port", str(free_port()),
            "--min-worker-port", "0", "--max-worker-port", "0",
            "--dashboard-agent-listen-port", str(free_port()),
            "--dashboard-agent-grpc-port", str(free_port()),
            "--runtime-env-agent-port", str(free_port()),
            "--metrics-export-port", str(free_port()),
        ]  # fmt: skip
        # A session of its own: every process this node starts (raylet, agents, workers)
        # is in it, which is how kill() finds them.
        proc = subprocess.Popen(
            cmd,
            env=env or self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        node = Node(name, temp_dir, proc.pid, "")
        self.nodes.append(node)  # before waiting: teardown must find it even if start fails
        out, _ = proc.communicate(timeout=START_TIMEOUT_S)
        node.output = out
        if proc.returncode != 0:
            raise RuntimeError(f"ray start ({name}) failed:\n{out[-3000:]}")
        return node

    def start_head(self) -> Node:
        port = free_port()
        head = self._start(
            "head",
            ["--head", "--port", str(port), "--include-dashboard=false",
             "--dashboard-port", str(free_port())],
        )  # fmt: skip
        # `ray start` writes the address it chose (node IP:port) into its own temp dir.
        self.address = (head.temp_dir / "ray_current_cluster").read_text().strip()
        return head

    def add_node(self, name: str, env: dict[str, str] | None = None) -> Node:
        """A node that joins the head; ``env`` replaces the cluster's environment for it."""
        return self._start(name, ["--address", self.address], env)

    def shutdown(self) -> None:
        """Kill every node this cluster started, then remove its temp dirs."""
        for node in reversed(self.nodes):
            node.kill()
        shutil.rmtree(self.root, ignore_errors=True)
