"""The media vault's file operations: upload, download, list, delete.

An upload streams to S3 as it arrives (never the whole file in memory),
hashing on the way. Only once the object is durable does one transaction
record the object, the file version and its snapshot. If anything fails
before that commit, any multipart upload is aborted and the sweeper removes
the object version again: a failed upload leaves no row and no object
behind. When it is unknown whether the commit happened, the object is kept
for the sweeper to judge after its grace period.
"""

from __future__ import annotations

import hashlib
import logging
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from service import paging, preview, states
from service.database import Database, Transaction
from service.errors import (
    Cancelled,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    ServiceError,
)
from service.models import FileSource, Identity, MediaFile, Snapshot, Trigger
from service.sweeper import Sweeper
from service.timeline import require_chat
from service.validation import Checker
from service.vault import StoredObject, Vault, object_key, thumbnail_key
from service.writes import Replay, WriteOptions, open_write

MAX_NAME_BYTES = 1024
MAX_MIME_BYTES = 255
DEFAULT_URL_SECONDS = 3600
MAX_URL_SECONDS = 7 * 24 * 3600
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
FILE_TRIGGERS = (Trigger.FILE_UPLOADED, Trigger.FILE_GENERATED)


@dataclass(frozen=True)
class UploadHeader:
    """The first message of an upload stream."""

    chat_id: str
    message_id: str
    name: str
    mime_type: str
    source: FileSource | None
    size_bytes: int | None
    checksum_sha256: str
    options: WriteOptions


@dataclass
class _Received:
    stored: StoredObject
    sha256: str
    crc32: int
    size: int
    kept: bytes
    complete: bool


log = logging.getLogger(__name__)
DEFAULT_PAGE = 100
MAX_PAGE = 1000


def _weight(row: MediaFile) -> int:
    return len((row.extracted_text or "").encode()) + len((row.ai_description or "").encode()) + 1024


def file_in_chat(tx: Transaction, identity: Identity, file_id: UUID, chat_id: UUID | None = None) -> MediaFile:
    row: MediaFile | None = tx.one("file_by_id", {"tenant_id": identity.tenant_id, "file_id": file_id}, MediaFile)
    if row is None or (chat_id is not None and row.chat_id != chat_id):
        raise NotFound(f"file {file_id} does not exist" + (f" in chat {chat_id}" if chat_id else ""))
    return row


