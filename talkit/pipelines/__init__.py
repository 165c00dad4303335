"""talkit.pipelines: extraction on Ray into a feature store, with resume and failure records.

    from talkit.pipelines import ExtractJob, load_extract_config, plan_videos, run_extraction

    job = ExtractJob(plan=plan_videos("videos/"), store="feats.store", dataset="thumos14",
                     config=load_extract_config("thumos14_i3d", {"checkpoints": {...}}))
    report = run_extraction(job)

CLI: ``talkit extract`` and ``talkit demo`` (talkit/pipelines/cli.py).
"""

from __future__ import annotations

import importlib
from typing import Any

# Lazy: `talkit --help` should not import Ray, torch or the store to list commands.
_EXPORTS = {
    "ExtractConfig": "talkit.pipelines.config",
    "load_extract_config": "talkit.pipelines.config",
    "Failure": "talkit.pipelines.failures",
    "TooManyFailuresError": "talkit.pipelines.failures",
    "RunStoppedError": "talkit.pipelines.failures",
    "SystematicFailureError": "talkit.pipelines.failures",
    "SetupFailureError": "talkit.pipelines.failures",
    "WorkerDiedError": "talkit.pipelines.failures",
    "Plan": "talkit.pipelines.plan",
    "VideoItem": "talkit.pipelines.plan",
    "plan_videos": "talkit.pipelines.plan",
    "RichProgress": "talkit.pipelines.progress",
    "RunObserver": "talkit.pipelines.progress",
    "RunReport": "talkit.pipelines.report",
    "VideoDone": "talkit.pipelines.report",
    "Fingerprint": "talkit.pipelines.resume",
    "fingerprint": "talkit.pipelines.resume",
    "ExtractJob": "talkit.pipelines.run",
    "SpecMismatchError": "talkit.pipelines.run",
    "run_extraction": "talkit.pipelines.run",
    "ExtractWorker": "talkit.pipelines.worker",
    "NoSnippetsError": "talkit.pipelines.worker",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'talkit.pipelines' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


__all__ = [
    "ExtractConfig",
    "ExtractJob",
    "ExtractWorker",
    "Failure",
    "Fingerprint",
    "NoSnippetsError",
    "Plan",
    "RichProgress",
    "RunObserver",
    "RunReport",
    "RunStoppedError",
    "SetupFailureError",
    "SpecMismatchError",
    "SystematicFailureError",
    "TooManyFailuresError",
    "VideoDone",
    "VideoItem",
    "WorkerDiedError",
    "fingerprint",
    "load_extract_config",
    "plan_videos",
    "run_extraction",
]
