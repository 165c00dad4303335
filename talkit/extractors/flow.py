"""Optical flow for the I3D flow stream: TV-L1 (the convention) and two fast stand-ins.

The I3D convention (Carreira & Zisserman; public WS-TAL features): greyscale frames,
OpenCV Dual TV-L1 with its default parameters, flow clipped to [-20, 20] and rescaled to
[-1, 1], two channels (dx, dy). Many public features stored flow as 8-bit JPEG first:
``p = round(255 * (f + 20) / 40)`` then ``(p / 255) * 2 - 1``; ``quantize_8bit`` reproduces
that bit for bit (round half to even, the rule of numpy and Python).

TV-L1 costs ~1.8 s per 224x224 pair on this class of CPU, so pairs are spread over worker
processes (spawn-safe; each worker pins OpenCV to one thread). Farneback and DIS are
~100x faster but give different features; the spec marks them ``approximate`` so a store
never passes them off as the standard. Nothing is cached on disk.

This module imports neither torch nor the rest of talkit, so spawned workers start fast.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, computed_field

from talkit.errors import InputError

FlowMethod = Literal["tvl1", "farneback", "dis"]
FLOW_METHODS: tuple[str, ...] = ("tvl1", "farneback", "dis")
DEFAULT_BOUND = 20.0

# Farneback with the parameters the dense_flow tool and most scripts use.
_FARNEBACK_DEFAULTS: dict[str, float | int] = {
    "pyr_scale": 0.5,
    "levels": 3,
    "winsize": 15,
    "iterations": 3,
    "poly_n": 5,
    "poly_sigma": 1.2,
    "flags": 0,
}
_DIS_PRESETS = {"ultrafast": 0, "fast": 1, "medium": 2}


class FlowSpec(BaseModel):
    """Which optical flow made a flow stream: recorded verbatim in the store's spec."""

    model_config = ConfigDict(frozen=True)

    method: FlowMethod = "tvl1"
    bound: float = DEFAULT_BOUND
    quantize_8bit: bool = False
    greyscale: bool = True
    region: Literal["frame", "crop"] = "frame"
    params: dict[str, float | int | bool | str] = {}

    @computed_field  # type: ignore[prop-decorator]
    @property
    def approximate(self) -> bool:
        """True for the fast stand-ins: their features do not match public TV-L1 ones."""
        return self.method != "tvl1"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def label(self) -> str:
        """A human-readable line for listings and store metadata."""
        if self.method == "tvl1":
            return "TV-L1 (OpenCV DualTVL1 defaults), the I3D convention"
        name = {"farneback": "Farneback", "dis": "DIS"}[self.method]
        return f"{name}: fast APPROXIMATION of TV-L1; features differ from public I3D ones"


def _tvl1_defaults() -> dict[str, float | int | bool]:
    algo = cv2.optflow.DualTVL1OpticalFlow_create()
    return {
        "tau": algo.getTau(),
        "lambda": algo.getLambda(),
        "theta": algo.getTheta(),
        "nscales": algo.getScalesNumber(),
        "warps": algo.getWarpingsNumber(),
        "epsilon": algo.getEpsilon(),
        "inner_iterations": algo.getInnerIterations(),
        "outer_iterations": algo.getOuterIterations(),
        "scale_step": algo.getScaleStep(),
        "gamma": algo.getGamma(),
        "median_filtering": algo.getMedianFiltering(),
        "use_initial_flow": bool(algo.getUseInitialFlow()),
    }


def flow_spec(
    method: str = "tvl1",
    *,
    bound: float = DEFAULT_BOUND,
    quantize_8bit: bool = False,
    region: str = "frame",
    **overrides: float | int | bool | str,
) -> FlowSpec:
    """A FlowSpec with every parameter spelled out (OpenCV defaults unless overridden).

    ``region="frame"`` computes flow on the whole resized frame and crops the flow (the
    I3D convention); ``"crop"`` computes it on the centre crop only, ~1.7x cheaper for
    256 -> 224, with slightly different values near the crop border.
    """
    if method not in FLOW_METHODS:
        raise InputError(
            f"unknown flow method {method!r}",
            hint=f"choose one of {', '.join(FLOW_METHODS)} (tvl1 is the I3D convention)",
        )
    if bound <= 0:
        raise InputError(f"flow bound must be positive, got {bound}")
    if region not in ("frame", "crop"):
        raise InputError(f"flow region must be 'frame' or 'crop', got {region!r}")
    if method == "tvl1":
        params: dict[str, Any] = _tvl1_defaults()
    elif method == "farneback":
        params = dict(_FARNEBACK_DEFAULTS)
    else:
        params = {"preset": "medium"}
    unknown = sorted(set(overrides) - set(params))
    if unknown:
        raise InputError(
            f"unknown {method} flow parameter(s): {', '.join(unknown)}",
            hint=f"known: {', '.join(sorted(params))}",
        )
    params.update(overrides)
    if method == "dis" and params["preset"] not in _DIS_PRESETS:
        raise InputError(f"unknown DIS preset {params['preset']!r}; use {sorted(_DIS_PRESETS)}")
    return FlowSpec(
        method=method,  # type: ignore[arg-type]
        bound=bound,
        quantize_8bit=quantize_8bit,
        region=region,  # type: ignore[arg-type]
        params=params,
    )


