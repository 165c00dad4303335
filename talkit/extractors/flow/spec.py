"""Which optical flow made a flow stream: the FlowSpec the store records, and its presets.

Methods:

- ``tvl1``: OpenCV's DualTVL1 with its default parameters (the I3D convention), CPU.
- ``tvl1_torch``: talkit's torch port of the same algorithm with the same defaults,
  batched, on CPU or CUDA. Close to OpenCV's flow but not bit-identical, so its spec
  names it (and its device): features from the two are never mixed unnoticed.
- ``tvl1_torch_fast``: the torch port with 2 warps and a looser convergence threshold
  (``FAST_PRESET``): several times faster, labelled approximate.
- ``farneback``, ``dis``: OpenCV's fast stand-ins, labelled approximate.

The spec also carries two execution settings that are *not* recorded, because results do
not depend on them: ``batch`` (pairs per torch batch) and ``compile`` (torch.compile).
"""

from __future__ import annotations

import functools
from typing import Any, Literal

import cv2
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    computed_field,
    model_serializer,
)

from talkit.errors import InputError

FlowMethod = Literal["tvl1", "tvl1_torch", "tvl1_torch_fast", "farneback", "dis"]
FLOW_METHODS: tuple[str, ...] = ("tvl1", "tvl1_torch", "tvl1_torch_fast", "farneback", "dis")
TORCH_METHODS: tuple[str, ...] = ("tvl1_torch", "tvl1_torch_fast")
FLOW_DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
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

# tvl1_torch_fast: OpenCV's defaults except these; its speed and accuracy cost are measured
# by benchmarks/flow.py and reported in docs/flow.md.
FAST_PRESET: dict[str, float | int] = {"epsilon": 0.02, "warps": 2}


def _tvl1_defaults() -> dict[str, float | int | bool]:
    """OpenCV's DualTVL1 defaults, read from its getters (a fresh dict each call)."""
    return dict(_opencv_tvl1_defaults())


@functools.cache
def _opencv_tvl1_defaults() -> dict[str, float | int | bool]:
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


class FlowSpec(BaseModel):
    """Which optical flow made a flow stream: recorded verbatim in the store's spec.

    ``device`` is recorded for the torch methods only (OpenCV's run on the CPU, and their
    record stays as it always was). ``batch`` and ``compile`` are how the torch methods
    run, not what they compute: they are left out of the record and of comparisons
    between stored specs.
    """

    model_config = ConfigDict(frozen=True)

    method: FlowMethod = "tvl1"
    bound: float = DEFAULT_BOUND
    quantize_8bit: bool = False
    greyscale: bool = True
    region: Literal["frame", "crop"] = "frame"
    params: dict[str, float | int | bool | str] = {}
    device: Literal["cpu", "cuda"] | None = None
    batch: int | None = Field(default=None, gt=0, exclude=True)
    compile: bool = Field(default=True, exclude=True)

    @model_serializer(mode="wrap")
    def _record(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        if data.get("device", "") is None:
            del data["device"]
        return data

    @computed_field  # type: ignore[prop-decorator]
    @property
    def approximate(self) -> bool:
        """True unless the flow is TV-L1 with OpenCV's defaults: the fast stand-ins and the
        fast preset do not give the features of public TV-L1 ones."""
        if self.method == "tvl1":
            return False
        if self.method == "tvl1_torch":
            return self.params != _tvl1_defaults()
        return True

    @computed_field  # type: ignore[prop-decorator]
    @property
    def label(self) -> str:
        """A human-readable line for listings and store metadata."""
        if self.method == "tvl1":
            return "TV-L1 (OpenCV DualTVL1 defaults), the I3D convention"
        if self.method in TORCH_METHODS:
            where = f"talkit's torch DualTVL1 on {self.device}"
            if not self.approximate:
                return f"TV-L1 ({where}, OpenCV's defaults): close to OpenCV's, not bit-identical"
            changed = {k: v for k, v in self.params.items() if _tvl1_defaults().get(k) != v}
            what = ", ".join(f"{k}={v}" for k, v in sorted(changed.items()))
            return (
                f"TV-L1 FAST ({where}; {what}): APPROXIMATION of TV-L1; features differ "
                "from public I3D ones"
            )
        name = {"farneback": "Farneback", "dis": "DIS"}[self.method]
        return f"{name}: fast APPROXIMATION of TV-L1; features differ from public I3D ones"


def flow_spec(
    method: str = "tvl1",
    *,
    bound: float = DEFAULT_BOUND,
    quantize_8bit: bool = False,
    region: str = "frame",
    device: str | None = None,
    batch: int | None = None,
    compile: bool = True,
    **overrides: float | int | bool | str,
) -> FlowSpec:
    """A FlowSpec with every parameter spelled out (OpenCV defaults unless overridden).

    ``region="frame"`` computes flow on the whole resized frame and crops the flow (the
    I3D convention); ``"crop"`` computes it on the centre crop only, ~1.7x cheaper for
    256 -> 224, with slightly different values near the crop border.

    ``device`` ("cpu" or "cuda"; None or "auto" mean the CPU here, so resolve "auto" to
    the model's device before calling), ``batch`` (pairs per batch, None: sized from the
    frame size and free memory) and ``compile`` apply to the torch methods; OpenCV's run
    on the CPU only.
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
    if device not in (None, *FLOW_DEVICES):
        raise InputError(f"unknown flow device {device!r}", hint="use auto, cpu or cuda")
    if batch is not None and batch < 1:
        raise InputError(f"flow batch must be >= 1 pairs, got {batch}")
    torch_method = method in TORCH_METHODS
    if not torch_method and device == "cuda":
        raise InputError(
            f"{method} flow is OpenCV's and runs on the CPU only, not on cuda",
            hint="use --flow tvl1_torch for TV-L1 on the GPU, or --flow-device cpu",
        )
    if method in ("tvl1", *TORCH_METHODS):
        params: dict[str, Any] = _tvl1_defaults()
        if method == "tvl1_torch_fast":
            params.update(FAST_PRESET)
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
    if torch_method:
        from talkit.extractors.flow.tvl1_torch import TVL1Params

        TVL1Params.from_spec(params)  # refuses what the port does not implement, now
    return FlowSpec(
        method=method,  # type: ignore[arg-type]
        bound=bound,
        quantize_8bit=quantize_8bit,
        region=region,  # type: ignore[arg-type]
        params=params,
        device=("cuda" if device == "cuda" else "cpu") if torch_method else None,
        batch=batch if torch_method else None,
        compile=compile,
    )