class Files:
    def __init__(self, db: Database, vault: Vault, max_upload_bytes: int, sweeper: Sweeper | None = None) -> None:
        self.db = db
        self.vault = vault
        self.max_upload_bytes = max_upload_bytes
        self.sweeper = sweeper or Sweeper(db, vault)

    # -- upload --------------------------------------------------------------

    def upload(
        self,
        identity: Identity,
        header: UploadHeader,
        chunks: Iterator[bytes],
        still_wanted: Callable[[], bool] = lambda: True,
    ) -> tuple[MediaFile, Snapshot]:
        """Store the bytes, then record the version; `still_wanted` is asked just before the commit."""
        chat, message, request_id = self._check_header(header)
        mime_type = header.mime_type or "application/octet-stream"
        if request_id is not None:  # a retry: answer before receiving the bytes again
            first = self._replayed(identity, chat, request_id)
            if first is not None:
                return first
        received = self._receive(identity, header, mime_type, chunks)
        # CPU work on the bytes happens here, before the chat is locked: the
        # bytes are durable in S3 already, and a large PDF must not hold every
        # other write to the chat (and their pool connections) waiting.
        thumb = self._store_thumbnail(identity, mime_type, received)
        extracted = preview.extract_text(mime_type, header.name, received.kept, received.complete)
        committing, file_id = False, None
        try:
            with self.db.transaction(identity.tenant_id) as tx:
                try:
                    write = open_write(tx, identity, chat, header.options, FILE_TRIGGERS)
                except Replay as replay:
                    self.sweeper.discard(identity.tenant_id, (received.stored, thumb), "replayed_upload")
                    return self._result_of(tx, identity, replay.snapshot)
                stored = self._record_object(tx, identity, received)
                file_id = write.put_file(
                    write.file_head(header.name),
                    {
                        "message_id": message,
                        "original_name": header.name,
                        "display_name": header.name,
                        "mime_type": mime_type,
                        "size_bytes": received.size,
                        "checksum_sha256": received.sha256,
                        "s3_bucket": self.vault.bucket,
                        "s3_key": stored.key,
                        "s3_version_id": stored.version_id,
                        "thumbnail_s3_key": thumb.key if thumb else None,
                        "thumbnail_version_id": thumb.version_id if thumb else None,
                        "preview_generated": thumb is not None,
                        "source": header.source.value if header.source else FileSource.USER_UPLOAD.value,
                        "extracted_text": extracted,
                        "ai_description": None,
                        "restored_from_id": None,
                    },
                )
                trigger = Trigger.FILE_UPLOADED if header.source is FileSource.USER_UPLOAD else Trigger.FILE_GENERATED
                if not still_wanted():  # a cancelled stream may have looked complete
                    raise Cancelled("the upload was cancelled; nothing was stored")
                snapshot, _ = write.commit(
                    trigger, trigger_file_id=file_id, trigger_message_id=message, description=f"{header.name} stored"
                )
                result = write.file(file_id), snapshot
                committing = True  # from here a failure may come after the database committed
        except BaseException:
            outcome = self._committed(identity, file_id) if committing else False
            if outcome is None:  # unknown: the objects may be referenced; the sweeper decides later
                log.warning("upload outcome unknown after a failed commit; its objects are kept")
                raise
            if not outcome:
                self.sweeper.discard(identity.tenant_id, (received.stored, thumb), "failed_upload")
                raise
            log.warning("an upload's commit was reported failed but had succeeded; answering with it")
        if stored != received.stored:  # the same bytes were already in the vault
            self.sweeper.discard(identity.tenant_id, (received.stored,), "duplicate_upload")
        return result

    def _check_header(self, header: UploadHeader) -> tuple[UUID, UUID | None, str | None]:
        check = Checker()
        chat = check.uuid("chat_id", header.chat_id)
        message = check.uuid("message_id", header.message_id, required=False)
        check.text("name", header.name, max_bytes=MAX_NAME_BYTES, required=True)
        if any(ord(c) < 32 for c in header.name):
            check.fail("name", "must not contain control characters")
        check.text("mime_type", header.mime_type, max_bytes=MAX_MIME_BYTES)
        check.mime_type("mime_type", header.mime_type)
        check.enum("source", header.source)
        if header.size_bytes is not None and header.size_bytes < 0:
            check.fail("size_bytes", "must not be negative")
        if header.checksum_sha256 and not _SHA256.match(header.checksum_sha256):
            check.fail("checksum_sha256", "must be 64 lowercase hex digits")
        request_id = check.request_id(header.options.request_id)
        check.expected_version(header.options.expected_version)
        check.done()
        if header.size_bytes is not None and header.size_bytes > self.max_upload_bytes:
            raise ResourceExhausted(f"files are limited to {self.max_upload_bytes} bytes")
        assert chat is not None
        return chat, message, request_id

    def _receive(self, identity: Identity, header: UploadHeader, mime_type: str, chunks: Iterator[bytes]) -> _Received:
        """Stream the bytes into the vault, hashing and counting on the way."""
        writer = self.vault.writer(object_key(identity.tenant_id, uuid4()), mime_type)
        digest = hashlib.sha256()
        crc32 = 0  # recorded so that ZIP exports need not read the bytes twice
        size = 0
        keep = preview.wants_bytes(mime_type, header.name)
        kept = bytearray()
        try:
            for chunk in chunks:
                size += len(chunk)
                if size > self.max_upload_bytes:
                    raise ResourceExhausted(f"files are limited to {self.max_upload_bytes} bytes")
                if header.size_bytes is not None and size > header.size_bytes:
                    raise InvalidArgument([FieldViolation("size_bytes", "the stream is longer than declared")])
                digest.update(chunk)
                crc32 = zlib.crc32(chunk, crc32)
                if keep and len(kept) <= preview.MAX_PREVIEW_SOURCE:
                    kept += chunk[: preview.MAX_PREVIEW_SOURCE + 1 - len(kept)]
                writer.write(chunk)
            sha256 = digest.hexdigest()
            if header.size_bytes is not None and size != header.size_bytes:
                raise InvalidArgument([FieldViolation("size_bytes", f"{header.size_bytes} declared, {size} received")])
            if header.checksum_sha256 and header.checksum_sha256 != sha256:
                raise InvalidArgument([FieldViolation("checksum_sha256", f"declared, but the bytes hash to {sha256}")])
            stored = writer.finish()
        except BaseException:
            writer.abort()
            raise
        complete = len(kept) == size
        return _Received(stored, sha256, crc32, size, bytes(kept) if complete else bytes(kept[: 1024 * 1024]), complete)

    def _store_thumbnail(self, identity: Identity, mime_type: str, received: _Received) -> StoredObject | None:
        image = preview.thumbnail(mime_type, received.kept, received.complete)
        if image is None:
            return None
        try:
            return self.vault.put(thumbnail_key(identity.tenant_id, uuid4()), image, "image/png")
        except Exception:  # a preview never fails the upload
            return None

    def _record_object(self, tx: Transaction, identity: Identity, received: _Received) -> StoredObject:
        params = {"tenant_id": identity.tenant_id, "sha256": received.sha256}
        inserted = tx.one(
            "insert_object",
            {
                **params,
                "size_bytes": received.size,
                "crc32": received.crc32,
                "s3_bucket": self.vault.bucket,
                "s3_key": received.stored.key,
                "s3_version_id": received.stored.version_id,
            },
        )
        if inserted is not None:
            return received.stored
        existing = tx.one("get_object", params)
        return StoredObject(existing["s3_key"], existing["s3_version_id"])

    def _committed(self, identity: Identity, file_id: UUID | None) -> bool | None:
        """Whether the upload's file row exists: True, False, or None when the database cannot say.

        Only a certain False lets the upload delete its objects: a commit that
        failed in flight (connection lost) may have committed rows that name them.
        """
        if file_id is None:
            return False
        try:
            with self.db.transaction(identity.tenant_id) as tx:
                return tx.one("file_by_id", {"tenant_id": identity.tenant_id, "file_id": file_id}) is not None
        except ServiceError:
            return None

    def _replayed(self, identity: Identity, chat: UUID, request_id: str) -> tuple[MediaFile, Snapshot] | None:
        with self.db.transaction(identity.tenant_id) as tx:
            first: Snapshot | None = tx.one(
                "snapshot_by_request",
                {"tenant_id": identity.tenant_id, "chat_id": chat, "request_id": request_id},
                Snapshot,
            )
            if first is None:
                return None
            if first.trigger not in FILE_TRIGGERS:
                raise FailedPrecondition("request_id was already used for a different call in this chat")
            return self._result_of(tx, identity, first)

    @staticmethod
    def _result_of(tx: Transaction, identity: Identity, snapshot: Snapshot) -> tuple[MediaFile, Snapshot]:
        assert snapshot.trigger_file_id is not None
        return file_in_chat(tx, identity, snapshot.trigger_file_id), snapshot

    # -- reading -------------------------------------------------------------

    def get(self, identity: Identity, file_id: str) -> MediaFile:
        check = Checker()
        parsed = check.uuid("file_id", file_id)
        check.done()
        assert parsed is not None
        with self.db.transaction(identity.tenant_id) as tx:
            return file_in_chat(tx, identity, parsed)

    def read(self, row: MediaFile) -> Iterator[bytes]:
        return self.vault.read(row.s3_key, row.s3_version_id)

    def download_url(self, identity: Identity, file_id: str, expires_in_seconds: int) -> tuple[str, datetime]:
        seconds = expires_in_seconds or DEFAULT_URL_SECONDS
        if not 1 <= seconds <= MAX_URL_SECONDS:
            raise InvalidArgument(
                [FieldViolation("expires_in_seconds", f"must be from 1 to {MAX_URL_SECONDS} (7 days)")]
            )
        row = self.get(identity, file_id)
        expires_at = datetime.now(UTC) + timedelta(seconds=seconds)
        return self.vault.presign(row.s3_key, row.s3_version_id, seconds, row.mime_type), expires_at

    def list_current(
        self, identity: Identity, chat_id: str, page_size: int = 0, page_token: str = "", full: bool = False
    ) -> tuple[list[MediaFile], str]:
        """The chat's current files by name, a page at a time (extracted_text only when `full`)."""
        check = Checker()
        chat = check.uuid("chat_id", chat_id)
        size = check.page_size("page_size", page_size, default=DEFAULT_PAGE, maximum=MAX_PAGE)
        check.done()
        assert chat is not None
        scope = ("files", identity.tenant_id, chat, full)
        after = paging.decode(page_token, scope, str)
        with self.db.transaction(identity.tenant_id) as tx:
            head = require_chat(tx, identity, chat)
            rows = states.files_at(tx, identity.tenant_id, chat, head.head_version, with_text=full)
        rows.sort(key=lambda f: f.original_name)  # code-point order, whatever the database's collation
        rows = [f for f in rows if after is None or f.original_name > after]
        return paging.answer(rows, size, scope, lambda f: f.original_name, _weight)

    def versions(
        self, identity: Identity, chat_id: str, name: str, page_size: int = 0, page_token: str = "", full: bool = False
    ) -> tuple[list[MediaFile], str]:
        """One name's versions, newest first, a page at a time (extracted_text only when `full`)."""
        check = Checker()
        chat = check.uuid("chat_id", chat_id)
        check.text("name", name, max_bytes=MAX_NAME_BYTES, required=True)
        size = check.page_size("page_size", page_size, default=DEFAULT_PAGE, maximum=MAX_PAGE)
        check.done()
        assert chat is not None
        scope = ("file_versions", identity.tenant_id, chat, name, full)
        before = paging.decode(page_token, scope, int)
        with self.db.transaction(identity.tenant_id) as tx:
            rows = states.file_versions(tx, identity.tenant_id, chat, name=name, with_text=full)[::-1]
        if not rows:
            raise NotFound(f"chat {chat_id} has no file named {name!r}")
        rows = [f for f in rows if before is None or f.version < before]
        return paging.answer(rows, size, scope, lambda f: f.version, _weight)

    # -- delete --------------------------------------------------------------

    def delete(self, identity: Identity, chat_id: str, file_id: str, options: WriteOptions) -> Snapshot:
        check = Checker()
        chat = check.uuid("chat_id", chat_id)
        target = check.uuid("file_id", file_id)
        check.request_id(options.request_id)
        check.expected_version(options.expected_version)
        check.done()
        assert chat is not None and target is not None
        with self.db.transaction(identity.tenant_id) as tx:
            try:
                write = open_write(tx, identity, chat, options, (Trigger.FILE_DELETED,), register=False)
            except Replay as replay:
                return replay.snapshot
            row = file_in_chat(tx, identity, target, chat)
            head = write.file_head(row.original_name)
            if head is None or head.is_deleted:
                raise FailedPrecondition(f"file {row.original_name!r} is already deleted")
            if head.current_file_id != target:
                raise FailedPrecondition(
                    f"file {file_id} is an earlier version of {row.original_name!r}; delete its current version"
                )
            write.delete_file(head)
            snapshot, _ = write.commit(
                Trigger.FILE_DELETED, trigger_file_id=target, description=f"{row.original_name} deleted"
            )
            return snapshot
