"""Frame-rate conversion by timestamp, frame-exact with ffmpeg's ``fps`` filter.

Why: features are only comparable across tools if "frame k at 25 fps" means the same
source picture everywhere. ffmpeg's ``fps`` filter (rounding ``near``, the default) is
the de-facto definition, and re-encoding to a temporary 25 fps file (what many
extractors do) is slow and lossy. This module applies the same rule to decoded frames:

- every source frame j gets an output slot r_j = round(t_j * fps), rounding halves away
  from zero, in exact rational arithmetic (t_j is measured from the first frame);
- output frame k shows the last source frame j with r_j <= k (frames whose slot is
  taken by a later frame are dropped; gaps repeat the previous frame);
- the output has round(t_end * fps) frames, where t_end is the end of the last source
  frame (its timestamp plus its duration).

Timestamps are integers in the stream's time base and all arithmetic is on integers
and fractions, so 29.97 fps (1001/30000 s per frame) and variable frame rates are exact:
no float drift over hours of video.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from fractions import Fraction
from typing import TypeVar

import numpy as np

T = TypeVar("T")


def to_fraction(fps: float | int | Fraction | str) -> Fraction:
    """A frame rate as an exact Fraction (29.97 -> 30000/1001, "30000/1001" -> itself)."""
    if isinstance(fps, Fraction):
        q = fps
    elif isinstance(fps, (str, int)):
        q = Fraction(fps)
    else:
        q = Fraction(fps).limit_denominator(1001)
        # 29.97, 59.94, 23.976 written as decimals mean the NTSC rates.
        for base in (24, 30, 60, 120):
            ntsc = Fraction(base * 1000, 1001)
            if abs(float(ntsc) - float(fps)) < 5e-3:
                q = ntsc
    if q <= 0:
        raise ValueError(f"frame rate must be positive, got {fps!r}")
    return q


def round_half_away(x: Fraction) -> int:
    """Round a rational to the nearest integer, halves away from zero (AV_ROUND_NEAR_INF)."""
    if x >= 0:
        return int((x.numerator * 2 + x.denominator) // (x.denominator * 2))
    return -round_half_away(-x)


def output_slot(t: Fraction, fps: Fraction) -> int:
    """The output frame index a source frame at time ``t`` (s) is assigned to."""
    return round_half_away(t * fps)


def num_output_frames(end_s: Fraction, fps: Fraction) -> int:
    """How many output frames a source ending at ``end_s`` seconds yields."""
    return max(0, round_half_away(end_s * fps))


def select_source_frames(times_s: Iterable[Fraction], end_s: Fraction, fps: Fraction) -> np.ndarray:
    """For every output frame, the index of the source frame it shows (whole-list form).

    ``times_s`` must be increasing and start at 0. This is the reference form of the
    rule; :func:`resample_stream` applies the same rule to a stream of frames.
    """
    slots = np.array([output_slot(t, fps) for t in times_s], dtype=np.int64)
    n_out = num_output_frames(end_s, fps)
    if slots.size == 0 or n_out == 0:
        return np.zeros(0, dtype=np.int64)
    return np.searchsorted(slots, np.arange(n_out), side="right") - 1


class Resampler:
    """Push form of the rule, for one output rate: feed source timestamps, get output frames.

    Why push: one decode can feed several rates (one per backbone) in lockstep, each
    holding nothing but the previous frame's slot. ``push(ticks)`` takes the next source
    frame's timestamp (``time_base`` ticks from the first frame) and returns the output
    indices that show the *previous* source frame (known only now); ``finish(end_ticks)``
    returns those of the last frame. Integer arithmetic only (this runs per frame).
    """

    def __init__(self, time_base: Fraction, fps: Fraction) -> None:
        self._a = time_base.numerator * fps.numerator
        self._b2 = 2 * time_base.denominator * fps.denominator
        self._half = self._b2 // 2
        self._k = 0  # next output index
        self._started = False
        self._last_slot = 0

    def _slot(self, ticks: int) -> int:
        # round(ticks * tb * fps), halves up (ticks >= 0)
        return (2 * ticks * self._a + self._half) // self._b2

    def push(self, ticks: int) -> range:
        slot = self._slot(ticks)
        out = range(0)
        if self._started:
            out = range(self._k, max(self._k, slot))
            self._k = out.stop
        self._started, self._last_slot = True, slot
        return out

    def finish(self, end_ticks: int | None) -> range:
        """Output indices of the last source frame; ``end_ticks`` is the end of that frame
        (None: it lasts one output period)."""
        if not self._started:
            return range(0)
        n_out = self._last_slot + 1 if end_ticks is None else max(0, self._slot(end_ticks))
        out = range(self._k, max(self._k, n_out))
        self._k = out.stop
        return out


class Passthrough:
    """No resampling, in :class:`Resampler`'s push form: each source frame is one output."""

    def __init__(self) -> None:
        self._k = 0
        self._started = False

    def push(self, ticks: int) -> range:
        out = range(0)
        if self._started:
            out = range(self._k, self._k + 1)
            self._k += 1
        self._started = True
        return out

    def finish(self, end_ticks: int | None) -> range:
        if not self._started:
            return range(0)
        self._k += 1
        return range(self._k - 1, self._k)


def resample_stream(
    frames: Iterable[tuple[int, T]],
    time_base: Fraction,
    fps: Fraction,
    end_ticks: list[int | None],
) -> Iterator[tuple[int, int, T]]:
    """Stream form of the rule: yield (output index, source index, item) in order.

    ``frames`` yields (timestamp in ``time_base`` ticks from the first frame, item) in
    presentation order; an item is only held until the next frame's timestamp is known,
    so memory stays at one frame (see :class:`Resampler`, which this drives).
    ``end_ticks`` is a one-element list the producer fills with the end of the last
    frame once it is exhausted; if it stays None, the last frame lasts one output period.
    """
    rule = Resampler(time_base, fps)
    current: T | None = None
    cur_index = -1
    for j, (ticks, item) in enumerate(frames):
        for k in rule.push(ticks):
            yield k, cur_index, current  # type: ignore[misc]
        current, cur_index = item, j
    for k in rule.finish(end_ticks[0] if end_ticks else None):
        yield k, cur_index, current  # type: ignore[misc]
