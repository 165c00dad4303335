"""talkit.extractors: video decoding, snippet sampling, transforms (and the backbones).

The decoding side's public names::

    open_video(path, backend="auto"|"decord"|"pyav"|"frames", fps_for_frames=None)
        -> VideoReader (.meta: VideoMeta, .iter_frames(fps=None, tolerate_damage=False))
    probe(path, full=False) -> ProbeResult
    SnippetSpec(fps, clip_len, stride, tail="drop"|"pad")
    iter_snippet_batches(video, spec, batch_size=..., transform=None,
                         tolerate_damage=False) -> SnippetStream of SnippetBatch
    snippet_timestamps(num_frames, spec) -> (T, 2) seconds
"""

from talkit.extractors.damage import Damage
from talkit.extractors.probe import ProbeResult, probe
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

__all__ = [
    "BatchTransform",
    "Damage",
    "Frame",
    "ProbeResult",
    "SnippetBatch",
    "SnippetSpec",
    "SnippetStream",
    "VideoMeta",
    "VideoReader",
    "iter_snippet_batches",
    "num_snippets",
    "open_video",
    "probe",
    "select_source_frames",
    "snippet_timestamps",
    "to_fraction",
]

# Backbones and feature extraction (torch-heavy): imported on first use, so that light
# users of this package (e.g. the spawned optical-flow workers) do not pay for torch.
_LAZY = {
    "extract_video": "talkit.extractors.extract",
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
__all__ += sorted(_LAZY)


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'talkit.extractors' has no attribute {name!r}")
