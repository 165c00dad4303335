"""Shared fixtures: the real annotation files (shipped in the package) and a CLI runner."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from talkit.datasets.bundled import BUNDLED


def pytest_configure(config: pytest.Config) -> None:
    """CI sets TALKIT_TEST_INSTALLED=1: then the package under test must be the installed wheel."""
    if os.environ.get("TALKIT_TEST_INSTALLED") == "1":
        import talkit

        where = Path(talkit.__file__).resolve()
        if "site-packages" not in where.parts:
            raise pytest.UsageError(
                f"TALKIT_TEST_INSTALLED=1, but talkit is imported from {where}, not from an "
                "installed wheel: run the tests outside the checkout"
            )


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The folder of the real annotation files talkit ships (thumos14/, thumos14_wtalc/, ...)."""
    return BUNDLED["thumos14"].path.parents[1]
