"""S3-compatible object storage: URLs, the AWS configuration, one boto3 client per process.

Stores (through icechunk) and videos (through boto3) read the same configuration, so a
bucket that works for one works for the other. Everything comes from the standard AWS
environment and files, never from the command line:

- credentials: the usual chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
  ``AWS_PROFILE`` in ``~/.aws/credentials``/``config``, SSO, instance roles...);
- endpoint: ``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL``, the profile's ``services``
  section (``s3 = endpoint_url = ...``) or its ``endpoint_url``, in botocore's order;
- region: ``AWS_REGION``, ``AWS_DEFAULT_REGION``, the profile's ``region``; when none is
  set, the bucket's own region as S3 reports it;
- addressing: path style (``http://host/bucket/key``) whenever an endpoint is configured
  (MinIO, Ceph, moto...), unless the profile's ``s3 = addressing_style = virtual`` says
  otherwise.

icechunk 1.1's ``s3_storage(from_env=True)`` runs the Rust AWS SDK's own chain. Checked
against moto: it reads the credentials (variables and profiles), ``AWS_ENDPOINT_URL``,
``AWS_ENDPOINT_URL_S3`` and a profile's ``endpoint_url``; the addressing style is only an
explicit argument (``force_path_style``); and an unreachable endpoint is retried for about
30 s before failing with a Rust trace. So talkit resolves endpoint, region and style here
with botocore (the same answers boto3 gets), passes them explicitly, and checks the bucket
once per process with boto3 (:func:`check_bucket`) so that a wrong endpoint, a missing
bucket or missing credentials fail in seconds with one line that says what to fix.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from talkit.errors import InputError, TalkitError

if TYPE_CHECKING:
    from botocore.client import BaseClient

SCHEME = "s3://"
CONNECT_TIMEOUT_S = 5
READ_TIMEOUT_S = 60
_lock = threading.RLock()
_clients: dict[tuple[Any, ...], BaseClient] = {}
_checked: dict[tuple[Any, ...], str | None] = {}
_configs: dict[tuple[Any, ...], S3Config] = {}


def is_s3_url(text: str | os.PathLike[str] | None) -> bool:
    """Whether ``text`` is an ``s3://`` URL (anything else is a local path)."""
    return isinstance(text, str) and text.startswith(SCHEME)


