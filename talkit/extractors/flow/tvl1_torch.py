"""TV-L1 optical flow in torch: OpenCV's DualTVL1, batched over frame pairs, on CPU or CUDA.

The algorithm of Zach, Pock & Bischof (2007, "A duality based approach for realtime TV-L1
optical flow") with the improvements of Wedel et al. (2009) that OpenCV's
``cv2.optflow.DualTVL1OpticalFlow`` implements, step for step as OpenCV runs it::

    pyramid  I0, I1 as floats 0..255, each level the previous one resized by scale_step
             (bilinear, no pre-smoothing) while both sides stay >= 16 px, <= nscales levels
    coarsest level: u = 0
    per level, coarse to fine:
      I1x, I1y = centred differences of I1 (one-sided and halved at the borders)
      p = 0                               the dual variables, (x, y) per flow component
      warps times:
        I1w, I1wx, I1wy = I1, I1x, I1y at x + u   (bicubic, a = -0.75, zero outside)
        rho_c = I1w - I1wx u1 - I1wy u2 - I0;  grad = I1wx^2 + I1wy^2
        up to outer_iterations times, while not converged:
          u = median of u over 5x5 windows       (replicated borders)
          up to inner_iterations times, while not converged:
            v  = TH(u): u + lt I1w' when rho < -lt grad, u - lt I1w' when rho > lt grad,
                 else u - rho I1w' / grad               (lt = lambda theta)
            u' = v + theta div(p)                       (backward differences)
            converged when sum |u' - u|^2 <= epsilon^2 * pixels of the level
            p  = (p + tau/theta D u') / (1 + tau/theta |D u'|)   (forward differences D)
      u = bilinear resize of u to the next finer level, times 1 / scale_step

Batching: N pairs run as one batch dimension. Convergence is decided per pair, as OpenCV
decides it for its one pair: a pair that has converged is frozen (its u and p stop
changing, the median filter skips it) while the others iterate, so a pair's flow does not
depend on which other pairs share its batch. The loop ends when every pair has converged
or reached the iteration cap.

Speed: the iteration, the warp and the median run through ``torch.compile`` (fused C++
loops on CPU, Triton kernels on CUDA) when it works, else eagerly; on CPU both give the
same bits. The first compile on a machine takes about a minute; later processes load it
from the inductor cache.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from talkit.errors import InputError
from talkit.extractors.flow.median import median_filter, median_program

FLT_EPSILON = float(np.finfo(np.float32).eps)
MIN_LEVEL_SIDE = 16  # OpenCV stops adding pyramid levels below this side length
MEDIAN_SIZES = (1, 3, 5)  # medianBlur on float images takes 3 or 5; 1 switches it off
# Bytes of GPU memory one pair needs per pixel at full size, measured peak with room to
# spare (pyramid, 2 flow + 4 dual planes, warped image and gradients, temporaries).
_BYTES_PER_PIXEL = 400
_CPU_PIXELS_PER_BATCH = 8 * 224 * 224
_CUDA_CHECK_EVERY = 10  # iterations between "has every pair converged?" host syncs


@dataclass(frozen=True)
class TVL1Params:
    """DualTVL1's parameters, with OpenCV's names and defaults."""

    tau: float = 0.25
    lambda_: float = 0.15
    theta: float = 0.3
    nscales: int = 5
    warps: int = 5
    epsilon: float = 0.01
    inner_iterations: int = 30
    outer_iterations: int = 10
    scale_step: float = 0.8
    median_filtering: int = 5

    @classmethod
    def from_spec(cls, params: Mapping[str, Any]) -> TVL1Params:
        """From a FlowSpec's ``params`` (OpenCV's getters' names); refuses what OpenCV's
        defaults do not use and this port does not implement."""
        if float(params.get("gamma", 0.0)) != 0.0:
            raise InputError(
                f"tvl1_torch implements gamma = 0 only (OpenCV's default), got {params['gamma']}",
                hint="use --flow tvl1 (OpenCV) for the illumination-robust gamma term",
            )
        if bool(params.get("use_initial_flow", False)):
            raise InputError("tvl1_torch does not take an initial flow (use_initial_flow)")
        out = cls(
            tau=float(params["tau"]),
            lambda_=float(params["lambda"]),
            theta=float(params["theta"]),
            nscales=int(params["nscales"]),
            warps=int(params["warps"]),
            epsilon=float(params["epsilon"]),
            inner_iterations=int(params["inner_iterations"]),
            outer_iterations=int(params["outer_iterations"]),
            scale_step=float(params["scale_step"]),
            median_filtering=int(params["median_filtering"]),
        )
        counts = {
            "nscales": out.nscales,
            "warps": out.warps,
            "inner_iterations": out.inner_iterations,
            "outer_iterations": out.outer_iterations,
        }
        bad = [f"{k}={v}" for k, v in counts.items() if v < 1]
        if not 0.0 < out.scale_step < 1.0:
            bad.append(f"scale_step={out.scale_step} (must be in (0, 1))")
        if out.median_filtering not in MEDIAN_SIZES:
            bad.append(f"median_filtering={out.median_filtering} (1, 3 or 5)")
        if min(out.tau, out.lambda_, out.theta, out.epsilon) <= 0:
            bad.append("tau, lambda, theta and epsilon must be positive")
        if bad:
            raise InputError(f"bad tvl1_torch parameter(s): {', '.join(bad)}")
        return out


def pyramid_sizes(height: int, width: int, params: TVL1Params) -> list[tuple[int, int]]:
    """(H, W) per level, finest first, rounded as ``cv2.resize(fx=scale_step)`` rounds."""
    sizes = [(height, width)]
    for _ in range(1, params.nscales):
        h, w = sizes[-1]
        nh, nw = round(h * params.scale_step), round(w * params.scale_step)
        if nh < MIN_LEVEL_SIDE or nw < MIN_LEVEL_SIDE:
            break
        sizes.append((nh, nw))
    return sizes


@functools.lru_cache(maxsize=64)
def _linear_taps(src: int, dst: int, scale: float) -> tuple[np.ndarray, ...]:
    """``cv2.resize`` INTER_LINEAR taps along one axis: source x = (x' + 0.5) scale - 0.5,
    clamped to the image (float32 weights, as OpenCV computes them for float images)."""
    f = ((np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    s = np.floor(f).astype(np.int64)
    f = (f - s.astype(np.float32)).astype(np.float32)
    f[s < 0], s[s < 0] = 0.0, 0
    high = s >= src - 1
    f[high], s[high] = 0.0, src - 1
    return s, np.minimum(s + 1, src - 1), (np.float32(1) - f).astype(np.float32), f


def resize_linear(
    x: torch.Tensor, size: tuple[int, int], scale: tuple[float, float]
) -> torch.Tensor:
    """``cv2.resize(..., INTER_LINEAR)`` of every (H, W) plane of x: rows first, then
    columns. ``scale`` is source pixels per output pixel (OpenCV's 1 / fx, 1 / fy)."""
    h, w = x.shape[-2:]
    i0, i1, w0, w1 = (torch.from_numpy(a).to(x.device) for a in _linear_taps(w, size[1], scale[1]))
    x = x.index_select(-1, i0) * w0 + x.index_select(-1, i1) * w1
    i0, i1, w0, w1 = (torch.from_numpy(a).to(x.device) for a in _linear_taps(h, size[0], scale[0]))
    return x.index_select(-2, i0) * w0[:, None] + x.index_select(-2, i1) * w1[:, None]


def centred_gradient(img: torch.Tensor) -> torch.Tensor:
    """(N, H, W) -> (N, 2, H, W): halved centred differences, one-sided at the borders."""
    p = F.pad(img[:, None], (1, 1, 1, 1), mode="replicate")[:, 0]
    dx = 0.5 * (p[:, 1:-1, 2:] - p[:, 1:-1, :-2])
    dy = 0.5 * (p[:, 2:, 1:-1] - p[:, :-2, 1:-1])
    return torch.stack([dx, dy], 1)


def _warp(
    i1: torch.Tensor, u: torch.Tensor, i0: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """I1 and its gradient at x + u, as ``cv2.remap(INTER_CUBIC)`` with a zero border.

    ``i1`` is (N, 3, H, W): I1, I1x, I1y. ``grid_sample``'s bicubic is the same Keys kernel
    (a = -0.75) with the same zero taps outside the image. The sample positions x + u are
    float32 sums, as OpenCV's maps are; the grid is then made in float64, where it maps
    back to those positions exactly enough that a sample at a whole pixel is that pixel
    bit for bit, as in OpenCV (a float32 grid is off by ~1e-5 px, which identical frames
    turn into ~0.1 px of flow where the image is flat). Returns the warped gradient
    (N, 2, H, W), its squared norm ``grad`` and the constant part ``rho_c`` of the
    linearised data term.
    """
    h, w = i1.shape[-2:]
    mx = torch.arange(w, device=i1.device, dtype=torch.float32) + u[:, 0]
    my = torch.arange(h, device=i1.device, dtype=torch.float32)[:, None] + u[:, 1]
    grid = torch.stack(
        [
            mx.to(torch.float64) * (2.0 / (w - 1)) - 1.0,
            my.to(torch.float64) * (2.0 / (h - 1)) - 1.0,
        ],
        -1,
    )
    warped = F.grid_sample(
        i1.to(torch.float64), grid, mode="bicubic", padding_mode="zeros", align_corners=True
    ).to(torch.float32)
    g = warped[:, 1:]
    grad = g[:, 0] * g[:, 0] + g[:, 1] * g[:, 1]
    rho_c = warped[:, 0] - g[:, 0] * u[:, 0] - g[:, 1] * u[:, 1] - i0
    return g, grad, rho_c


def _shift_right(a: torch.Tensor) -> torch.Tensor:
    """a[..., x - 1], zero at x = 0."""
    return F.pad(a[..., :-1], (1, 0))


def _shift_down(a: torch.Tensor) -> torch.Tensor:
    """a[..., y - 1, :], zero at y = 0."""
    return F.pad(a[..., :-1, :], (0, 0, 1, 0))


def _iterate(
    u: torch.Tensor,
    p: torch.Tensor,
    g: torch.Tensor,
    grad: torch.Tensor,
    rho_c: torch.Tensor,
    active: torch.Tensor,
    consts: torch.Tensor,
    eps: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One primal-dual iteration for the pairs still ``active``; the others stay as they are.

    u (N, 2, H, W) flow; p (N, 2, 2, H, W) duals, p[:, k, 0] / p[:, k, 1] the x / y parts
    for flow component k; g (N, 2, H, W) warped gradient; consts = (lambda theta, theta,
    tau / theta) as float32; eps the float64 convergence threshold. Returns the new u, p
    and which pairs are still active.
    """
    lt, theta, taut = consts[0], consts[1], consts[2]
    rho = rho_c + (g[:, 0] * u[:, 0] + g[:, 1] * u[:, 1])
    ltg = lt * grad
    step = torch.where(
        rho < -ltg,
        lt,
        torch.where(rho > ltg, -lt, torch.where(grad > FLT_EPSILON, -rho / grad, 0.0)),
    )
    v = u + step[:, None] * g
    px, py = p[:, :, 0], p[:, :, 1]
    div = (px - _shift_right(px)) + (py - _shift_down(py))
    first_col = torch.arange(div.shape[-1], device=div.device) == 0
    div = torch.where(first_col, (px + py) - _shift_down(py), div)  # OpenCV's order there
    u_new = v + theta * div
    d = u_new - u
    err = (d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1]).to(torch.float64).sum((1, 2))
    ux = F.pad(u_new[..., 1:] - u_new[..., :-1], (0, 1))
    uy = F.pad(u_new[..., 1:, :] - u_new[..., :-1, :], (0, 0, 0, 1))
    norm = 1.0 + taut * torch.hypot(ux, uy)
    p_new = (p + taut * torch.stack([ux, uy], 2)) / norm[:, :, None]
    keep = active[:, None, None, None]
    return (
        torch.where(keep, u_new, u),
        torch.where(keep[..., None], p_new, p),
        active & (err > eps),
    )


_MEDIAN_PROGRAMS = {size: median_program(size * size) for size in MEDIAN_SIZES}


def _median(u: torch.Tensor, active: torch.Tensor, size: int) -> torch.Tensor:
    """u median-filtered where the pair is active (OpenCV filters only while iterating)."""
    filtered = median_filter(u, size, _MEDIAN_PROGRAMS[size])
    return torch.where(active[:, None, None, None], filtered, u)


def _median_opencv(u: torch.Tensor, active: torch.Tensor, size: int) -> torch.Tensor:
    """The same with ``cv2.medianBlur`` itself, plane by plane (CPU tensors only): 10x
    faster on CPU than the min/max network, and OpenCV's own filter."""
    out = u.clone()
    planes = out.numpy()
    for i in torch.nonzero(active).flatten().tolist():
        for k in range(planes.shape[1]):
            planes[i, k] = cv2.medianBlur(np.ascontiguousarray(planes[i, k]), size)
    return out


class _Kernels:
    """The hot functions, compiled with ``torch.compile`` or eager.

    The iteration compiles once per process for every pyramid level and batch size
    (dynamic shapes; a batch of one pair compiles once more). The median runs through
    ``cv2.medianBlur`` on CPU and through the min/max network (compiled too) on CUDA. If
    compiling fails (no C++ compiler, no Triton), the eager functions take over with a
    warning: slower, and on CPU the same results.
    """

    def __init__(self, compile: bool, device: torch.device) -> None:
        self.compile = compile
        self.device = device

    def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self.compile:
            try:
                return _compiled(fn)(*args)
            except Exception as exc:  # any compiler failure: fall back to eager
                warnings.warn(
                    f"torch.compile failed for TV-L1 ({type(exc).__name__}: {exc}); "
                    "running eagerly (slower, same results on CPU)",
                    RuntimeWarning,
                    stacklevel=3,
                )
                self.compile = False
        return fn(*args)

    def iterate(self, *args: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self._run(_iterate, *args)

    def median(self, u: torch.Tensor, active: torch.Tensor, size: int) -> torch.Tensor:
        if self.device.type == "cpu":
            return _median_opencv(u, active, size)
        return self._run(_median, u, active, size)


def _no_duck_shapes() -> contextlib.AbstractContextManager[Any]:
    """torch's switch for "duck shaping" (private, so tolerated when absent)."""
    try:
        from torch.fx.experimental import _config
    except ImportError:  # pragma: no cover - other torch versions
        return contextlib.nullcontext()
    if not hasattr(_config, "use_duck_shape"):  # pragma: no cover
        return contextlib.nullcontext()
    return _config.patch(use_duck_shape=False)


@functools.cache
def _compiled(fn: Callable[..., Any]) -> Callable[..., Any]:
    """One compiled wrapper per function and process (its cache serves every engine)."""
    return torch.compile(fn, dynamic=True)


class TVL1:
    """Batched TV-L1: ``TVL1(params, device)(firsts, seconds)`` -> flow (N, H, W, 2).

    Frames are (N, H, W) greyscale, uint8 or float in 0..255 (OpenCV scales float input
    by 255 first; this takes 0..255 floats as they are). The flow is in pixels, on
    ``device``: flow[..., 0] = dx, flow[..., 1] = dy, from the first frame to the second.
    """

    def __init__(
        self, params: TVL1Params | None = None, *, device: str = "cpu", compile: bool = True
    ) -> None:
        self.params = params or TVL1Params()
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise InputError(
                "flow device cuda, but torch sees no CUDA device here",
                hint="use --flow-device cpu, or run on a machine with a GPU and CUDA torch",
            )
        self.kernels = _Kernels(compile, self.device)

    def auto_batch(self, height: int, width: int) -> int:
        """Pairs per batch: on CUDA, what a quarter of the free memory holds (at most 512);
        on CPU about 8 pairs of 224 x 224 (more gives no speed, only memory)."""
        pixels = max(1, height * width)
        if self.device.type == "cuda":
            free, _total = torch.cuda.mem_get_info(self.device)
            return int(max(1, min(512, free // 4 // (_BYTES_PER_PIXEL * pixels))))
        return int(max(1, min(256, _CPU_PIXELS_PER_BATCH // pixels)))

    def __call__(
        self, first: torch.Tensor | np.ndarray, second: torch.Tensor | np.ndarray
    ) -> torch.Tensor:
        # No "duck shaping" while compiling: a batch of 2 pairs or square frames must not
        # make the compiled code assume that N == 2 or H == W.
        with torch.no_grad(), _no_duck_shapes():
            return self._flow(first, second)

    def _flow(
        self, first: torch.Tensor | np.ndarray, second: torch.Tensor | np.ndarray
    ) -> torch.Tensor:
        i0 = torch.as_tensor(first).to(self.device, torch.float32)
        i1 = torch.as_tensor(second).to(self.device, torch.float32)
        if i0.shape != i1.shape or i0.ndim != 3:
            raise InputError(
                f"TV-L1 needs two (N, H, W) stacks of equal shape; got {tuple(i0.shape)} and {tuple(i1.shape)}"
            )
        n, h, w = i0.shape
        if h < 3 or w < 3:
            raise InputError(f"TV-L1 needs frames of at least 3 x 3 pixels; got {h} x {w}")
        if n == 0:
            return torch.zeros(0, h, w, 2, device=self.device)
        par = self.params
        sizes = pyramid_sizes(h, w, par)
        firsts, seconds = [i0], [i1]
        down = (1.0 / par.scale_step, 1.0 / par.scale_step)
        for size in sizes[1:]:
            firsts.append(resize_linear(firsts[-1], size, down))
            seconds.append(resize_linear(seconds[-1], size, down))
        f32 = np.float32
        consts = torch.tensor(
            [f32(par.lambda_ * par.theta), f32(par.theta), f32(par.tau / par.theta)],
            dtype=torch.float32,
            device=self.device,
        )
        u = torch.zeros(n, 2, *sizes[-1], device=self.device)
        for level in range(len(sizes) - 1, -1, -1):
            lh, lw = sizes[level]
            if u.shape[-2:] != (lh, lw):
                scale = (1.0 / (lh / u.shape[-2]), 1.0 / (lw / u.shape[-1]))
                u = resize_linear(u, (lh, lw), scale) * float(f32(1.0 / par.scale_step))
            eps = torch.tensor(
                float(f32(par.epsilon**2 * lh * lw)), dtype=torch.float64, device=self.device
            )
            u = self._level(firsts[level], seconds[level], u, consts, eps)
        return u.permute(0, 2, 3, 1).contiguous()

    def _level(
        self,
        i0: torch.Tensor,
        i1: torch.Tensor,
        u: torch.Tensor,
        consts: torch.Tensor,
        eps: torch.Tensor,
    ) -> torch.Tensor:
        par = self.params
        n, h, w = i0.shape
        stack = torch.cat([i1[:, None], centred_gradient(i1)], 1).contiguous()
        p = torch.zeros(n, 2, 2, h, w, device=self.device)
        for _warp_index in range(par.warps):
            g, grad, rho_c = _warp(stack, u, i0)
            u, p = self._solve(u, p, g, grad, rho_c, consts, eps)
        return u

    def _solve(
        self,
        u: torch.Tensor,
        p: torch.Tensor,
        g: torch.Tensor,
        grad: torch.Tensor,
        rho_c: torch.Tensor,
        consts: torch.Tensor,
        eps: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Iterate one warp until every pair has converged or reached the cap.

        Once half of the working batch has converged, the converged pairs leave it (their
        u and p are final), so a few slow pairs do not drag the whole batch through their
        iterations. Leaving copies values exactly: no pair's result changes.
        """
        par, k = self.params, self.kernels
        check_every = _CUDA_CHECK_EVERY if self.device.type == "cuda" else 1
        n = u.shape[0]
        ids = torch.arange(n, device=self.device)  # working pair -> pair of the batch
        out_u, out_p = u, p
        active = torch.ones(n, dtype=torch.bool, device=self.device)
        steps = 0
        for _outer in range(par.outer_iterations):
            if not bool(active.any()):
                break
            if par.median_filtering > 1:
                u = k.median(u, active, par.median_filtering)
            for _inner in range(par.inner_iterations):
                u, p, active = k.iterate(u, p, g, grad, rho_c, active, consts, eps)
                steps += 1
                if steps % check_every:
                    continue
                live = int(active.sum())
                if live == 0:
                    break
                if live <= u.shape[0] // 2 and u.shape[0] > 2:
                    out_u, out_p = out_u.index_copy(0, ids, u), out_p.index_copy(0, ids, p)
                    keep = torch.nonzero(active).flatten()
                    if live == 1:  # keep a converged passenger: compiled code specialises
                        keep = torch.cat([keep, torch.nonzero(~active).flatten()[:1]])
                    ids, u, p, g, grad, rho_c, active = (
                        t.index_select(0, keep) for t in (ids, u, p, g, grad, rho_c, active)
                    )
            else:
                continue
            break
        if u.shape[0] == n:  # never compacted: ids is the identity
            return u, p
        return out_u.index_copy(0, ids, u), out_p.index_copy(0, ids, p)
