"""``talkit extract``'s start-up: Ray starts while the driver imports torch.

An embedded Ray takes about 2 s to start, most of it waiting for its own processes to
come up; the driver's imports (torch, the backbones) take about 1.5 s of CPU. One after
the other they delayed every run by both; now Ray starts on the main thread while a
background thread imports. (Not the other way round: started from another thread, Ray's
shutdown took 5 s instead of 1.3 s, measured with Ray 2.60.)

The cost falls on a run that fails before it needs Ray (a bad config, nothing left to
extract): it waits for Ray to start and stop, about 1 s more than before.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from talkit.pipelines.runtime import RayRuntime, start_ray

# What the driver imports before its first Ray call. The last one is the
# sympy that PyTorch's meta kernels import on their first shape check (--batch-size auto's
# shape-only forward, talkit.pipelines.worker.snippet_footprint).
DRIVER_MODULES = (
    "torch",
    "talkit.extractors.registry",
    "talkit.pipelines.run",
    "talkit.pipelines.progress",
    "torch.fx.experimental.symbolic_shapes",
)


def import_in_background(modules: tuple[str, ...] = DRIVER_MODULES) -> threading.Thread:
    """Import ``modules`` and the built-in backbones in a daemon thread; join it before use.

    An import that fails here is ignored: the main thread's own import of it raises the
    error where the user sees it.
    """

    def run() -> None:
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception:
                return
        from talkit.extractors import registry

        try:
            registry.available()  # imports every built-in backbone's module
        except Exception:
            return

    thread = threading.Thread(target=run, name="talkit-imports", daemon=True)
    thread.start()
    return thread


@contextmanager
def ray_started_early(address: str | None) -> Iterator[RayRuntime]:
    """Start (or join) Ray now, importing the driver's modules meanwhile; stop it on exit.

    Pass the runtime to :class:`talkit.pipelines.run.ExtractJob` so the run uses it and
    reports its start-up time. With Ray already initialised in this process (a notebook,
    the tests) Ray is used as it is and left running.
    """
    import ray  # noqa: F401  (before the thread starts: importing both at once is slower)

    imports = import_in_background()
    runtime = start_ray(address)
    try:
        imports.join()
        yield runtime
    finally:
        runtime.shutdown()
