"""One video in, snippet features out: decode -> snippets -> (flow) -> batched forward.

This is the in-process path; the Ray pipeline runs exactly this code per video.
``extract_video`` builds one backbone from its options and runs it through the shared
pass of :mod:`talkit.extractors.multi` (its one-backbone case: ``extract_video_multi``
decodes once for several). Decoding, preprocessing and optical flow run in a background
thread that fills a small bounded queue of ready batches while the calling thread runs
the network (memory: ``queue_size`` + 1 prepared batches, whatever the video's length).
OpenCV's TV-L1 pairs go to ``flow_workers`` processes; the torch TV-L1 (``tvl1_torch``)
runs them in batches on the flow device. The flow convention is in preprocess.py.

Snippet counts and timestamps are those of the rgb stream: floor((N - 16) / 16) + 1
snippets for N frames at 25 fps, snippet i covering [16 i / 25, (16 i + 16) / 25) s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from talkit.errors import InputError
from talkit.extractors import registry
from talkit.extractors.flow import TORCH_METHODS, FlowComputer
from talkit.extractors.registry import Backbone, BackboneSpec


class ShortVideoWarning(UserWarning):
    """A video is too short for a single snippet; it gets zero features."""


@dataclass
class VideoFeatures:
    """Features of one video: (T, D) per stream, (T, 2) snippet times in s, and provenance.

    ``spec`` is the backbone spec that made them (weights included: ``sha256:...`` or
    ``random:<seed>``). ``meta`` holds the video's container info, frame count at the
    spec's fps, damage report, warnings, checkpoint files and timings.
    """

    streams: dict[str, np.ndarray]
    timestamps: np.ndarray
    spec: BackboneSpec
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def num_snippets(self) -> int:
        return int(self.timestamps.shape[0])

    def joint(self) -> np.ndarray:
        """All streams concatenated in spec order, e.g. [rgb, flow] -> (T, 2048)."""
        return np.concatenate([self.streams[s] for s in self.spec.streams], axis=1)


def build_backbone(
    backbone: str | Backbone = "i3d",
    *,
    checkpoints: Mapping[str, str | Path] | None = None,
    random_weights_seed: int | None = None,
    device: str | torch.device | None = None,
    **options: Any,
) -> Backbone:
    """A backbone with weights on ``device``: build once, reuse for many videos.

    ``options`` go to the registered factory (``input_size``, ``streams``, flow
    options...). Every stream needs a checkpoint, or ``random_weights_seed`` for test
    features, which the spec then records as ``random:<seed>``.
    """
    if isinstance(backbone, Backbone):
        if options:
            raise InputError(
                f"options {sorted(options)} cannot change an already built backbone",
                hint="pass the backbone name instead, or build it with these options",
            )
        model = backbone
    else:
        model = registry.get(backbone, **options)
    checkpoints = dict(checkpoints or {})
    if checkpoints and random_weights_seed is not None:
        raise InputError(
            "give either checkpoints or random_weights_seed, not both",
            hint="random weights are for tests and demos; real features need checkpoints",
        )
    unknown = [s for s in checkpoints if s not in model.spec.streams]
    if unknown:
        raise InputError(
            f"checkpoints given for stream(s) {', '.join(unknown)} that {model.spec.name!r} "
            f"does not compute here",
            hint=f"its streams are: {', '.join(model.spec.streams)}",
        )
    for stream, path in checkpoints.items():
        model.load_checkpoint(stream, path)
    if random_weights_seed is not None:
        model.random_weights(random_weights_seed)
    model.require_weights()
    # None keeps a built backbone where it is (a new one starts on the CPU).
    return model.to(device) if device is not None else model


def resolve_flow_device(
    flow_method: str, flow_device: str, model_device: str | torch.device | None
) -> str | None:
    """ "auto" -> the model's device type for the torch flows (CPU when none is given);
    OpenCV's flows run on the CPU and record no device (None)."""
    if flow_method not in TORCH_METHODS:
        return None if flow_device == "auto" else flow_device
    if flow_device != "auto":
        return flow_device
    return torch.device(model_device).type if model_device is not None else "cpu"


def extract_video(
    path: str | Path,
    backbone: str | Backbone = "i3d",
    checkpoints: Mapping[str, str | Path] | None = None,
    *,
    batch_size: int = 8,
    device: str | torch.device | None = None,
    random_weights_seed: int | None = None,
    flow_workers: int = 1,
    video_backend: str = "auto",
    fps_for_frames: float | None = None,
    tolerate_damage: bool = False,
    flow_computer: FlowComputer | None = None,
    queue_size: int = 1,
    progress: Callable[[int], None] | None = None,
    **options: Any,
) -> VideoFeatures:
    """Extract snippet features of one video (file or frame folder), in this process.

    ``backbone`` is a registered name, built here with ``options`` (its factory's
    keywords: ``streams``, ``input_size``, ``flow_method`` ... for I3D; see
    ``talkit.extractors.registry.default_options(name)``, the one place their defaults
    live), or a backbone from :func:`build_backbone`, which is faster for many videos
    (then no options may be given). ``flow_device="auto"`` runs the torch TV-L1 on the
    model's device. ``flow_computer`` lets many videos share one pool of flow workers.
    ``device`` ("cpu", "cuda", ...) moves the backbone there; None leaves a built
    backbone where it is, and runs a new one on the CPU.
    ``progress`` is called with the number of snippets done after each batch.
    A video shorter than one snippet gives zero snippets and a ``ShortVideoWarning``.
    """
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    if isinstance(backbone, Backbone):
        if options:
            raise InputError(
                f"extract_video got a built backbone and also {', '.join(sorted(options))}",
                hint="set these when building it (build_backbone(name, ...)), not here",
            )
    elif options.get("flow_device") == "auto":
        options["flow_device"] = resolve_flow_device(
            str(options.get("flow_method", registry.default_options(backbone).get("flow_method"))),
            "auto",
            device,
        )
    model = build_backbone(
        backbone,
        checkpoints=checkpoints,
        random_weights_seed=random_weights_seed,
        device=device,
        **options,
    )
    spec = model.spec
    owned_flow = None
    if spec.flow is not None and flow_computer is None:
        owned_flow = flow_computer = FlowComputer(spec.flow, workers=flow_workers)
    elif spec.flow is not None and flow_computer is not None and flow_computer.spec != spec.flow:
        raise InputError(
            f"flow_computer runs {flow_computer.spec.method} with other settings than the "
            f"backbone's flow spec ({spec.flow.method})",
            hint="build the FlowComputer from backbone.spec.flow",
        )
    from talkit.extractors.multi import run_backbones

    try:
        return run_backbones(
            Path(path),
            {spec.name: model},
            {spec.name: flow_computer},
            batch_size=batch_size,
            video_backend=video_backend,
            fps_for_frames=fps_for_frames,
            tolerate_damage=tolerate_damage,
            queue_size=queue_size,
            progress=None if progress is None else (lambda _name, done: progress(done)),
            checkpoints={spec.name: checkpoints or {}},
        )[spec.name]
    finally:
        if owned_flow is not None:
            owned_flow.close()
