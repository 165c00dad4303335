"""Synthetic snippet features on real annotation timelines, for training without decoding.

    annotations ──► per-video timeline (25 fps, stride 16) ──► latent per snippet
                                                                  │  appearance | motion
    class prototypes, background modes (seeded) ─────────────────┘
                                 ──► per-stream fixed random map ──► relu ──► (T, D_stream)

Latent model, per snippet (all vectors seeded, fixed for a seed):

- background: a mixture of ``BACKGROUND_MODES`` appearance modes whose weights drift
  slowly within a video, plus a per-video offset (every video looks a bit different);
- action of class c: the class's scene ``s_c`` + ``a(t)·(m_c + g)`` where ``m_c`` is
  the class's motion, ``g`` a motion-energy direction all actions share and ``a(t)`` an
  intensity that varies within the instance; ``background_fraction`` of the background
  stays mixed in;
- context of class c (before/after some instances): ``context_strength·s_c`` over the
  background: it looks like the class's scene but has no motion (DGAM's confusion);
- noise: white per snippet plus a slow AR(1) part, times ``noise``.

The RGB stream sees mostly appearance, the flow stream mostly motion, each with its own
noise level, so the two streams have different signal-to-noise ratios. Each stream is a
fixed random two-layer map (tanh, then a linear layer) followed by what I3D's feature is:
the average over many positions of a ReLU. Each unit's pre-activation ``u`` varies over
the positions with spread ``SPATIAL_SPREAD`` and the average is taken in closed form,
``E[relu(u + s·e)] = s·φ(u/s) + u·Φ(u/s)``: non-negative, smooth in ``u`` (a class signal
below zero is damped, not erased) and almost never exactly 0. Features are smooth over
time like overlapping real clips.

Statistics at the defaults (every 6th THUMOS14 video, per element; the first four are
checked by tests/test_synth_features.py) against the raw public THUMOS14 I3D features
(the 2048-d [rgb, flow] .npy files BaSNet and W-TALC train on), which are what the
authors' code learns from without any standardisation:

====================== ============ ===========================================
statistic              synthetic    public I3D features (approximate)
====================== ============ ===========================================
mean                   0.42 / 0.37  a few tenths (avg-pooled post-ReLU units)
std / mean             1.3          about 1: right-skewed, a long upper tail
exact zeros            0 %          under a few % (an average of 98 ReLUs)
p99 / mean             ~6           several times the mean
class / video offset   1.3          of order 1 (scene changes between videos are
                                    as large as class differences)
====================== ============ ===========================================

The right-hand column is an order-of-magnitude description, not a measurement: no real
features ship with talkit. "class / video offset" is the RMS spread of the per-class mean
action feature over the RMS per-video offset of the background mean feature.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.signal import lfilter
from scipy.special import ndtr

from talkit.datasets.model import Dataset, Video
from talkit.errors import InputError

APPEARANCE_DIM = 48
MOTION_DIM = 48
HIDDEN_DIM = 128
BACKGROUND_MODES = 8
# Norms of the latent parts (tuned so that, at the defaults on THUMOS14 timelines, a
# single-snippet linear probe finds actions with AUC ~0.95 but names their class only
# ~50% of the time, while averaging over 5 snippets names it ~65%).
SCENE_NORM = 2.0
MOTION_NORM = 2.0
ENERGY_NORM = 4.0
BACKGROUND_NORM = 1.5
CAMERA_MOTION_NORM = 0.5
VIDEO_OFFSET_NORM = 0.6
INSTANCE_OFFSET = 0.12  # per latent dim: one instance differs a little from the next
# Noise per latent dim at noise=1: white (per snippet) and a slow AR(1) part.
WHITE_NOISE, SLOW_NOISE = 1.2, 0.2
TIME_SMOOTHING = 0.7  # Gaussian sigma in snippets: real clips overlap in receptive field
RELU_BIAS = 0.0  # mean bias of the output layer before the pooled ReLU
# The output pre-activation is OUTPUT_GAIN · (h W2 + b2) + OUTPUT_SHIFT, then the average
# of a ReLU over positions where it varies with SPATIAL_SPREAD: per-element mean ~0.4,
# std ~0.5, no exact zeros (see the table above).
OUTPUT_GAIN = 2.0
OUTPUT_SHIFT = -0.5
SPATIAL_SPREAD = 1.0
GENERATOR = "talkit.synthetic.features/v2"


class FeatureParams(BaseModel):
    """Every knob of the feature generator; recorded in the store spec with the seed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    streams: dict[str, int] = Field(default_factory=lambda: {"rgb": 1024, "flow": 1024})
    fps: float = Field(25.0, gt=0)
    clip_len: int = Field(16, gt=0)
    stride: int = Field(16, gt=0)
    noise: float = Field(1.0, ge=0, description="Scale of per-snippet noise (1 = default).")
    context_strength: float = Field(0.6, ge=0, description="How much context looks like its class.")
    background_fraction: float = Field(
        0.3, ge=0, lt=1, description="Share of background mixed into every action snippet."
    )
    context_prob: float = Field(0.6, ge=0, le=1, description="Chance of context on each side.")
    context_max_s: float = Field(4.0, ge=0)
    duration_margin_median_s: float = Field(13.0, gt=0)
    seed: int = 0

    def spec_params(self) -> dict[str, Any]:
        return {"synthetic": True, "generator": GENERATOR, **self.model_dump()}


