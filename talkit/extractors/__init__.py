"""talkit.extractors: video decoding, snippet sampling, transforms (and the backbones).

The decoding side's public names::

    open_video(path, backend="auto"|"decord"|"pyav"|"frames", fps_for_frames=None)
        -> VideoReader (.meta: VideoMeta, .iter_frames(fps=None, tolerate_damage=False))
    probe(path, full=False) -> ProbeResult
    SnippetSpec(fps, clip_len, stride, tail="drop"|"pad")
    iter_snippet_batches(video, spec, batch_size=..., transform=None,
                         tolerate_damage=False) -> SnippetStream of SnippetBatch
    snippet_timestamps(num_frames, spec) -> (T, 2) seconds

and feature extraction: ``extract_video(path, backbone, ...)`` for one backbone,
``extract_video_multi(path, {name: backbone, ...})`` for several from one decode.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Eager, unlike the rest: the function ``probe`` shares its name with its module, and a
# later ``import talkit.extractors.probe`` would otherwise bind the package's ``probe`` to
# the module. probe.py itself imports nothing heavy.
from talkit.extractors.probe import ProbeResult, probe

if TYPE_CHECKING:
    from talkit.extractors.damage import Damage
    from talkit.extractors.extract import (
        ShortVideoWarning,
        VideoFeatures,
        build_backbone,
        extract_video,
    )
    from talkit.extractors.flow import FlowComputer, FlowSpec, flow_spec
    from talkit.extractors.multi import extract_video_multi
    from talkit.extractors.registry import (
        Backbone,
        BackboneSpec,
        available,
        get,
        register_backbone,
    )
    from talkit.extractors.resample import select_source_frames, to_fraction
    from talkit.extractors.sampling import (
        SnippetBatch,
        SnippetSpec,
        SnippetStream,
        iter_snippet_batches,
        num_snippets,
        snippet_timestamps,
    )
    from talkit.extractors.transforms import BatchTransform
    from talkit.extractors.video import Frame, VideoMeta, VideoReader, open_video

# Imported on first use: the readers and sampling need NumPy, the transforms OpenCV,
# backbones and feature extraction torch; light users of this package (`talkit --help`,
# the spawned optical-flow workers) should pay only for what they use.
_LAZY = {
    "Damage": "talkit.extractors.damage",
    "select_source_frames": "talkit.extractors.resample",
    "to_fraction": "talkit.extractors.resample",
    "SnippetBatch": "talkit.extractors.sampling",
    "SnippetSpec": "talkit.extractors.sampling",
    "SnippetStream": "talkit.extractors.sampling",
    "iter_snippet_batches": "talkit.extractors.sampling",
    "num_snippets": "talkit.extractors.sampling",
    "snippet_timestamps": "talkit.extractors.sampling",
    "Frame": "talkit.extractors.video",
    "VideoMeta": "talkit.extractors.video",
    "VideoReader": "talkit.extractors.video",
    "open_video": "talkit.extractors.video",
    "BatchTransform": "talkit.extractors.transforms",
    "extract_video": "talkit.extractors.extract",
    "extract_video_multi": "talkit.extractors.multi",
    "build_backbone": "talkit.extractors.extract",
    "VideoFeatures": "talkit.extractors.extract",
    "ShortVideoWarning": "talkit.extractors.extract",
    "get": "talkit.extractors.registry",
    "available": "talkit.extractors.registry",
    "register_backbone": "talkit.extractors.registry",
    "Backbone": "talkit.extractors.registry",
    "BackboneSpec": "talkit.extractors.registry",
    "FlowSpec": "talkit.extractors.flow",
    "FlowComputer": "talkit.extractors.flow",
    "flow_spec": "talkit.extractors.flow",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'talkit.extractors' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "Backbone",
    "BackboneSpec",
    "BatchTransform",
    "Damage",
    "FlowComputer",
    "FlowSpec",
    "Frame",
    "ProbeResult",
    "ShortVideoWarning",
    "SnippetBatch",
    "SnippetSpec",
    "SnippetStream",
    "VideoFeatures",
    "VideoMeta",
    "VideoReader",
    "available",
    "build_backbone",
    "extract_video",
    "extract_video_multi",
    "flow_spec",
    "get",
    "iter_snippet_batches",
    "num_snippets",
    "open_video",
    "probe",
    "register_backbone",
    "select_source_frames",
    "snippet_timestamps",
    "to_fraction",
]
