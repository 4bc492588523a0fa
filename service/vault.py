"""The media vault: a versioned S3 bucket. Provider errors never leave this module."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import boto3
import botocore.exceptions
from botocore.config import Config

from service.errors import ConfigurationError, NotFound, Unavailable
from service.pipeline import prefetch
from service.tally import Tally

log = logging.getLogger(__name__)
PART_SIZE = 8 * 1024 * 1024  # S3 multipart parts; also the most a writer buffers
MAX_PARTS_IN_FLIGHT = 2  # parts uploading while the next one fills: bounded memory, overlapped I/O
READ_CHUNK = 1024 * 1024


# Media types a browser shows without running anything (checked without parameters).
INERT_TYPES = frozenset(
    {"text/plain", "text/csv", "text/markdown", "application/pdf", "application/json", "application/zip"}
)
INERT_PREFIXES = ("image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "audio/", "video/")


def inert(mime_type: str) -> bool:
    base = mime_type.split(";", 1)[0].strip().lower()
    return base in INERT_TYPES or base.startswith(INERT_PREFIXES)


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
        # Bytes this process sent to S3 ("in") and read from it ("out");
        # presigned downloads go from S3 to the caller and are not here.
        self.traffic = Tally()

    def open(self, wait_seconds: float = 60.0) -> None:
        """Create the bucket if needed, turn versioning on, and check that it is.

        The service refuses to serve without versioning: an overwritten or
        deleted object would be gone, and "nothing is lost" would be a lie.
        """
        deadline = time.monotonic() + wait_seconds
        endpoint = self.client.meta.endpoint_url
        while True:
            try:
                self._ensure_versioned_bucket()
                return
            except (botocore.exceptions.NoCredentialsError, botocore.exceptions.PartialCredentialsError):
                raise ConfigurationError(
                    f"no S3 credentials for {endpoint}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                    "(or another AWS credential source)"
                ) from None
            except botocore.exceptions.ClientError as exc:
                code = _code(exc)
                if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"):
                    raise ConfigurationError(f"S3 at {endpoint} refused the credentials ({code})") from None
                if time.monotonic() > deadline:
                    raise Unavailable(f"S3 at {endpoint} failed for {wait_seconds:.0f} s ({code})") from None
            except botocore.exceptions.BotoCoreError as exc:
                if time.monotonic() > deadline:
                    raise Unavailable(
                        f"S3 at {endpoint} did not answer within {wait_seconds:.0f} s (TM_STORE_WAIT_SECONDS): "
                        f"{type(exc).__name__}; is the server running, at that address?"
                    ) from None
            time.sleep(0.5)

    def writer(self, key: str, content_type: str) -> ObjectWriter:
        return ObjectWriter(self, key, content_type)

    def read(self, key: str, version_id: str, chunk_size: int = READ_CHUNK) -> Iterator[bytes]:
        """The object's bytes, fetched from S3 a few chunks ahead of the caller.

        The object is opened before the first chunk is asked for, so a
        missing object fails here, not in the middle of a stream.
        """
        return self.chunks(self.open_object(key, version_id), chunk_size)

    def open_object(self, key: str, version_id: str) -> Any:
        """The object's body: requested (one round trip), not read yet. Close it if unused."""
        with s3_errors("download"):
            return self.client.get_object(Bucket=self.bucket, Key=key, VersionId=version_id)["Body"]

    def chunks(self, body: Any, chunk_size: int = READ_CHUNK) -> Iterator[bytes]:
        """An opened body's bytes, read a few chunks ahead; the body is closed at the end."""

        def chunks() -> Iterator[bytes]:
            try:
                while True:
                    with s3_errors("download"):
                        data = body.read(chunk_size)
                    if not data:
                        return
                    self.traffic.add("out", len(data))
                    yield data
            finally:
                body.close()

        return prefetch(chunks())

    def put(self, key: str, data: bytes, content_type: str) -> StoredObject:
        with s3_errors("upload"):
            reply = self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        self.traffic.add("in", len(data))
        return StoredObject(key, reply["VersionId"])

    def presign(self, key: str, version_id: str, seconds: int, mime_type: str = "") -> str:
        """A time-limited GET URL. Types a browser would run or render as a page
        (HTML, SVG, XML, scripts: a caller's upload) download as attachments
        instead, so they never execute on the bucket's origin."""
        params = {"Bucket": self.bucket, "Key": key, "VersionId": version_id}
        if not inert(mime_type):
            params |= {"ResponseContentDisposition": "attachment", "ResponseContentType": "application/octet-stream"}
        with s3_errors("pre-signing"):
            url: str = self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=seconds)
        return url

    def size_of(self, key: str, version_id: str) -> int:
        with s3_errors("verify"):
            size: int = self.client.head_object(Bucket=self.bucket, Key=key, VersionId=version_id)["ContentLength"]
        return size

    # -- for the sweeper only (service/sweeper.py): nothing else deletes ------

    def list_versions(self, prefix: str) -> Iterator[list[ListedVersion]]:
        """Every object version under `prefix`, a page (up to 1,000) at a time; delete markers left out."""
        paginator = self.client.get_paginator("list_object_versions")
        with s3_errors("listing"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                yield [
                    ListedVersion(v["Key"], v["VersionId"], v["LastModified"])
                    for v in page.get("Versions", [])
                    if v.get("VersionId") not in (None, "null")
                ]

    def list_multipart_uploads(self, prefix: str) -> Iterator[ListedVersion]:
        """Multipart uploads begun and neither completed nor aborted (version_id: the upload id)."""
        paginator = self.client.get_paginator("list_multipart_uploads")
        with s3_errors("listing"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for upload in page.get("Uploads", []):
                    yield ListedVersion(upload["Key"], upload["UploadId"], upload["Initiated"])

    def latest(self, key: str) -> bytes | None:
        """The newest version of a small object, or None when there is none."""
        try:
            with s3_errors("reading"):
                body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except NotFound:
            return None
        with body:
            data: bytes = body.read()
        return data

    def delete_versions(self, objects: list[StoredObject]) -> set[StoredObject]:
        """Delete these object versions for good; returns those that could not be deleted."""
        failed: set[StoredObject] = set()
        for start in range(0, len(objects), 1000):  # DeleteObjects takes up to 1,000 keys
            batch = objects[start : start + 1000]
            try:
                reply = self.client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": o.key, "VersionId": o.version_id} for o in batch], "Quiet": True},
                )
            except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
                log.warning("could not delete %d object versions: %s", len(batch), type(exc).__name__)
                failed.update(batch)
                continue
            for error in reply.get("Errors", []):
                if error.get("Code") not in ("NoSuchKey", "NoSuchVersion"):  # already gone is deleted
                    log.warning("could not delete %s: %s", error.get("Key"), error.get("Code"))
                    failed.add(StoredObject(error.get("Key", ""), error.get("VersionId", "")))
        return failed

    def abort_multipart(self, key: str, upload_id: str) -> bool:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except botocore.exceptions.ClientError as exc:
            if _code(exc) in ("NoSuchUpload", "404"):
                return False  # finished or aborted meanwhile
            log.warning("could not abort multipart upload of %s: %s", key, _code(exc))
            return False
        except botocore.exceptions.BotoCoreError as exc:
            log.warning("could not abort multipart upload of %s: %s", key, type(exc).__name__)
            return False
        return True

    def ping(self) -> None:
        """Unavailable unless the bucket answers (the health check's probe, each second: it logs nothing)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError, OSError) as exc:
            raise Unavailable(f"the bucket does not answer ({type(exc).__name__})") from None

    def _ensure_versioned_bucket(self) -> None:
        bucket = self.bucket
        exists = True
        with self._denied(
            f"these credentials may not read bucket {bucket!r}: grant s3:ListBucket on it, or name another TM_S3_BUCKET"
        ):
            try:
                self.client.head_bucket(Bucket=bucket)
            except botocore.exceptions.ClientError as exc:
                if _code(exc) == "403":
                    # A HEAD answer has no body to say why; a GET's error names the cause
                    # (a wrong key or signature, or AccessDenied).
                    self.client.get_bucket_versioning(Bucket=bucket)
                elif _code(exc) in ("404", "NoSuchBucket", "NotFound"):
                    exists = False
                else:
                    raise
        if not exists:
            log.info("creating bucket %s", bucket)
            with self._denied(
                f"bucket {bucket!r} does not exist and these credentials may not create it: create it with "
                "versioning on, grant s3:CreateBucket, or name another TM_S3_BUCKET"
            ):
                self.client.create_bucket(Bucket=bucket)
        with self._denied(
            f"these credentials may not read the versioning of bucket {bucket!r}: grant s3:GetBucketVersioning"
        ):
            status = self.client.get_bucket_versioning(Bucket=bucket).get("Status")
        if status != "Enabled":
            log.info("enabling versioning on bucket %s", bucket)
            with self._denied(
                f"versioning is off on bucket {bucket!r} and these credentials may not turn it on: "
                f"`aws s3api put-bucket-versioning --bucket {bucket} --versioning-configuration Status=Enabled`, "
                "or grant s3:PutBucketVersioning"
            ):
                self.client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
            status = self.client.get_bucket_versioning(Bucket=bucket).get("Status")
        if status != "Enabled":
            raise ConfigurationError(f"bucket {self.bucket!r} does not keep versions (status {status!r})")

    @contextmanager
    def _denied(self, why: str) -> Iterator[None]:
        """One start-up step: the credentials lacking its permission is a configuration error saying which."""
        try:
            yield
        except botocore.exceptions.ClientError as exc:
            if _code(exc) in ("AccessDenied", "403"):
                raise ConfigurationError(f"S3 at {self.client.meta.endpoint_url}: {why}") from None
            raise


def _code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextmanager
def s3_errors(what: str) -> Iterator[None]:
    """Translate provider errors; no botocore type or message crosses this line."""
    try:
        yield
    except botocore.exceptions.ClientError as exc:
        if _code(exc) in ("NoSuchKey", "NoSuchVersion", "404", "NotFound", "NoSuchUpload"):
            raise NotFound(f"{what}: the stored object is missing") from exc
        log.warning("object store error during %s: %s", what, _code(exc))
        raise Unavailable(f"{what}: the object store failed; retry later") from exc
    except (botocore.exceptions.BotoCoreError, OSError) as exc:
        log.warning("object store unreachable during %s: %s", what, type(exc).__name__)
        raise Unavailable(f"{what}: the object store is unreachable; retry later") from exc


@dataclass(frozen=True)
class StoredObject:
    key: str
    version_id: str


@dataclass(frozen=True)
class ListedVersion:
    """An object version (or a multipart upload: version_id is its upload id) as listed."""

    key: str
    version_id: str
    modified: datetime


class ObjectWriter:
    """Streams bytes into one S3 object: multipart once it outgrows one part.

    At most MAX_PARTS_IN_FLIGHT + 1 parts of PART_SIZE, plus the incoming
    chunk, are in memory at any time, whatever the size of the file.
    """

    def __init__(self, vault: Vault, key: str, content_type: str) -> None:
        self.vault = vault
        self.key = key
        self.content_type = content_type
        self.pieces: list[bytes] = []
        self.held = 0
        self.upload_id: str | None = None
        self.parts: list[Future[dict[str, Any]]] = []
        self.pool: ThreadPoolExecutor | None = None

    def write(self, data: bytes) -> None:
        # Parts are exactly PART_SIZE whatever the callers' chunk size (a 64 MiB
        # chunk made one 64 MiB part before), so memory stays within the bound.
        view = memoryview(data)
        while view:
            room = PART_SIZE - self.held
            piece, view = view[:room], view[room:]
            self.pieces.append(bytes(piece))
            self.held += len(piece)
            if self.held == PART_SIZE:
                self._send_part(self._take())

    def _take(self) -> bytes:
        part = b"".join(self.pieces)
        self.pieces, self.held = [], 0
        return part

    def _send_part(self, part: bytes) -> None:
        client, bucket = self.vault.client, self.vault.bucket
        if self.upload_id is None:
            with s3_errors("upload"):
                created = client.create_multipart_upload(Bucket=bucket, Key=self.key, ContentType=self.content_type)
            self.upload_id = created["UploadId"]
            self.pool = ThreadPoolExecutor(MAX_PARTS_IN_FLIGHT, thread_name_prefix="s3-part")
        assert self.pool is not None
        in_flight = [f for f in self.parts if not f.done()]
        if len(in_flight) >= MAX_PARTS_IN_FLIGHT:
            in_flight[0].result()  # back-pressure: the caller's stream waits for S3
        number = len(self.parts) + 1
        upload_id = self.upload_id

        def upload() -> dict[str, Any]:
            with s3_errors("upload"):
                reply = client.upload_part(
                    Bucket=bucket, Key=self.key, UploadId=upload_id, PartNumber=number, Body=part
                )
            self.vault.traffic.add("in", len(part))
            return {"ETag": reply["ETag"], "PartNumber": number}

        self.parts.append(self.pool.submit(upload))

    def finish(self) -> StoredObject:
        """Make the object durable; returns its version id."""
        client, bucket = self.vault.client, self.vault.bucket
        try:
            if self.upload_id is None:
                body = self._take()
                with s3_errors("upload"):
                    reply = client.put_object(Bucket=bucket, Key=self.key, Body=body, ContentType=self.content_type)
                self.vault.traffic.add("in", len(body))
            else:
                if self.held:
                    self._send_part(self._take())
                parts = [f.result() for f in self.parts]
                with s3_errors("upload"):
                    reply = client.complete_multipart_upload(
                        Bucket=bucket, Key=self.key, UploadId=self.upload_id, MultipartUpload={"Parts": parts}
                    )
                self.upload_id = None
        finally:
            self._close_pool()
        version = reply.get("VersionId")
        if not version or version == "null":
            raise ConfigurationError(f"bucket {bucket!r} returned no version id; versioning is off")
        return StoredObject(self.key, version)

    def abort(self) -> None:
        """Leave no incomplete multipart upload behind (best effort, never raises)."""
        self._close_pool()
        if self.upload_id is not None:
            try:
                self.vault.client.abort_multipart_upload(
                    Bucket=self.vault.bucket, Key=self.key, UploadId=self.upload_id
                )
            except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError):
                log.warning("could not abort multipart upload of %s", self.key)
            self.upload_id = None
        self.pieces, self.held = [], 0

    def _close_pool(self) -> None:
        if self.pool is not None:
            for future in self.parts:
                future.cancel()
            self.pool.shutdown(wait=True)
            self.pool = None


def object_key(tenant_id: UUID, upload_id: UUID) -> str:
    """Keys are made of ids only: caller text (file names) never reaches S3."""
    return f"tenants/{tenant_id}/objects/{upload_id}"


def thumbnail_key(tenant_id: UUID, upload_id: UUID) -> str:
    return f"tenants/{tenant_id}/thumbnails/{upload_id}.png"
