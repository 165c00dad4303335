"""Damaged objects of a store on S3-compatible storage (moto's server): the same errors."""

from __future__ import annotations

from typing import Any

import pytest
from cli_helpers import run_cli
from fault_helpers import outcome, read_api, write_store
from s3_helpers import admin_client

from talkit.store.errors import CorruptDataError


@pytest.mark.slow
def test_flipped_and_deleted_objects_on_s3_are_named(
    s3: Any, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    url = s3.url("feats")
    want = write_store(url)
    client = admin_client(s3.endpoint)
    chunks = s3.keys("feats/chunks/")
    assert chunks
    for i, key in enumerate(chunks[:6]):
        original = client.get_object(Bucket=s3.name, Key=key)["Body"].read()
        data = bytearray(original)
        data[(37 * i) % len(data)] ^= 0x04
        s3.put(key, bytes(data))
        assert outcome(lambda: read_api(url, want)) == "detected"
        s3.put(key, original)
    read_api(url, want)  # restored: reads back exactly

    client.delete_object(Bucket=s3.name, Key=chunks[0])
    with pytest.raises(CorruptDataError, match="its stored object is missing") as info:
        read_api(url, want)
    assert info.value.store == url and info.value.array is not None
    code, _, err = run_cli(capsys, "store", "verify", url)
    assert code == 1 and "error" not in err
    code, _, err = run_cli(capsys, "store", "export", url, str(tmp_path / "o"), "--format", "npy")
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and "damaged data in store s3://" in lines[0]
