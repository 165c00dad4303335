"""Shared fixtures: paths to the real annotation files, and moto's S3 server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's S3 server on a free loopback port, one for the whole session."""
    pytest.importorskip("moto.server")
    from s3_helpers import moto_session

    yield from moto_session()


@pytest.fixture
def s3(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """A fresh bucket, and this process's AWS environment pointed at moto (this test only)."""
    from s3_helpers import aws_environment, new_bucket, set_environment

    home = tmp_path / "aws-home"
    home.mkdir()
    set_environment(monkeypatch, aws_environment(moto_endpoint, home))
    return new_bucket(moto_endpoint)
