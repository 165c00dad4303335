"""Small builders shared by the tests/test_datasets*.py files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from talkit.datasets import Dataset


def write_json(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def hacs_doc() -> dict[str, Any]:
    """A tiny file in the HACS Segments v1.1.1 layout (numeric times, url, duration)."""
    return {
        "version": "HACS Segments v1.1.1",
        "taxonomy": [
            {"nodeId": 1, "nodeName": "Root", "parentId": None, "parentName": None},
            {"nodeId": 2, "nodeName": "Sports", "parentId": 1, "parentName": "Root"},
            {"nodeId": 3, "nodeName": "Archery", "parentId": 2, "parentName": "Sports"},
            {"nodeId": 4, "nodeName": "Zumba", "parentId": 2, "parentName": "Sports"},
            {"nodeId": 5, "nodeName": "Ballet", "parentId": 2, "parentName": "Sports"},
        ],
        "database": {
            "--0edUL8zmA": {
                "subset": "training",
                "duration": 92.18,
                "url": "https://www.youtube.com/watch?v=--0edUL8zmA",
                "annotations": [
                    {"label": "Zumba", "segment": [6.1, 45.25]},
                    {"label": "Archery", "segment": [50, 92.184]},
                ],
            },
            "-1qtwoJ3p5k": {
                "subset": "validation",
                "duration": 120.0,
                "url": "https://www.youtube.com/watch?v=-1qtwoJ3p5k",
                "annotations": [{"label": "Ballet", "segment": [0.0, 119.5]}],
            },
            "-2EozKk4TaQ": {
                "subset": "testing",
                "duration": 33.3,
                "url": "https://www.youtube.com/watch?v=-2EozKk4TaQ",
                "annotations": [],
            },
        },
    }


def write_class_files(directory: Path) -> dict[str, list[str]]:
    """THUMOS14 official per-class files; returns file name -> its lines."""
    files = {
        "BaseballPitch_val.txt": [
            "video_validation_0000051 67.5 75.9",
            "video_validation_0000051 85.9 90.6",
            "video_validation_0000052 2.3 6.8",
        ],
        "Diving_val.txt": ["video_validation_0000052 10.25 13.0"],
        "CliffDiving_test.txt": ["video_test_0000004 0.2 1.1", "video_test_0000004 20.0 21.7"],
        "Diving_test.txt": ["video_test_0000004 0.2 1.1"],
        "Billiards_test.txt": [],
        "Ambiguous_test.txt": ["video_test_0000004  5.0 6.5"],
    }
    directory.mkdir(parents=True, exist_ok=True)
    for name, lines in files.items():
        # the official files use a mix of single and double spaces and a trailing newline
        (directory / name).write_text("".join(f"{ln}\n" for ln in lines), encoding="utf-8")
    return files


def video_facts(dataset: Dataset) -> dict[str, tuple[Any, ...]]:
    """Everything a round trip must keep, per video, in comparable form."""
    return {
        vid: (
            v.subset,
            v.duration_s,
            v.fps,
            tuple((s.label, s.start_s, s.end_s) for s in v.annotations),
            tuple(v.ambiguous),
        )
        for vid, v in dataset.videos.items()
    }
