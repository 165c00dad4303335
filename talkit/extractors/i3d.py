"""Moved to :mod:`talkit.extractors.backbones.i3d`; this name stays importable."""

from talkit.extractors.backbones.i3d import (  # noqa: F401
    FEATURE_DIM,
    STREAM_CHANNELS,
    I3DBackbone,
    I3DNetwork,
    InceptionI3d,
    i3d,
    init_random_,
    same_padding,
)