def split_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/key`` -> ``("bucket", "some/key")`` (the key may be empty)."""
    if not is_s3_url(url):
        raise InputError(f"{url!r} is not an s3:// URL", hint="write s3://BUCKET/PREFIX")
    bucket, _, key = url.removeprefix(SCHEME).partition("/")
    if not bucket:
        raise InputError(f"{url!r} names no bucket", hint="write s3://BUCKET/PREFIX")
    return bucket, key


def join_url(bucket: str, key: str) -> str:
    return f"{SCHEME}{bucket}/{key}"


@dataclass(frozen=True)
class S3Config:
    """Endpoint, region and addressing style, as the AWS environment and profile set them."""

    endpoint_url: str | None
    region: str | None
    addressing_style: str  # "path", "virtual" or "auto"
    profile: str | None

    @property
    def where(self) -> str:
        """Where requests go, for messages."""
        return self.endpoint_url or "AWS S3"


def _env_key() -> tuple[tuple[str, str], ...]:
    """Everything a client depends on: the AWS variables and the home with ~/.aws in it."""
    items = [(k, v) for k, v in os.environ.items() if k.startswith("AWS_")]
    return (*sorted(items), ("HOME", os.environ.get("HOME", "")))


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes")


def _require_boto() -> None:
    try:
        import boto3  # noqa: F401
    except ImportError as exc:
        raise InputError(
            "s3:// URLs need boto3, which is not installed",
            hint="pip install 'talkit[s3]' (or pip install boto3)",
        ) from exc


def _botocore_session() -> Any:
    _require_boto()
    import botocore.exceptions
    import botocore.session

    session = botocore.session.Session()
    try:
        session.get_scoped_config()
    except botocore.exceptions.ProfileNotFound as exc:
        raise InputError(
            f"AWS profile {session.profile!r} (from AWS_PROFILE) is not in the AWS config files",
            hint="add it to ~/.aws/config and ~/.aws/credentials, or unset AWS_PROFILE",
        ) from exc
    return session


def resolve_config() -> S3Config:
    """The S3 settings of this process's AWS environment (see module docstring).

    Cached per process and environment: reading the AWS files costs ~0.1 s.
    """
    key = (os.getpid(), _env_key())
    with _lock:
        found = _configs.get(key)
    if found is None:
        found = _resolve_config()
        with _lock:
            _configs[key] = found
    return found


def _resolve_config() -> S3Config:
    session = _botocore_session()
    scoped = session.get_scoped_config()
    env = os.environ
    ignore = _truthy(env.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "")) or _truthy(
        scoped.get("ignore_configured_endpoint_urls", "")
    )
    endpoint: str | None = None
    if not ignore:
        services = scoped.get("services")
        service_cfg: dict[str, Any] = {}
        if services:
            service_cfg = session.full_config.get("services", {}).get(services, {}).get("s3", {})
        endpoint = (
            env.get("AWS_ENDPOINT_URL_S3")
            or env.get("AWS_ENDPOINT_URL")
            or service_cfg.get("endpoint_url")
            or scoped.get("endpoint_url")
            or None
        )
    region = env.get("AWS_REGION") or session.get_config_variable("region") or None
    s3_section = scoped.get("s3")
    style = s3_section.get("addressing_style") if isinstance(s3_section, dict) else None
    if style not in ("path", "virtual", "auto"):
        style = "path" if endpoint else "auto"
    return S3Config(endpoint, region, style, session.profile)


def client() -> BaseClient:
    """This process's boto3 S3 client for the current AWS environment (thread-safe, cached)."""
    key = (os.getpid(), _env_key())
    with _lock:
        found = _clients.get(key)
        if found is not None:
            return found
        cfg = resolve_config()
        import boto3
        from botocore.config import Config

        made = boto3.session.Session().client(
            "s3",
            endpoint_url=cfg.endpoint_url,
            region_name=cfg.region,
            config=Config(
                s3={"addressing_style": cfg.addressing_style},
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=CONNECT_TIMEOUT_S,
                read_timeout=READ_TIMEOUT_S,
                max_pool_connections=32,
            ),
        )
        _clients[key] = made
        return made


def explain(exc: BaseException, url: str) -> tuple[str, str]:
    """(what went wrong, what to do) for a boto3/botocore error on ``url``: one line each."""
    import botocore.exceptions as bx

    where = resolve_config().where
    bucket = split_url(url)[0] if is_s3_url(url) else url
    if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError):
        return (
            f"no AWS credentials found for {url}",
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE to a profile "
            "with credentials in ~/.aws/credentials",
        )
    if isinstance(exc, bx.EndpointConnectionError | bx.ConnectTimeoutError | bx.ReadTimeoutError):
        return (
            f"cannot reach the object store at {where} for {url}",
            "check AWS_ENDPOINT_URL (or the profile's endpoint_url) and that the server is up",
        )
    if isinstance(exc, bx.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("NoSuchBucket",) or (code == "404" and exc.operation_name == "HeadBucket"):
            return (
                f"bucket {bucket!r} does not exist at {where}",
                "create the bucket first, or fix the bucket name in the URL",
            )
        if code in ("NoSuchKey", "404"):
            return (f"no object at {url}", "check the URL (keys are case-sensitive)")
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "AccessDenied"):
            return (
                f"access to {url} at {where} was denied ({code or status})",
                "check the AWS credentials (AWS_ACCESS_KEY_ID/AWS_PROFILE) and the bucket policy",
            )
        message = str(error.get("Message", "")).strip() or str(exc)
        return (f"S3 error on {url} at {where}: {code} {message}".strip(), "see the message")
    if isinstance(exc, bx.BotoCoreError):
        return (f"S3 request for {url} failed: {exc}", "check the AWS configuration")
    if isinstance(exc, TruncatedDownloadError):
        return (f"download of {url} ended early: {exc}", "check the network; re-run to retry")
    return (f"S3 request for {url} failed: {type(exc).__name__}: {exc}", "see the message")


