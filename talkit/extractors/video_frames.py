"""Frame-folder backend: a directory of JPEG/PNG frames plus a frame rate you give.

Why: many datasets ship (or were once converted to) extracted frames, and some
extractors only accept .mp4. Frames are ordered by natural sort of their names
(``img_2`` before ``img_10``); frame i is at time i / fps.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from talkit.errors import InputError
from talkit.extractors.damage import DecodeLog
from talkit.extractors.resample import to_fraction
from talkit.extractors.video import SourceFrame, VideoMeta, VideoReader, _unreadable

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def _natural_key(path: Path) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def list_frames(folder: Path) -> list[Path]:
    """Image files in ``folder`` in natural order."""
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=_natural_key)


class FrameFolderReader(VideoReader):
    """Reads frames with OpenCV, one at a time; unreadable images count as damage."""

    def __init__(self, folder: Path, *, fps: float | Fraction | None) -> None:
        if fps is None:
            raise InputError(
                f"{folder} is a frame folder, which has no frame rate of its own",
                hint="give fps_for_frames= (CLI: --fps)",
            )
        rate = to_fraction(fps)
        files = list_frames(folder)
        if not files:
            raise _unreadable(
                str(folder),
                f"the folder has no image frames ({', '.join(sorted(IMAGE_SUFFIXES))})",
                hint="point at a folder of extracted frames",
            )
        first = cv2.imread(str(files[0]), cv2.IMREAD_COLOR)
        if first is None:
            raise _unreadable(str(folder), f"its first frame {files[0].name} cannot be read")
        h, w = first.shape[:2]
        super().__init__(
            VideoMeta(
                path=str(folder),
                fps=float(rate),
                num_frames=len(files),
                duration_s=float(len(files) / rate),
                width=w,
                height=h,
                codec=files[0].suffix.lower().lstrip("."),
                rotation=0,
                backend="frames",
                container="frames",
                fps_exact=f"{rate.numerator}/{rate.denominator}",
            ),
            1 / rate,
        )
        self.files = files
        self.rate = rate

    def _to_rgb(self, item: Any) -> np.ndarray:
        return item

    def _decode(self, log: DecodeLog, end: list[int | None]) -> Iterator[SourceFrame]:
        shape = (self.meta.height, self.meta.width)
        for j, path in enumerate(self.files):
            t = float(j / self.rate)
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None or bgr.shape[:2] != shape:
                why = "cannot be read" if bgr is None else f"has size {bgr.shape[1]}x{bgr.shape[0]}"
                log.note_error(t, f"frame {path.name} {why}")
                # Keep counting readable frames after the damage, for the report.
                log.decoded += sum(1 for p in self.files[j + 1 :] if cv2.haveImageReader(str(p)))
                log.last_end_s = float(len(self.files) / self.rate)
                return
            log.decoded += 1
            log.kept += 1
            log.last_time_s = t
            log.last_end_s = float((j + 1) / self.rate)
            end[0] = j + 1  # ticks of 1/fps
            yield SourceFrame(j, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
