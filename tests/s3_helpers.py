"""moto's S3 server for the object-storage tests: the server, the AWS environment, buckets.

The server is real (moto's HTTP server on a loopback port, in a thread of the test
process); talkit reaches it through the standard AWS environment variables only, as it
would reach MinIO or AWS. The fixtures that use these live in conftest.py.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ACCESS_KEY = "talkit-test-key"
SECRET_KEY = "talkit-test-secret"


def start_moto() -> tuple[Any, str]:
    """Start moto's S3 server on a free loopback port: (server, endpoint URL)."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


def aws_environment(endpoint: str, home: Path) -> dict[str, str]:
    """AWS variables that point at ``endpoint`` with test credentials and no ~/.aws files.

    Config and credential files are redirected to ``home`` (empty unless a test writes
    them), and the EC2 metadata lookup is off, so nothing of the machine's own AWS setup
    leaks into a test.
    """
    return {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(home / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def set_environment(monkeypatch: Any, env: dict[str, str]) -> None:
    """Replace every AWS_* variable of this process by ``env`` (undone by ``monkeypatch``)."""
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def admin_client(endpoint: str) -> Any:
    """A boto3 client of the test itself (explicit settings, independent of talkit's)."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )


@dataclass
class Bucket:
    """A fresh bucket on the moto server."""

    endpoint: str
    name: str

    def url(self, key: str = "") -> str:
        return f"s3://{self.name}/{key}"

    def upload_dir(self, folder: Path, prefix: str) -> list[str]:
        """Upload every file of ``folder`` (not recursive) under ``prefix``; their URLs."""
        client = admin_client(self.endpoint)
        urls = []
        for path in sorted(folder.iterdir()):
            if path.is_file():
                key = f"{prefix.rstrip('/')}/{path.name}"
                client.upload_file(str(path), self.name, key)
                urls.append(self.url(key))
        return urls

    def upload_file(self, path: Path, key: str) -> str:
        admin_client(self.endpoint).upload_file(str(path), self.name, key)
        return self.url(key)

    def put(self, key: str, data: bytes) -> str:
        admin_client(self.endpoint).put_object(Bucket=self.name, Key=key, Body=data)
        return self.url(key)

    def keys(self, prefix: str = "") -> list[str]:
        pages = admin_client(self.endpoint).get_paginator("list_objects_v2")
        return [
            o["Key"]
            for p in pages.paginate(Bucket=self.name, Prefix=prefix)
            for o in p.get("Contents", [])
        ]


def new_bucket(endpoint: str) -> Bucket:
    name = f"talkit-{uuid.uuid4().hex[:12]}"
    admin_client(endpoint).create_bucket(Bucket=name)
    return Bucket(endpoint, name)


def moto_session() -> Iterator[str]:
    """Generator body of the session fixture: the endpoint while the server runs."""
    server, endpoint = start_moto()
    try:
        yield endpoint
    finally:
        server.stop()


def embedded_ray_with_aws(
    endpoint: str, home: Path, extra_env: dict[str, str] | None = None
) -> Iterator[str]:
    """An embedded Ray (2 CPUs) whose workers see moto's AWS environment; yields its address.

    Ray workers inherit the driver's environment at ``ray.init``, so a Ray started by
    another module without these variables is shut down first.
    """
    import pytest
    import ray

    with pytest.MonkeyPatch.context() as mp:
        set_environment(mp, aws_environment(endpoint, home))
        for key, value in (extra_env or {}).items():
            mp.setenv(key, value)
        if ray.is_initialized():
            ray.shutdown()
        ctx = ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ctx.address_info["address"]
    finally:
        ray.shutdown()