def raise_as(error: type[TalkitError], exc: BaseException, url: str) -> TalkitError:
    """A talkit error of class ``error`` describing ``exc`` (to ``raise ... from exc``)."""
    message, hint = explain(exc, url)
    return error(message, hint=hint)


def check_bucket(url: str, error: type[TalkitError] = InputError) -> str | None:
    """Fail fast, in one line, if ``url``'s bucket cannot be used; return its region.

    One HEAD request per bucket and process (cached once it succeeds). A 403 is let
    through: credentials that may read a prefix but not list the bucket are common, and
    the real request will say if access is really denied. The region is the one
    configured, else the one S3 reports for the bucket.
    """
    import botocore.exceptions as bx

    bucket, _ = split_url(url)
    key = (os.getpid(), _env_key(), bucket)
    with _lock:
        if key in _checked:
            return _checked[key]
    cfg = resolve_config()
    region = cfg.region
    try:
        response = client().head_bucket(Bucket=bucket)
        headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        region = region or headers.get("x-amz-bucket-region")
    except bx.ClientError as exc:
        headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status in (301, 403):
            region = region or headers.get("x-amz-bucket-region")
        else:
            raise raise_as(error, exc, url) from exc
    except bx.BotoCoreError as exc:
        raise raise_as(error, exc, url) from exc
    with _lock:
        _checked[key] = region
    return region


class TruncatedDownloadError(Exception):
    """An object download that kept ending early."""


def errors() -> tuple[type[BaseException], ...]:
    """The exceptions S3 calls here raise for S3 problems (``except s3.errors() as exc``)."""
    import botocore.exceptions as bx

    return (bx.BotoCoreError, bx.ClientError, TruncatedDownloadError)


def list_objects(url: str) -> Iterator[tuple[str, int, str]]:
    """(key, size, etag) of every object under ``url``'s prefix, in key order.

    The prefix is taken as a folder: ``s3://b/videos`` lists ``videos/...``, not
    ``videos2/...``. ETags come without their quotes.
    """
    bucket, prefix = split_url(url)
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    pages = client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    for page in pages:
        for obj in page.get("Contents", []):
            yield obj["Key"], int(obj["Size"]), str(obj["ETag"]).strip('"')


def head_object(url: str) -> tuple[int, str]:
    """(size, etag) of the object at ``url``."""
    bucket, key = split_url(url)
    response = client().head_object(Bucket=bucket, Key=key)
    return int(response["ContentLength"]), str(response["ETag"]).strip('"')


def download(url: str, target: str | os.PathLike[str], attempts: int = 3) -> tuple[int, str]:
    """Copy the object at ``url`` to a local file; return the (size, etag) of what was copied.

    One GET streamed to disk. A stream that breaks is fetched again, on condition that the
    object is still the one first seen (``IfMatch``), so the size and ETag returned always
    describe the bytes on disk.
    """
    import botocore.exceptions as bx

    bucket, key = split_url(url)
    etag: str | None = None
    for attempt in range(attempts):
        extra = {"IfMatch": etag} if etag else {}
        response = client().get_object(Bucket=bucket, Key=key, **extra)
        etag = str(response["ETag"]).strip('"')
        size = int(response["ContentLength"])
        body = response["Body"]
        try:
            with open(target, "wb") as fh:
                shutil.copyfileobj(body, fh, 1 << 20)
        except (bx.ResponseStreamingError, bx.IncompleteReadError, bx.ReadTimeoutError):
            if attempt + 1 == attempts:
                raise
            continue
        finally:
            body.close()
        written = os.path.getsize(target)
        if written == size:
            return size, etag
    raise TruncatedDownloadError(f"got {written} of {size} bytes in {attempts} attempts")


def delete_prefix(url: str) -> int:
    """Delete every object under ``url``'s prefix (a store this process just created)."""
    bucket, _ = split_url(url)
    keys = [key for key, _size, _etag in list_objects(url)]
    for start in range(0, len(keys), 1000):
        batch = [{"Key": k} for k in keys[start : start + 1000]]
        client().delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
    return len(keys)