class _Engine:
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
        else:
            self.params = p

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


def to_grey(frames: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB -> (N, H, W) uint8 greyscale (OpenCV's BT.601 weights)."""
    frames = np.asarray(frames)
    if frames.ndim == 3:
        return np.ascontiguousarray(frames, dtype=np.uint8)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise InputError(f"expected frames (N, H, W, 3) or (N, H, W); got {frames.shape}")
    return np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames])


def normalise_flow(
    flow: np.ndarray, *, bound: float = DEFAULT_BOUND, quantize_8bit: bool = False
) -> np.ndarray:
    """Raw flow in pixels -> network input in [-1, 1] (float32).

    Clip to [-bound, bound] and divide by bound; or, with ``quantize_8bit``, go through
    the 8-bit JPEG encoding of public features: ``p = round(255 (f + b) / 2b)``, then
    ``(p / 255) * 2 - 1``.
    """
    if quantize_8bit:
        return dequantize_flow(quantize_flow(flow, bound=bound))
    clipped = np.clip(np.asarray(flow, dtype=np.float32), -bound, bound)
    return (clipped / np.float32(bound)).astype(np.float32)


def quantize_flow(flow: np.ndarray, *, bound: float = DEFAULT_BOUND) -> np.ndarray:
    """Flow in pixels -> uint8 ``round(255 * (f + bound) / (2 * bound))`` after clipping."""
    f = np.clip(np.asarray(flow, dtype=np.float64), -bound, bound)
    return np.rint(255.0 * (f + bound) / (2.0 * bound)).astype(np.uint8)


_DEQUANT = ((np.arange(256, dtype=np.float64) / 255.0) * 2.0 - 1.0).astype(np.float32)


def dequantize_flow(p: np.ndarray) -> np.ndarray:
    """uint8 codes -> float32 ``(p / 255) * 2 - 1`` (computed in float64, then rounded once)."""
    return _DEQUANT[np.asarray(p, dtype=np.uint8)]


# ---- worker processes -------------------------------------------------------------------

_WORKER_ENGINE: _Engine | None = None


def _init_worker(spec_json: str) -> None:
    global _WORKER_ENGINE
    cv2.setNumThreads(1)
    _WORKER_ENGINE = _Engine(FlowSpec.model_validate_json(spec_json))


def _worker_pair(pair: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    assert _WORKER_ENGINE is not None, "flow worker used before its initializer ran"
    return _WORKER_ENGINE(pair[0], pair[1])


class FlowComputer:
    """Computes raw flow for many frame pairs, in ``workers`` processes (1 = in-process).

    Use as a context manager (or call ``close``) so worker processes are shut down. The
    pool starts on first use with the "spawn" method, which is safe with torch and
    threads; scripts that use workers > 1 need the usual ``if __name__ == "__main__"``.
    Results do not depend on the number of workers: every pair runs single-threaded.
    """

    def __init__(self, spec: FlowSpec | None = None, *, workers: int = 1) -> None:
        if workers < 1:
            raise InputError(f"flow workers must be >= 1, got {workers}")
        self.spec = spec if spec is not None else flow_spec()
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._engine: _Engine | None = None

    def __enter__(self) -> FlowComputer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

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
        jobs = [
            (np.ascontiguousarray(a), np.ascontiguousarray(b))
            for a, b in zip(firsts, seconds, strict=True)
        ]
        if self.workers == 1:
            if self._engine is None:
                self._engine = _Engine(self.spec)
            previous = cv2.getNumThreads()
            cv2.setNumThreads(1)
            try:
                out = [self._engine(a, b) for a, b in jobs]
            finally:
                cv2.setNumThreads(previous)
        else:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=self.workers,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_init_worker,
                    initargs=(self.spec.model_dump_json(exclude={"approximate", "label"}),),
                )
            out = list(self._pool.map(_worker_pair, jobs))
        return np.stack(out).astype(np.float32, copy=False)

    def sequence(self, grey: np.ndarray) -> np.ndarray:
        """Flow between consecutive frames: (N, H, W) -> (N - 1, H, W, 2)."""
        grey = np.asarray(grey)
        return self.pairs(grey[:-1], grey[1:])