def _rng(seed: int, *tags: str | int) -> np.random.Generator:
    words = [seed] + [zlib.crc32(t.encode()) if isinstance(t, str) else t for t in tags]
    return np.random.default_rng(np.random.SeedSequence(words))


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    v = rng.standard_normal((n, d))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


class _World:
    """The seeded constants: prototypes, background modes and the per-stream maps."""

    def __init__(self, classes: list[str], p: FeatureParams) -> None:
        rng = _rng(p.seed, "world")
        n = len(classes)
        self.scene = SCENE_NORM * _unit(rng, n, APPEARANCE_DIM)
        self.motion = MOTION_NORM * _unit(rng, n, MOTION_DIM)
        self.energy = ENERGY_NORM * _unit(rng, 1, MOTION_DIM)[0]
        self.bg_modes = BACKGROUND_NORM * _unit(rng, BACKGROUND_MODES, APPEARANCE_DIM)
        self.bg_motion = CAMERA_MOTION_NORM * _unit(rng, BACKGROUND_MODES, MOTION_DIM)
        # Which part of the latent each stream sees, and how noisy it is.
        mix = {"rgb": (1.0, 0.35, 1.0), "flow": (0.3, 1.0, 0.8)}
        self.maps: dict[str, tuple[np.ndarray, ...]] = {}
        for k, (name, dim) in enumerate(p.streams.items()):
            a_w, m_w, noise_w = mix.get(name, mix["rgb"] if k % 2 == 0 else mix["flow"])
            srng = _rng(p.seed, "stream", name)
            d_in = APPEARANCE_DIM + MOTION_DIM
            w1 = srng.standard_normal((d_in, HIDDEN_DIM)) / np.sqrt(d_in)
            w1[:APPEARANCE_DIM] *= a_w
            w1[APPEARANCE_DIM : APPEARANCE_DIM + MOTION_DIM] *= m_w
            w1 *= 1.5 / np.sqrt(a_w**2 + m_w**2)
            b1 = srng.normal(0, 0.2, HIDDEN_DIM)
            w2 = srng.standard_normal((HIDDEN_DIM, dim)) / np.sqrt(HIDDEN_DIM)
            b2 = srng.normal(RELU_BIAS, 0.2, dim)
            self.maps[name] = (
                w1.astype(np.float32),
                b1.astype(np.float32),
                w2.astype(np.float32),
                b2.astype(np.float32),
                np.float32(noise_w),
            )


