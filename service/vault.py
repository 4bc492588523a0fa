"""The media vault: a versioned S3 bucket. Provider errors never leave this module.

This part opens the bucket and checks it; the file operations (upload,
download, pre-signed URLs) build on it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import boto3
import botocore.exceptions
from botocore.config import Config

from service.errors import ConfigurationError, Unavailable

log = logging.getLogger(__name__)


def make_client(endpoint_url: str | None, access_key: str | None = None, secret_key: str | None = None) -> Any:
    """An S3 client; credentials from the standard AWS chain unless given."""
    config = Config(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=5,
        read_timeout=60,
        max_pool_connections=32,
    )
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
        config=config,
    )


class Vault:
    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    def open(self, wait_seconds: float = 60.0) -> None:
        """Create the bucket if needed, turn versioning on, and check that it is.

        The service refuses to serve without versioning: an overwritten or
        deleted object would be gone, and "nothing is lost" would be a lie.
        """
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                self._ensure_versioned_bucket()
                return
            except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
                if isinstance(exc, botocore.exceptions.ClientError) and _code(exc) in ("AccessDenied", "403"):
                    raise ConfigurationError(f"access to bucket {self.bucket!r} was denied") from exc
                if time.monotonic() > deadline:
                    raise Unavailable(f"the object store is unreachable ({type(exc).__name__})") from exc
                time.sleep(0.5)

    def _ensure_versioned_bucket(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except botocore.exceptions.ClientError as exc:
            if _code(exc) not in ("404", "NoSuchBucket", "NotFound"):
                raise
            log.info("creating bucket %s", self.bucket)
            self.client.create_bucket(Bucket=self.bucket)
        status = self.client.get_bucket_versioning(Bucket=self.bucket).get("Status")
        if status != "Enabled":
            log.info("enabling versioning on bucket %s", self.bucket)
            self.client.put_bucket_versioning(Bucket=self.bucket, VersioningConfiguration={"Status": "Enabled"})
            status = self.client.get_bucket_versioning(Bucket=self.bucket).get("Status")
        if status != "Enabled":
            raise ConfigurationError(f"bucket {self.bucket!r} does not keep versions (status {status!r})")


def _code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
