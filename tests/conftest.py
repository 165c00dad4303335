"""Shared fixtures: paths to the real annotation files and a CLI runner."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TALKIT_SHARED", REPO.parent / "shared"))
DATA = SHARED / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real annotation files (../shared/data); tests that need them fail loudly if absent."""
    if not DATA.is_dir():
        pytest.fail(f"real annotation files not found at {DATA}; set TALKIT_SHARED")
    return DATA