def _smooth(x: np.ndarray, sigma: float = 0.8) -> np.ndarray:
    """Gaussian smoothing over time (axis 0): neighbouring snippets share frames."""
    if len(x) < 2:
        return x
    r = int(np.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    pad = np.pad(x, ((r, r), (0, 0)), mode="edge")
    out = np.zeros_like(x)
    for i, w in enumerate(k):
        out += w * pad[i : i + len(x)]
    return out


def _ar1(rng: np.random.Generator, t: int, d: int, rho: float) -> np.ndarray:
    """Stationary AR(1) noise (unit variance) of shape (t, d): slow drifts, no jumps."""
    e = rng.standard_normal((t, d))
    e[1:] *= np.sqrt(1 - rho**2)
    return lfilter([1.0], [1.0, -rho], e, axis=0)


def video_duration(video: Video, rng: np.random.Generator, margin_median_s: float) -> float:
    """The annotated duration, else the last segment end plus a drawn tail of background.

    THUMOS14's gt.json has no durations; in the real videos the time after the last
    instance has a median of about 13 s and a long tail, so draw it log-normally.
    """
    if video.duration_s is not None and video.duration_s > 0:
        return float(video.duration_s)
    last = max((s.end_s for s in video.annotations), default=0.0)
    margin = float(np.clip(np.exp(rng.normal(np.log(margin_median_s), 1.0)), 1.0, 180.0))
    return round(last + margin, 2)


def snippet_timestamps(duration_s: float, p: FeatureParams) -> np.ndarray:
    """(T, 2) start/end seconds; T = floor((N - clip) / stride) + 1 for N frames (>= 1)."""
    n_frames = int(np.floor(duration_s * p.fps + 1e-6))
    t = max(1, (n_frames - p.clip_len) // p.stride + 1)
    start = np.arange(t, dtype=np.float64) * p.stride / p.fps
    return np.stack([start, start + p.clip_len / p.fps], axis=1)


def _coverage(ts: np.ndarray, start: float, end: float) -> np.ndarray:
    """Share of each snippet [t0, t1) covered by [start, end)."""
    ov = np.minimum(ts[:, 1], end) - np.maximum(ts[:, 0], start)
    return np.clip(ov, 0, None) / (ts[:, 1] - ts[:, 0])


def _video_latent(
    video: Video, ts: np.ndarray, world: _World, cls_index: dict[str, int], p: FeatureParams
) -> tuple[np.ndarray, np.ndarray]:
    """Appearance and motion latents (T, A) and (T, M) of one video."""
    rng = _rng(p.seed, "video", video.id)
    t = len(ts)
    # Background: slowly drifting mixture over a few modes, plus a per-video offset.
    active = rng.choice(BACKGROUND_MODES, size=3, replace=False)
    logits = 1.5 * _ar1(rng, t, 3, 0.97)
    w = np.exp(logits)
    w /= w.sum(axis=1, keepdims=True)
    bg_app = w @ world.bg_modes[active] + VIDEO_OFFSET_NORM * _unit(rng, 1, APPEARANCE_DIM)
    bg_mot = w @ world.bg_motion[active]
    act_app = np.zeros_like(bg_app)
    act_mot = np.zeros_like(bg_mot)
    act_cov = np.zeros(t)
    ctx_app = np.zeros_like(bg_app)
    beta = p.background_fraction
    for seg in video.annotations:
        c = cls_index[seg.label]
        cov = _coverage(ts, seg.start_s, seg.end_s)
        idx = np.nonzero(cov)[0]
        if len(idx):
            # Intensity varies within the instance; an instance has its own small offset.
            inten = np.clip(0.75 + 0.3 * _ar1(rng, len(idx), 1, 0.8)[:, 0], 0.2, 1.4)
            own = INSTANCE_OFFSET * rng.standard_normal(MOTION_DIM)
            act_app[idx] += cov[idx, None] * world.scene[c]
            act_mot[idx] += cov[idx, None] * (
                inten[:, None] * (world.motion[c] + world.energy) + own
            )
            act_cov[idx] += cov[idx]
        for side in (-1, 1):
            if rng.random() >= p.context_prob or p.context_max_s <= 0:
                continue
            span = float(rng.uniform(0.25, 1.0) * p.context_max_s)
            lo, hi = (
                (seg.start_s - span, seg.start_s) if side < 0 else (seg.end_s, seg.end_s + span)
            )
            ctx_app += _coverage(ts, lo, hi)[:, None] * world.scene[c]
    act_cov = np.clip(act_cov, 0, 1)[:, None]
    keep_bg = 1 - act_cov * (1 - beta)
    # Context never shows inside an action: it is what surrounds the action.
    ctx_app *= 1 - act_cov
    app = keep_bg * bg_app + (1 - beta) * act_app + p.context_strength * ctx_app
    mot = keep_bg * bg_mot + (1 - beta) * act_mot
    return app, mot


def _stream_features(
    app: np.ndarray,
    mot: np.ndarray,
    name: str,
    world: _World,
    rng: np.random.Generator,
    p: FeatureParams,
) -> np.ndarray:
    """Map one video's latent into one stream's (T, D) non-negative features."""
    w1, b1, w2, b2, noise_w = world.maps[name]
    z = np.concatenate([app, mot], axis=1)
    t, d = z.shape
    sigma = p.noise * float(noise_w)
    eps = WHITE_NOISE * rng.standard_normal((t, d)) + SLOW_NOISE * _ar1(rng, t, d, 0.9)
    z = _smooth(z + sigma * eps, TIME_SMOOTHING).astype(np.float32)
    h = np.tanh(z @ w1 + b1)
    u = h @ w2
    u += b2
    u *= OUTPUT_GAIN
    u += OUTPUT_SHIFT
    return pooled_relu(u, SPATIAL_SPREAD)


def pooled_relu(u: np.ndarray, spread: float) -> np.ndarray:
    """Mean of ``relu(u + spread·e)`` over e ~ N(0, 1), in place: an average-pooled ReLU."""
    z = u / np.float32(spread)
    cdf = ndtr(z)
    np.square(z, out=z)
    z *= -0.5
    np.exp(z, out=z)
    z *= np.float32(spread / np.sqrt(2 * np.pi))
    u *= cdf
    u += z
    return u


def _as_dataset(annotations: Dataset | str | Path) -> Dataset:
    if isinstance(annotations, Dataset):
        return annotations
    from talkit.datasets import load_annotations

    return load_annotations(annotations)


def resolve_streams(dim: int, streams: dict[str, int] | None) -> dict[str, int]:
    """Default streams split ``dim`` in half (rgb, flow); explicit streams must sum to it."""
    if streams is None:
        if dim < 2:
            raise InputError(f"feature dim must be at least 2, got {dim}", hint="e.g. --dim 2048")
        return {"rgb": dim // 2, "flow": dim - dim // 2}
    if not streams or any(v <= 0 for v in streams.values()):
        raise InputError(f"stream dims must be positive, got {streams}", hint='e.g. {"rgb": 1024}')
    if sum(streams.values()) != dim:
        raise InputError(
            f"stream dims {streams} sum to {sum(streams.values())}, not dim={dim}",
            hint="leave dim at the sum of the stream dims, or leave streams unset",
        )
    return dict(streams)


def generate_features(
    annotations: Dataset | str | Path,
    *,
    dim: int = 2048,
    streams: dict[str, int] | None = None,
    fps: float = 25.0,
    stride: int = 16,
    clip_len: int = 16,
    noise: float = 1.0,
    context_strength: float = 0.6,
    background_fraction: float = 0.3,
    seed: int = 0,
) -> tuple[Dataset, dict[str, dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """Features for every video of ``annotations`` (a Dataset or an annotation path).

    Returns the dataset (durations filled in where the file had none), per-video
    ``{stream: (T, D) float32}`` and per-video ``(T, 2)`` snippet timestamps in seconds.
    A video's features depend only on the seed, the parameters and that video's own
    annotations, so subsets and re-runs give byte-identical arrays.
    """
    params = make_params(
        dim=dim,
        streams=streams,
        fps=fps,
        stride=stride,
        clip_len=clip_len,
        noise=noise,
        context_strength=context_strength,
        background_fraction=background_fraction,
        seed=seed,
    )
    return generate_features_from_params(_as_dataset(annotations), params)


def make_params(
    *, dim: int = 2048, streams: dict[str, int] | None = None, **knobs: Any
) -> FeatureParams:
    """Validated :class:`FeatureParams`; bad values become an InputError (exit 2)."""
    try:
        return FeatureParams(streams=resolve_streams(dim, streams), **knobs)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        first = exc.errors()[0] if hasattr(exc, "errors") else None
        what = f"{first['loc'][0]}: {first['msg']}" if first and first.get("loc") else str(exc)
        raise InputError(
            f"invalid synthetic feature parameter ({what})",
            hint="see `talkit synth features --help` for the allowed ranges",
        ) from None


def iter_features(
    dataset: Dataset, params: FeatureParams
) -> Iterator[tuple[Video, dict[str, np.ndarray], np.ndarray]]:
    """Yield (video with duration, {stream: (T, D)}, (T, 2) timestamps) one video at a
    time, so a whole THUMOS14-sized set never has to sit in memory."""
    if not dataset.classes:
        raise InputError(
            f"annotation set {dataset.name!r} has no classes",
            hint="pass a file with labelled segments",
        )
    world = _World(dataset.classes, params)
    cls_index = dataset.class_index()
    for vid, video in dataset.videos.items():
        unknown = {s.label for s in video.annotations} - set(cls_index)
        if unknown:
            raise InputError(
                f"video {vid} has labels {sorted(unknown)} outside the class list",
                hint="fix the annotation file or its class list",
            )
        duration = video_duration(
            video, _rng(params.seed, "duration", vid), params.duration_margin_median_s
        )
        ts = snippet_timestamps(duration, params)
        app, mot = _video_latent(video, ts, world, cls_index, params)
        nrng = _rng(params.seed, "noise", vid)
        streams = {
            name: _stream_features(app, mot, name, world, nrng, params) for name in params.streams
        }
        filled = video.model_copy(update={"duration_s": duration, "fps": video.fps or params.fps})
        yield filled, streams, ts


def generate_features_from_params(
    dataset: Dataset, params: FeatureParams
) -> tuple[Dataset, dict[str, dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """:func:`generate_features` with the parameters already validated."""
    features: dict[str, dict[str, np.ndarray]] = {}
    stamps: dict[str, np.ndarray] = {}
    videos: dict[str, Video] = {}
    for video, streams, ts in iter_features(dataset, params):
        features[video.id] = streams
        stamps[video.id] = ts
        videos[video.id] = video
    return dataset.model_copy(update={"videos": videos}), features, stamps


def write_features_to_store(
    store_url: str | Path,
    annotations: Dataset | str | Path,
    *,
    dataset_name: str | None = None,
    feature_set: str = "synthetic",
    dtype: str = "float32",
    overwrite: bool = False,
    on_video: Callable[[str], None] | None = None,
    dim: int = 2048,
    streams: dict[str, int] | None = None,
    **knobs: Any,
) -> tuple[Dataset, str]:
    """Generate features for ``annotations`` and write them as ``dataset/feature_set``.

    Creates the store if ``store_url`` does not exist. The feature set's spec says these
    are synthetic (backbone ``synthetic``, ``params.synthetic = True``) and records every
    generator parameter and the seed, so nobody mistakes them for real features and
    anyone can regenerate them. All videos go in one commit. Returns the dataset (with
    the durations used) and the feature-set key.
    """
    from talkit.store import FeatureSetSpec, FeatureStore

    params = make_params(dim=dim, streams=streams, **knobs)
    dataset = _as_dataset(annotations)
    name = dataset_name or _store_safe(dataset.name)
    source = str(annotations) if isinstance(annotations, (str, Path)) else f"<{dataset.name}>"
    if dtype not in ("float32", "float16"):
        raise InputError(f"unknown feature dtype {dtype!r}", hint="use float32 or float16")
    spec = FeatureSetSpec(
        backbone="synthetic",
        streams=dict(params.streams),
        dtype=dtype,  # type: ignore[arg-type]  # checked above
        fps=params.fps,
        clip_len=params.clip_len,
        stride=params.stride,
        params={**params.spec_params(), "annotations": source, "classes": list(dataset.classes)},
        checkpoints={s: f"random:{params.seed}" for s in params.streams},
    )
    url = str(store_url)
    store = FeatureStore.create(url, exist_ok=True)  # opens it when it exists (any URL)
    videos: dict[str, Video] = {}
    with store.writer(
        message=f"synthetic features for {name} ({len(dataset.videos)} videos, seed {params.seed})",
        metadata={"synthetic": params.spec_params()},
    ) as writer:
        writer.create_feature_set(name, feature_set, spec, exist_ok=True)
        for video, arrays, ts in iter_features(dataset, params):
            writer.write_video(
                name,
                feature_set,
                video.id,
                streams=arrays,
                timestamps=ts,
                attrs={
                    "source": {"synthetic": True, "annotations": source},
                    "duration_s": video.duration_s,
                    "fps": params.fps,
                    "frame_count": int(np.floor(float(video.duration_s or 0) * params.fps + 1e-6)),
                    "subset": video.subset,
                },
                overwrite=overwrite,
            )
            videos[video.id] = video
            if on_video is not None:
                on_video(video.id)
    return dataset.model_copy(update={"videos": videos}), f"{name}/{feature_set}"


def _store_safe(name: str) -> str:
    """A dataset name usable as a store group name (letters, digits, _ . + = @ , -)."""
    safe = re.sub(r"[^A-Za-z0-9_.+=@,-]", "_", name).lstrip(".-")
    return safe or "dataset"
