"""Backbone input from snippet batches: the resize, crop, normalisation and optical flow.

Why a module of its own: one decode feeds several backbones (see multi.py), and what
they have in common is computed once. Frames are resized as they are decoded (resized
frames, not full-size ones, are what the snippet buffers hold); backbones whose resize
is the same share it. Flow is computed per pair of decoded pictures, so backbones with
the same flow spec on the same resized frames share it through a :class:`FlowPairs`,
whatever their fps or snippet lengths.

Flow convention: flow frame j of a snippet is the flow from frame j to frame j + 1, so
a 16-frame snippet reads 17 frames (the next snippet's first one). At the very end of
the video the missing frame repeats the last one, and pairs that show the same decoded
picture (the end, or frames duplicated by frame-rate conversion) get zero flow without
computing it.
"""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np
import torch

from talkit.extractors.flow import FlowComputer, normalise_flow, to_grey
from talkit.extractors.registry import BackboneSpec
from talkit.extractors.sampling import SnippetBatch
from talkit.extractors.transforms import BatchTransform, center_crop, crop_origin

Pair = tuple[int, int]  # (first, second) decoded-frame indices


def spatial_transform(spec: BackboneSpec) -> BatchTransform:
    """Resize only (crop later: flow is computed on the whole resized frame).

    Equal transforms (a frozen dataclass) mean equal resized frames: the key on which
    backbones share the resize.
    """
    if spec.resize_short is None:
        return BatchTransform(
            resize_short=None, crop=None, square=spec.input_size, normalize="none", layout="BTHWC"
        )
    return BatchTransform(
        resize_short=spec.resize_short, crop=None, normalize="none", layout="BTHWC"
    )


def flow_key(spec: BackboneSpec) -> Hashable | None:
    """What makes two backbones' raw flows equal: flow spec, resize, and the crop when flow
    runs on the crop. None for a backbone without a flow stream."""
    if spec.flow is None:
        return None
    crop = spec.input_size if spec.crop == "center" and spec.flow.region == "crop" else None
    return (spec.flow.model_dump_json(), spatial_transform(spec), crop)


class FlowPairs:
    """Raw flow of decoded-frame pairs for one flow key, each pair computed once.

    Every backbone with this key asks here; a pair another backbone (or an overlapping
    snippet) already asked for is not computed again. ``forget_before`` drops pairs no
    batch still being filled can need, so memory follows the snippet windows in flight,
    not the video's length. ``computed`` counts the pairs actually computed.
    """

    def __init__(self, computer: FlowComputer) -> None:
        self.computer = computer
        self.computed = 0
        self._cache: dict[Pair, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self._cache)

    def get(self, where: dict[Pair, tuple[int, int]], grey: np.ndarray) -> dict[Pair, np.ndarray]:
        """Flow for each pair; ``where[pair]`` = (snippet, frame) of its first picture in
        ``grey`` (B, L + 1, H, W), the second being the frame after it."""
        missing = [pair for pair in where if pair not in self._cache]
        if missing:
            firsts = np.stack([grey[i, j] for i, j in (where[p] for p in missing)])
            seconds = np.stack([grey[i, j + 1] for i, j in (where[p] for p in missing)])
            flows = self.computer.pairs(firsts, seconds)
            self._cache.update(zip(missing, flows, strict=True))
            self.computed += len(missing)
        return {pair: self._cache[pair] for pair in where}

    def forget_before(self, source: int) -> None:
        """Drop the pairs that start before decoded frame ``source``."""
        stale = [pair for pair in self._cache if pair[0] < source]
        for pair in stale:
            del self._cache[pair]


class Preprocess:
    """SnippetBatch of resized uint8 frames -> {stream: float tensor (B, C, T, H, W)}."""

    def __init__(self, spec: BackboneSpec, flow: FlowPairs | FlowComputer | None) -> None:
        self.spec = spec
        self.flow = FlowPairs(flow) if isinstance(flow, FlowComputer) else flow
        norm = spec.normalisation
        self.crop = spec.input_size if spec.crop == "center" else None
        self.mean = torch.tensor(norm.mean, dtype=torch.float32)
        self.std = torch.tensor(norm.std, dtype=torch.float32)
        self.value_range = float(norm.value_range)

    def _crop(self, frames: np.ndarray) -> np.ndarray:
        return frames if self.crop is None else center_crop(frames, self.crop)

    def __call__(self, batch: SnippetBatch, count: int) -> dict[str, torch.Tensor]:
        frames = np.asarray(batch.frames)[:count]  # (B, L[+1], h, w, 3) uint8
        b, length = count, self.spec.clip_len
        out: dict[str, torch.Tensor] = {}
        if "rgb" in self.spec.streams:
            rgb = frames[:, :length]
            rgb = rgb.reshape(b * length, *rgb.shape[2:])
            if self.crop is not None:
                # A view: the float conversion below is the one copy (no uint8 crop copy).
                top, left = crop_origin(rgb.shape[1:3], self.crop)
                rgb = rgb[:, top : top + self.crop, left : left + self.crop]
            x = torch.from_numpy(rgb).to(torch.float32).div_(self.value_range)
            x = x.sub_(self.mean).div_(self.std)
            x = x.reshape(b, length, *x.shape[1:]).permute(0, 4, 1, 2, 3)
            # Already NDHWC in memory: the layout the fast forward wants (no copy).
            out["rgb"] = x.contiguous(memory_format=torch.channels_last_3d)
        if "flow" in self.spec.streams:
            out["flow"] = self._flow(frames, batch.source_frames[:count])
        return out

    def _flow(self, frames: np.ndarray, sources: np.ndarray) -> torch.Tensor:
        spec = self.spec.flow
        assert spec is not None and self.flow is not None
        b, length = frames.shape[0], self.spec.clip_len
        flat = frames.reshape(b * frames.shape[1], *frames.shape[2:])
        if spec.region == "crop":
            flat = self._crop(flat)
        grey = to_grey(flat).reshape(b, frames.shape[1], *flat.shape[1:3])
        # Unique pairs of distinct decoded pictures; identical pictures have zero flow.
        where: dict[Pair, tuple[int, int]] = {}
        for i in range(b):
            for j in range(length):
                key = (int(sources[i, j]), int(sources[i, j + 1]))
                if key[0] != key[1] and key not in where:
                    where[key] = (i, j)
        h, w = grey.shape[2:]
        raw = np.zeros((b, length, h, w, 2), np.float32)
        if where:
            computed = self.flow.get(where, grey)
            for i in range(b):
                for j in range(length):
                    key = (int(sources[i, j]), int(sources[i, j + 1]))
                    if key in computed:
                        raw[i, j] = computed[key]
        flow = raw.reshape(b * length, h, w, 2)
        if spec.region == "frame":
            flow = self._crop(flow)
        flow = normalise_flow(flow, bound=spec.bound, quantize_8bit=spec.quantize_8bit)
        x = torch.from_numpy(np.ascontiguousarray(flow))
        return x.reshape(b, length, *x.shape[1:]).permute(0, 4, 1, 2, 3).contiguous()
