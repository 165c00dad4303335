"""Where action instances and their context fall in a synthetic video.

A timeline is drawn before any pixel is rendered, so the ground truth is the cause of the
frames and not something recovered from them. Times are quantised to 0.1 s, the precision
the THUMOS14 per-class text files carry, so every annotation format holds exactly the same
numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from talkit.errors import InputError

TIME_QUANTUM_S = 0.1


def _q(t: float) -> float:
    """Round to the 0.1 s grid (and strip float noise so JSON/text agree)."""
    return round(round(t / TIME_QUANTUM_S) * TIME_QUANTUM_S, 1)


class InstanceDistribution(BaseModel):
    """How many action instances a video has, how long they last, and their context.

    Defaults follow THUMOS14's shape scaled to short clips: several short instances
    per video (THUMOS14 median instance 3.0 s, one class per video in most videos),
    a few videos without any action, and context around about half of the instances.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    count_mean: float = Field(4.0, ge=0, description="Poisson mean of instances per video.")
    count_max: int = Field(12, ge=0)
    empty_fraction: float = Field(0.05, ge=0, le=1, description="Share of action-free videos.")
    duration_median_s: float = Field(3.0, gt=0)
    duration_sigma: float = Field(0.6, ge=0, description="Log-normal sigma of durations.")
    duration_min_s: float = Field(0.8, gt=0)
    duration_max_s: float = Field(12.0, gt=0)
    classes_per_video: int = Field(1, ge=1, description="Distinct classes one video may hold.")
    context_prob: float = Field(0.5, ge=0, le=1, description="Chance of context on each side.")
    context_min_s: float = Field(0.5, ge=0)
    context_max_s: float = Field(2.0, ge=0)
    gap_min_s: float = Field(0.4, ge=0.2, description="Background between two instance blocks.")

    @model_validator(mode="after")
    def _check_ranges(self) -> InstanceDistribution:
        if self.duration_min_s > self.duration_max_s:
            raise ValueError("duration_min_s must not exceed duration_max_s")
        if self.context_min_s > self.context_max_s:
            raise ValueError("context_min_s must not exceed context_max_s")
        return self

    def scaled_to(self, video_s: float) -> InstanceDistribution:
        """Shrink a THUMOS-shaped distribution for clips too short to hold it.

        A 6-second test clip cannot hold four 3-second actions. Instance count and
        lengths both shrink by the square root of the needed factor, so a short clip
        still holds a few short instances and the expected blocks fill ~60% of it.
        """
        block = self.duration_median_s + self.context_max_s + self.gap_min_s
        need = max(1.0, self.count_mean) * block
        if need <= video_s * 0.6:
            return self
        g = max(video_s * 0.6 / need, 0.01) ** 0.5
        return self.model_copy(
            update={
                "count_mean": self.count_mean * g,
                "duration_median_s": self.duration_median_s * g,
                "duration_min_s": max(0.3, self.duration_min_s * g),
                "duration_max_s": max(0.3, self.duration_max_s * g),
                "context_min_s": self.context_min_s * g,
                "context_max_s": self.context_max_s * g,
                "gap_min_s": max(0.2, self.gap_min_s * g),
            }
        )


@dataclass(frozen=True)
class Instance:
    """One action instance and the context that surrounds it (seconds)."""

    class_idx: int
    start_s: float
    end_s: float
    context_before_s: float  # seconds of static scene before start_s (0: none)
    context_after_s: float
    phase: float  # motion phase (cycles) at start_s

    @property
    def block_start_s(self) -> float:
        return self.start_s - self.context_before_s

    @property
    def block_end_s(self) -> float:
        return self.end_s + self.context_after_s


def sample_timeline(
    rng: np.random.Generator,
    *,
    duration_s: float,
    num_classes: int,
    dist: InstanceDistribution,
) -> list[Instance]:
    """Draw non-overlapping instance blocks (context + action + context) for one video.

    Blocks never overlap and are separated by at least ``gap_min_s`` of plain
    background, so "inside an instance" and "outside every instance" are unambiguous.
    """
    if duration_s <= 0:
        raise InputError(
            f"video duration must be positive, got {duration_s}",
            hint="pass --duration with a value such as 8 or a range such as 5:20",
        )
    d = dist.scaled_to(duration_s)
    if rng.random() < d.empty_fraction:
        return []
    count = int(min(rng.poisson(d.count_mean), d.count_max))
    if count == 0:
        return []
    n_cls = min(d.classes_per_video, num_classes)
    video_classes = rng.choice(num_classes, size=n_cls, replace=False)
    blocks: list[tuple[int, float, float, float]] = []
    for _ in range(count):
        dur = float(np.exp(rng.normal(np.log(d.duration_median_s), d.duration_sigma)))
        dur = float(np.clip(dur, d.duration_min_s, d.duration_max_s))
        ctx = [
            float(rng.uniform(d.context_min_s, d.context_max_s))
            if rng.random() < d.context_prob
            else 0.0
            for _ in range(2)
        ]
        blocks.append((int(rng.choice(video_classes)), _q(dur), _q(ctx[0]), _q(ctx[1])))
    # Keep as many blocks as fit (with the mandatory gaps at both ends and between).
    usable = duration_s - 2 * d.gap_min_s
    while (
        blocks
        and sum(b[1] + b[2] + b[3] for b in blocks) + d.gap_min_s * (len(blocks) - 1) > usable
    ):
        blocks.pop()
    if not blocks:
        return []
    slack = usable - sum(b[1] + b[2] + b[3] for b in blocks) - d.gap_min_s * (len(blocks) - 1)
    shares = rng.dirichlet(np.ones(len(blocks) + 1)) * max(slack, 0.0)
    out: list[Instance] = []
    t = d.gap_min_s
    for i, (cls, dur, cb, ca) in enumerate(blocks):
        t += float(shares[i])
        start = _q(t + cb)
        # Quantising may shift a block by 0.05 s; never let it touch the previous one.
        if out and start - cb < out[-1].block_end_s + d.gap_min_s - 1e-9:
            start = _q(out[-1].block_end_s + d.gap_min_s + cb + TIME_QUANTUM_S)
        end = _q(start + dur)
        if end + ca > duration_s - d.gap_min_s + 1e-9:
            break
        out.append(Instance(cls, start, end, cb, ca, float(rng.random())))
        t = end + ca + d.gap_min_s
    return out
