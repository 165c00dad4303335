"""FlowComputer: raw flow for many frame pairs, with the method a FlowSpec names.

OpenCV's methods run pair by pair in ``workers`` processes; the torch TV-L1 runs in this
process on the spec's device, ``batch`` pairs at a time (CPU: the process's torch
threads; CUDA: one GPU). Results never depend on ``workers`` or ``batch``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from talkit.errors import InputError
from talkit.extractors.flow.opencv import OpenCVPairs
from talkit.extractors.flow.spec import TORCH_METHODS, FlowSpec, flow_spec


class FlowComputer:
    """Computes raw flow for many frame pairs.

    OpenCV methods: in ``workers`` processes (1 = in-process; the pool starts on first
    use with the "spawn" method, so scripts that use workers > 1 need the usual
    ``if __name__ == "__main__"``). Torch methods (``tvl1_torch``, ``tvl1_torch_fast``):
    in this process on ``spec.device``, ``spec.batch`` pairs per batch (None: sized from
    the frame size and, on CUDA, the free memory); ``workers`` must be 1.

    Use as a context manager (or call ``close``) so worker processes are shut down.
    """

    def __init__(self, spec: FlowSpec | None = None, *, workers: int = 1) -> None:
        if workers < 1:
            raise InputError(f"flow workers must be >= 1, got {workers}")
        self.spec = spec if spec is not None else flow_spec()
        self.workers = workers
        self._opencv: OpenCVPairs | None = None
        self._torch: Any = None
        if self.spec.method in TORCH_METHODS:
            if workers != 1:
                raise InputError(
                    f"{self.spec.method} runs batched in one process; flow workers must be 1, "
                    f"got {workers}",
                    hint="size it with the flow batch (--flow-batch) and torch threads instead",
                )
            from talkit.extractors.flow.tvl1_torch import TVL1, TVL1Params

            self._torch = TVL1(  # checks the device now, not at the first video
                TVL1Params.from_spec(self.spec.params),
                device=self.spec.device or "cpu",
                compile=self.spec.compile,
            )
        else:
            self._opencv = OpenCVPairs(self.spec, workers)

    def __enter__(self) -> FlowComputer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._opencv is not None:
            self._opencv.close()

    def pairs(self, firsts: np.ndarray, seconds: np.ndarray) -> np.ndarray:
        """Raw flow from firsts[i] to seconds[i]: (P, H, W) uint8 x2 -> (P, H, W, 2) float32."""
        firsts, seconds = np.asarray(firsts), np.asarray(seconds)
        if firsts.shape != seconds.shape or firsts.ndim != 3 or firsts.dtype != np.uint8:
            raise InputError(
                f"flow pairs need two uint8 greyscale stacks (P, H, W) of equal shape; "
                f"got {firsts.shape} {firsts.dtype} and {seconds.shape} {seconds.dtype}"
            )
        n, h, w = firsts.shape
        if n == 0:
            return np.zeros((0, h, w, 2), np.float32)
        if self._opencv is None:
            return self._torch_pairs(firsts, seconds)
        jobs = [
            (np.ascontiguousarray(a), np.ascontiguousarray(b))
            for a, b in zip(firsts, seconds, strict=True)
        ]
        return np.stack(self._opencv(jobs)).astype(np.float32, copy=False)

    def _torch_pairs(self, firsts: np.ndarray, seconds: np.ndarray) -> np.ndarray:
        n, h, w = firsts.shape
        batch = self.spec.batch or self._torch.auto_batch(h, w)
        out = np.empty((n, h, w, 2), np.float32)
        for start in range(0, n, batch):
            stop = min(n, start + batch)
            flow = self._torch(firsts[start:stop], seconds[start:stop])
            out[start:stop] = flow.cpu().numpy()
        return out

    def sequence(self, grey: np.ndarray) -> np.ndarray:
        """Flow between consecutive frames: (N, H, W) -> (N - 1, H, W, 2)."""
        grey = np.asarray(grey)
        return self.pairs(grey[:-1], grey[1:])
