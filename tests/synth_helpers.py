"""Independent checkers for the synthetic generators' ground truth.

Nothing here imports the renderer: the video checker sees only decoded pixels and the
class hues the generator published in synthetic.json, the probes see only features and
the annotation model. If the generator drew the wrong thing, these catch it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np
import torch
from scipy.stats import rankdata

from talkit.datasets.model import Dataset


def decode(path: Path) -> tuple[list[np.ndarray], np.ndarray]:
    """All frames (RGB uint8) and their presentation times in seconds."""
    frames, times = [], []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            times.append(float(frame.time))
    return frames, np.asarray(times)


def files_under_malloc_perturbation(
    code: str, tmp_path: Path, perturbs: tuple[int | None, ...] = (None, 1, 7)
) -> list[str]:
    """Run ``code`` (which writes files under the directory ``OUT``) in fresh interpreters
    whose fresh allocations glibc fills with a different byte each time (MALLOC_PERTURB_);
    return one digest of everything each run wrote. A writer that reads memory it never
    wrote gives different digests: in-process repeats see such reads only now and then.
    """
    digests = []
    for i, perturb in enumerate(perturbs):
        out = tmp_path / f"run{i}"
        env = {k: v for k, v in os.environ.items() if k != "MALLOC_PERTURB_"}
        if perturb is not None:
            env["MALLOC_PERTURB_"] = str(perturb)
        script = f"from pathlib import Path\nOUT = Path({str(out)!r})\n{code}"
        subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=120)
        h = hashlib.sha256()
        for f in sorted(p for p in out.rglob("*") if p.is_file()):
            h.update(str(f.relative_to(out)).encode() + b"\0" + f.read_bytes())
        digests.append(h.hexdigest())
    return digests


@dataclass
class Sighting:
    """What a colour threshold finds in one frame."""

    class_idx: int | None  # nearest class hue, None when no object
    centre: tuple[float, float] | None
    pixels: int


def detect(frame: np.ndarray, class_hues: list[float]) -> Sighting:
    """Find the saturated object (the background and floor are never this saturated)."""
    h, w = frame.shape[:2]
    hsv = cv2.cvtColor(frame, cv2.COLOR_RGB2HSV_FULL)
    mask = (hsv[..., 1] > 150) & (hsv[..., 2] > 100)
    n = int(mask.sum())
    radius = 0.16 * min(w, h)
    if n < 0.5 * radius**2:
        return Sighting(None, None, n)
    ys, xs = np.nonzero(mask)
    ang = hsv[..., 0][mask].astype(np.float64) / 256 * 2 * np.pi
    hue = (np.arctan2(np.sin(ang).mean(), np.cos(ang).mean()) / (2 * np.pi)) % 1.0
    dist = [min(abs(hue - c), 1 - abs(hue - c)) for c in class_hues]
    return Sighting(int(np.argmin(dist)), (float(xs.mean()), float(ys.mean())), n)


def motion_states(
    frames: list[np.ndarray], class_hues: list[float]
) -> list[tuple[str, int | None]]:
    """Per frame: ("moving"|"still"|"absent", class). Moving = the centroid travels more
    than ~1 px (scaled with frame size) over the previous and next frames together."""
    sightings = [detect(f, class_hues) for f in frames]
    h, w = frames[0].shape[:2]
    thresh = max(1.0, 0.02 * min(w, h))
    out: list[tuple[str, int | None]] = []
    for i, s in enumerate(sightings):
        if s.centre is None:
            out.append(("absent", None))
            continue
        travel = 0.0
        for j in (i - 1, i + 1):
            if 0 <= j < len(sightings) and sightings[j].centre is not None:
                travel += float(np.hypot(*np.subtract(sightings[j].centre, s.centre)))
        out.append(("moving" if travel > thresh else "still", s.class_idx))
    return out


def snippet_labels(dataset: Dataset, video_id: str, stamps: np.ndarray) -> np.ndarray:
    """Class index of the instance covering each snippet's centre; len(classes) = none."""
    index = dataset.class_index()
    centre = stamps.mean(axis=1)
    y = np.full(len(stamps), len(dataset.classes))
    for seg in dataset.videos[video_id].annotations:
        y[(centre >= seg.start_s) & (centre < seg.end_s)] = index[seg.label]
    return y


def auc(positive: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC by the rank-sum (Mann-Whitney) formula."""
    r = rankdata(score)
    n1 = int(positive.sum())
    n0 = len(positive) - n1
    return float((r[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def train_linear_probe(x: np.ndarray, y: np.ndarray, num_out: int) -> torch.nn.Linear:
    """Multinomial logistic regression (L2-regularised) on single snippets, full-batch L-BFGS."""
    torch.manual_seed(0)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    lin = torch.nn.Linear(x.shape[1], num_out)
    opt = torch.optim.LBFGS(
        lin.parameters(), max_iter=40, history_size=10, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(lin(xt), yt) + 1e-3 * lin.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return lin


def smooth_over_time(logp: torch.Tensor, k: int) -> torch.Tensor:
    """The simplest temporal model: average each snippet's log-probabilities with its
    k-1 neighbours (a fixed 1-D box convolution over time)."""
    x = torch.nn.functional.pad(logp.T[None], (k // 2, k // 2), mode="replicate")
    return torch.nn.functional.avg_pool1d(x, k, 1)[0].T
