"""What `talkit datasets inspect` reports about a Dataset, as plain data.

Kept apart from the CLI so the numbers can be tested and reused without rendering.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from talkit.datasets.model import Dataset


def duration_stats(dataset: Dataset) -> dict[str, float | int | None]:
    """Count, min, mean, median, max of instance durations (end - start) in seconds."""
    lengths = np.fromiter(
        (s.end_s - s.start_s for v in dataset.videos.values() for s in v.annotations),
        dtype=np.float64,
    )
    if lengths.size == 0:
        return {"count": 0, "min": None, "mean": None, "median": None, "max": None}
    return {
        "count": int(lengths.size),
        "min": float(lengths.min()),
        "mean": float(lengths.mean()),
        "median": float(np.median(lengths)),
        "max": float(lengths.max()),
    }


def summarize(dataset: Dataset, *, path: str | None = None) -> dict[str, Any]:
    """The JSON object of `inspect --json`.

    Keys: ``videos``, ``instances`` and ``classes`` (counts); ``subsets`` (subset as written
    -> {videos, instances, canonical}); ``problems`` (list of {kind, video_id, message});
    plus ``path``, ``name``, ``format``, ``eval_preset`` (the tIoU threshold preset its
    results are scored with, when known), ``class_names`` (in class order),
    ``problem_counts`` (kind -> count), ``instance_duration_s`` statistics and
    ``ambiguous`` (number of ambiguous intervals).
    """
    subsets = dataset.subset_counts()
    for name, counts in subsets.items():
        counts["canonical"] = dataset.canonical_split(name)  # type: ignore[assignment]
    problem_counts: dict[str, int] = {}
    for p in dataset.problems:
        problem_counts[p.kind] = problem_counts.get(p.kind, 0) + 1
    return {
        "path": path,
        "name": dataset.name,
        "format": dataset.source_format,
        "eval_preset": dataset.eval_preset,
        "videos": len(dataset.videos),
        "instances": dataset.num_instances,
        "classes": len(dataset.classes),
        "class_names": list(dataset.classes),
        "subsets": subsets,
        "instance_duration_s": duration_stats(dataset),
        "ambiguous": sum(len(v.ambiguous) for v in dataset.videos.values()),
        "problem_counts": problem_counts,
        "problems": [p.model_dump() for p in dataset.problems],
    }
