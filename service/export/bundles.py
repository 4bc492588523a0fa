"""Background exports: CreateExport records, a worker renders, GetExport and
DownloadExport hand the result out until it expires."""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from service.background import Loop, worker_name
from service.database import Database
from service.errors import (
    DataLoss,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    ServiceError,
)
from service.export.exporter import Exporter, ExportRequest, ExportStream
from service.models import Identity
from service.sweeper import Sweeper
from service.validation import Checker
from service.vault import StoredObject, Vault

log = logging.getLogger(__name__)
DEFAULT_LIFETIME = 7 * 24 * 3600
MAX_LIFETIME = 30 * 24 * 3600
URL_SECONDS = 3600
MAX_ATTEMPTS = 3


@dataclass
class Bundle:
    id: UUID
    chat_id: UUID
    status: str
    format: str
    size_bytes: int
    download_count: int
    download_url: str
    expires_at: datetime
    created_at: datetime
    completed_at: datetime | None
    error_message: str
    include_media: bool
    include_version_history: bool
    from_snapshot_id: UUID | None
    to_snapshot_id: UUID
    sha256: str
    file_name: str


def _bundle(row: dict[str, Any], url: str = "") -> Bundle:
    return Bundle(
        id=row["id"],
        chat_id=row["chat_id"],
        status=row.get("effective_status", row["status"]),
        format=row["format"],
        size_bytes=row["size_bytes"],
        download_count=row["download_count"],
        download_url=url,
        expires_at=row["expires_at"],
        created_at=row["created_at"],
        completed_at=row["completed_at"],
        error_message=row["error_message"] or "",
        include_media=row["include_media"],
        include_version_history=row["include_version_history"],
        from_snapshot_id=row["from_snapshot_id"],
        to_snapshot_id=row["to_snapshot_id"],
        sha256=row["sha256"] or "",
        file_name=row["file_name"] or "",
    )


def export_queue(db: Database) -> tuple[int, float]:
    """Bundles waiting across all tenants, and how long the oldest has waited (seconds)."""
    with db.transaction(None) as tx:
        row = tx.one("export_queue")
    return int(row["depth"]), float(row["oldest_seconds"])


class LeaseLost(Exception):
    """Another worker holds the bundle now: stop, and leave it to them."""


class _Lease:
    """Renews a claimed bundle's lease from a helper thread for as long as the work runs.

    Rendering (a PDF is built in memory) can take longer than a lease; renewed
    only while uploading, the bundle was claimed again mid-render, and with two
    replicas restarted for ever. A renewal that finds the lease gone marks it
    lost, and the work stops at its next check.
    """

    def __init__(self, db: Database, params: dict[str, Any], seconds: int) -> None:
        self.db = db
        self.params = {**params, "lease_seconds": seconds}
        self.every = max(0.2, seconds / 3)
        self.lost = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="export-lease", daemon=True)

    def __enter__(self) -> _Lease:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._done.wait(self.every):
            try:
                with self.db.transaction(self.params["tenant_id"]) as tx:
                    if not tx.execute("renew_lease", self.params):
                        self.lost.set()
                        return
            except ServiceError as exc:  # the database is away: the lease may run out; finishing will tell
                log.warning("export lease not renewed: %s", exc.message)

    def check(self) -> None:
        if self.lost.is_set():
            raise LeaseLost()


class Bundles:
    def __init__(self, db: Database, vault: Vault, exporter: Exporter, max_queued: int = 20) -> None:
        self.db = db
        self.vault = vault
        self.exporter = exporter
        # Bundles a tenant may have waiting or rendering: one tenant cannot fill the queue for all.
        self.max_queued = max_queued

    def create(self, identity: Identity, request: ExportRequest, expires_in_seconds: int) -> Bundle:
        lifetime = expires_in_seconds or DEFAULT_LIFETIME
        if not 1 <= lifetime <= MAX_LIFETIME:
            raise InvalidArgument([FieldViolation("expires_in_seconds", f"must be from 1 to {MAX_LIFETIME}")])
        plan = self.exporter.plan(identity, request)  # validates, and pins `to` to the head now
        with self.db.transaction(identity.tenant_id) as tx:
            if tx.one("queued_bundles", {"tenant_id": identity.tenant_id})["queued"] >= self.max_queued:
                raise ResourceExhausted(
                    f"{self.max_queued} exports are already waiting or rendering for this tenant; "
                    "retry when one is ready, or use ExportChat, which streams"
                )
            row = tx.one(
                "insert_bundle",
                {
                    "id": uuid.uuid4(),
                    "tenant_id": identity.tenant_id,
                    "chat_id": plan.chat_id,
                    "user_id": identity.user_id,
                    "format": plan.format,
                    "include_media": plan.include_media,
                    "include_version_history": plan.include_history,
                    "from_snapshot_id": plan.from_snapshot_id,
                    "to_snapshot_id": plan.to_snapshot_id,
                    "expires_in_seconds": lifetime,
                },
            )
        return _bundle(row)

    def _row(self, identity: Identity, bundle_id: str) -> dict[str, Any]:
        check = Checker()
        parsed = check.uuid("bundle_id", bundle_id)
        check.done()
        with self.db.transaction(identity.tenant_id) as tx:
            row: dict[str, Any] | None = tx.one("get_bundle", {"tenant_id": identity.tenant_id, "id": parsed})
            if row is None:
                raise NotFound(f"export {bundle_id} does not exist")
            if row["effective_status"] == "expired" and row["status"] != "expired":
                tx.execute("expire_bundle", {"tenant_id": identity.tenant_id, "id": parsed})
        return row

    def get(self, identity: Identity, bundle_id: str) -> Bundle:
        row = self._row(identity, bundle_id)
        url = ""
        if row["effective_status"] == "ready":
            remaining = int((row["expires_at"] - datetime.now(row["expires_at"].tzinfo)).total_seconds())
            seconds = max(1, min(URL_SECONDS, remaining))
            url = self.vault.presign(row["s3_key"], row["s3_version_id"], seconds, row["mime_type"] or "")
        return _bundle(row, url)

    def download(self, identity: Identity, bundle_id: str) -> ExportStream:
        """The stored bundle as a stream (size and sha256 counted as it is read); counts the download."""
        row = self._row(identity, bundle_id)
        status = row["effective_status"]
        if status == "expired":
            raise FailedPrecondition(f"export {bundle_id} expired at {row['expires_at'].isoformat()}")
        if status != "ready":
            raise FailedPrecondition(f"export {bundle_id} is {status}, not ready yet")
        chunks = self.vault.read(row["s3_key"], row["s3_version_id"])
        with self.db.transaction(identity.tenant_id) as tx:
            counted = tx.one("count_download", {"tenant_id": identity.tenant_id, "id": row["id"]})
        if counted is None:  # it expired between the two reads
            raise FailedPrecondition(f"export {bundle_id} expired")
        return ExportStream(row["file_name"], row["mime_type"], chunks)


