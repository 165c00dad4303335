"""Fixtures of the fault-injection tests: small stores written once per module.

Each test damages files of a store and restores them before the next (``flipped``), so a
module can share one store; tests that delete or truncate files work on their own copy.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fault_helpers import Expected, write_store


@pytest.fixture(scope="module")
def icechunk_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Expected]:
    """A small icechunk store of this talkit (checksummed chunks), shared by a module."""
    path = tmp_path_factory.mktemp("icechunk") / "store"
    return path, write_store(path)


@pytest.fixture(scope="module")
def zarr_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Expected]:
    """The same videos in a plain zarr v3 store (``engine="zarr"``), shared by a module."""
    path = tmp_path_factory.mktemp("zarr") / "store"
    return path, write_store(path, engine="zarr")
