"""Shared fixtures: the real annotation files (shipped in the package), and moto's S3 server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


@pytest.fixture(scope="module")
def ray_here() -> Iterator[None]:
    """An embedded Ray (2 CPUs) for this module, or the one a previous module started."""
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    if started:
        ray.shutdown()


@pytest.fixture
def two_torch_threads() -> Iterator[None]:
    """Two torch threads for the test, the caller's count restored after it (modules
    that compare networks on this 2-core machine use it with ``usefixtures``)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)
