"""Where things are, written so that another process, node or working directory finds them.

A run records its store, annotations and checkpoints; Ray workers on other nodes open
them. A relative path means something else in each working directory, so every location
that leaves the process is made absolute first. URLs (``s3://...``) and names of bundled
annotations (``bundled:thumos14``) mean the same everywhere and stay as they are.
"""

from __future__ import annotations

from pathlib import Path


def is_url(location: str) -> bool:
    """``scheme://...`` (object storage, file://) rather than a local path."""
    return "://" in location


def absolute_location(location: str | Path) -> str:
    """A local path made absolute (``~`` expanded); URLs and ``bundled:`` names unchanged."""
    text = str(location)
    if is_url(text) or text.startswith("bundled:"):
        return text
    return str(Path(text).expanduser().absolute())
