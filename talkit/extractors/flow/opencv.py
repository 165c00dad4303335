"""OpenCV's optical flows (DualTVL1, Farneback, DIS), one pair at a time, in processes.

TV-L1 costs ~1.8 s per 224x224 pair on this class of CPU, so pairs are spread over worker
processes (spawn-safe; each worker pins OpenCV to one thread, so results do not depend on
the number of workers). This module imports neither torch nor the rest of talkit, so
spawned workers start fast.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import cv2
import numpy as np

from talkit.extractors.flow.spec import _DIS_PRESETS, FlowSpec


class OpenCVFlow:
    """One configured OpenCV flow algorithm; computes raw flow (H, W, 2) in pixels."""

    def __init__(self, spec: FlowSpec) -> None:
        self.method = spec.method
        p = spec.params
        if spec.method == "tvl1":
            self.algo = cv2.optflow.DualTVL1OpticalFlow_create(
                tau=float(p["tau"]),
                lambda_=float(p["lambda"]),
                theta=float(p["theta"]),
                nscales=int(p["nscales"]),
                warps=int(p["warps"]),
                epsilon=float(p["epsilon"]),
                innnerIterations=int(p["inner_iterations"]),
                outerIterations=int(p["outer_iterations"]),
                scaleStep=float(p["scale_step"]),
                gamma=float(p["gamma"]),
                medianFiltering=int(p["median_filtering"]),
                useInitialFlow=bool(p["use_initial_flow"]),
            )
        elif spec.method == "dis":
            self.algo = cv2.DISOpticalFlow_create(_DIS_PRESETS[str(p["preset"])])
        elif spec.method == "farneback":
            self.params = p
        else:
            raise ValueError(f"{spec.method} is not an OpenCV flow")

    def __call__(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        if self.method == "farneback":
            p = self.params
            return cv2.calcOpticalFlowFarneback(
                prev,
                nxt,
                None,
                float(p["pyr_scale"]),
                int(p["levels"]),
                int(p["winsize"]),
                int(p["iterations"]),
                int(p["poly_n"]),
                float(p["poly_sigma"]),
                int(p["flags"]),
            )
        return self.algo.calc(prev, nxt, None)


class OpenCVPairs:
    """Raw flow of many pairs: in this process (workers=1) or in a spawned pool."""

    def __init__(self, spec: FlowSpec, workers: int) -> None:
        self.spec = spec
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._engine: OpenCVFlow | None = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __call__(self, jobs: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
        if self.workers == 1:
            if self._engine is None:
                self._engine = OpenCVFlow(self.spec)
            previous = cv2.getNumThreads()
            cv2.setNumThreads(1)
            try:
                return [self._engine(a, b) for a, b in jobs]
            finally:
                cv2.setNumThreads(previous)
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(self.spec.model_dump_json(exclude={"approximate", "label"}),),
            )
        return list(self._pool.map(_worker_pair, jobs))


_WORKER_ENGINE: OpenCVFlow | None = None


def _init_worker(spec_json: str) -> None:
    global _WORKER_ENGINE
    cv2.setNumThreads(1)
    _WORKER_ENGINE = OpenCVFlow(FlowSpec.model_validate_json(spec_json))


def _worker_pair(pair: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    assert _WORKER_ENGINE is not None, "flow worker used before its initializer ran"
    return _WORKER_ENGINE(pair[0], pair[1])