class ExportWorker:
    """Claims pending bundles and renders them into the vault, in a thread.

    Any number of workers (threads, replicas) share the queue: claiming is
    FOR UPDATE SKIP LOCKED, and a claim is a lease renewed while rendering,
    so the bundle of a worker that died is claimed again once its lease ends.
    """

    def __init__(
        self,
        db: Database,
        vault: Vault,
        exporter: Exporter,
        *,
        lease_seconds: int = 60,
        poll_seconds: float = 0.5,
        name: str | None = None,
        sweeper: Sweeper | None = None,
    ) -> None:
        self.db = db
        self.vault = vault
        self.exporter = exporter
        self.sweeper = sweeper or Sweeper(db, vault)
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.name = name or worker_name()
        self._loop = Loop("export-worker", self._step)

    def start(self) -> None:
        self._loop.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._loop.stop(timeout)

    def _step(self) -> float:
        return 0.0 if self.run_once() else self.poll_seconds

    def claim(self) -> tuple[UUID, UUID] | None:
        with self.db.transaction(None) as tx:
            row = tx.one(
                "claim_bundle", {"worker": self.name, "lease_seconds": self.lease_seconds, "max_attempts": MAX_ATTEMPTS}
            )
        return (row["id"], row["tenant_id"]) if row else None

    def run_once(self) -> bool:
        """Claim and render one bundle; False when none was waiting."""
        claimed = self.claim()
        if claimed is None:
            return False
        bundle_id, tenant_id = claimed
        self.render(bundle_id, tenant_id)
        return True

    def render(self, bundle_id: UUID, tenant_id: UUID) -> None:
        params = {"tenant_id": tenant_id, "id": bundle_id, "worker": self.name}
        lease = _Lease(self.db, params, self.lease_seconds)
        try:
            with lease:
                with self.db.transaction(tenant_id) as tx:
                    row = tx.one("get_bundle", {"tenant_id": tenant_id, "id": bundle_id})
                stream = self.exporter.render(self.exporter.plan_of_bundle(row), lambda: not lease.lost.is_set())
                stored = self._store(stream, tenant_id, bundle_id, lease)
        except Exception as exc:
            if isinstance(exc, LeaseLost) or lease.lost.is_set():  # the render stops: another worker holds it
                log.warning("export %s: lease lost to another worker; its result stands", bundle_id)
                return
            message = exc.message if isinstance(exc, ServiceError) else "rendering failed"
            log.warning("export %s failed: %s", bundle_id, message, exc_info=not isinstance(exc, ServiceError))
            # A bundle too large to render, or a plan gone invalid, fails the same way every time.
            attempts = 1 if isinstance(exc, (ResourceExhausted, InvalidArgument, DataLoss)) else MAX_ATTEMPTS
            with self.db.transaction(tenant_id) as tx:
                tx.execute("fail_bundle", {**params, "error_message": message, "max_attempts": attempts})
            return
        with self.db.transaction(tenant_id) as tx:
            finished = tx.execute(
                "finish_bundle",
                {
                    **params,
                    "file_name": stream.file_name,
                    "mime_type": stream.mime_type,
                    "s3_bucket": self.vault.bucket,
                    "s3_key": stored[0],
                    "s3_version_id": stored[1],
                    "size_bytes": stream.size_bytes,
                    "sha256": stream.sha256,
                },
            )
        if not finished:  # our lease ran out and another worker took over: its result stands
            self.sweeper.discard(tenant_id, (StoredObject(*stored),), "superseded_export")

    def _store(self, stream: ExportStream, tenant_id: UUID, bundle_id: UUID, lease: _Lease) -> tuple[str, str]:
        with contextlib.closing(stream):  # also when the vault refuses the upload before a byte is read
            writer = self.vault.writer(f"tenants/{tenant_id}/exports/{bundle_id}/{uuid.uuid4()}", stream.mime_type)
            try:
                for chunk in stream:
                    lease.check()
                    writer.write(chunk)
                lease.check()
                stored = writer.finish()
            except BaseException:
                writer.abort()
                raise
        return stored.key, stored.version_id
