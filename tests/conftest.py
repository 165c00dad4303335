"""Shared fixtures: the real annotation files (shipped in the package) and a CLI runner."""

from __future__ import annotations

from pathlib import Path

import pytest

from talkit.datasets.bundled import BUNDLED


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The folder of the real annotation files talkit ships (thumos14/, thumos14_wtalc/, ...)."""
    return BUNDLED["thumos14"].path.parents[1]
