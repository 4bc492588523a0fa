"""ImportChat: a chat's whole history, from its JSON export, written again in one transaction.

The stream carries the export's bytes, then the media objects the tenant
does not hold yet. The export is parsed and its history replayed and checked
(service/import_plan.py) before any byte of media is stored; media are
streamed to the vault and hashed on the way, as uploads are. Then one
transaction writes every row: the snapshots with their original versions,
times, triggers and users, the message versions with their search
documents, the file versions and deletions, the restores, the heads, and a
CHAT_IMPORTED snapshot that records the import itself. A failure anywhere
leaves no row, and the objects this call stored are discarded again.

Decided here: row ids are new (they are unique per tenant, and the same
export may be imported into several chats), message ids are kept (each
snapshot's checksum is made of them); thumbnails are not made again, the
imported file versions show none.
"""

from __future__ import annotations

import hashlib
import json
import logging
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

from service import import_plan
from service.database import Database, Transaction
from service.errors import AlreadyExists, FieldViolation, InvalidArgument, ResourceExhausted
from service.models import Identity, Snapshot, Trigger
from service.sweeper import Sweeper
from service.validation import Checker
from service.vault import StoredObject, Vault, object_key

log = logging.getLogger(__name__)
# The export is parsed whole: its size bounds the memory an import takes.
MAX_EXPORT_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class MediaChunk:
    sha256: str
    data: bytes


@dataclass(frozen=True)
class ImportResult:
    snapshots_imported: int
    last_snapshot: Snapshot
    message_versions: int
    file_versions: int
    media_received: int


@dataclass
class _Received:
    stored: StoredObject
    size: int
    crc32: int


class Importer:
    def __init__(self, db: Database, vault: Vault, sweeper: Sweeper, max_object_bytes: int) -> None:
        self.db = db
        self.vault = vault
        self.sweeper = sweeper
        self.max_object_bytes = max_object_bytes

    def run(
        self, identity: Identity, chat_id: str, request_id: str, parts: Iterator[bytes | MediaChunk]
    ) -> ImportResult:
        """Import the export and media in `parts` (export bytes first, then media chunks)."""
        check = Checker()
        chat = check.uuid("chat_id", chat_id)
        key = check.request_id(request_id)
        check.done()
        assert chat is not None
        replayed = self._replayed_or_taken(identity, chat, key)
        if replayed is not None:
            return replayed
        text, first_media = self._export(parts)
        try:
            document = json.loads(text)
        except (ValueError, RecursionError):
            raise InvalidArgument([FieldViolation(import_plan.FIELD, "is not JSON (UTF-8)")]) from None
        del text
        plan = import_plan.plan(document)
        del document
        if key is not None and any(row["request_id"] == key for row in plan.snapshots):
            raise InvalidArgument([FieldViolation("request_id", "names a snapshot of the export: use another")])
        received: dict[str, _Received] = {}
        try:
            held = self._held(identity, plan)
            self._receive(identity, plan, held, first_media, parts, received)
            missing = sorted(set(plan.media) - set(held) - set(received))
            if missing:
                raise InvalidArgument(
                    [
                        FieldViolation(
                            "media",
                            f"{len(missing)} objects the export names were neither sent nor held by the tenant "
                            f"(the first: {missing[0]})",
                        )
                    ]
                )
            with self.db.transaction(identity.tenant_id) as tx:
                result = self._write(tx, identity, chat, key, plan, received)
        except BaseException:
            # Nothing committed (or the commit's outcome is unknown: then the sweeper judges later,
            # as discard() deletes only objects no row refers to).
            self.sweeper.discard(identity.tenant_id, (r.stored for r in received.values()), "failed_import")
            raise
        duplicates = [r.stored for sha, r in received.items() if sha not in result[1]]
        if duplicates:  # another call stored the same bytes meanwhile: theirs are used
            self.sweeper.discard(identity.tenant_id, duplicates, "duplicate_upload")
        return result[0]

    # -- before the transaction ------------------------------------------------

    def _replayed_or_taken(self, identity: Identity, chat: UUID, key: str | None) -> ImportResult | None:
        """The first import's answer for a retry; AlreadyExists for a chat that has history."""
        params = {"tenant_id": identity.tenant_id, "chat_id": chat}
        with self.db.transaction(identity.tenant_id) as tx:
            head = tx.one("get_chat_head", params)
            if head is None:
                return None
            if key is not None:
                marker: Snapshot | None = tx.one("snapshot_by_request", {**params, "request_id": key}, Snapshot)
                if marker is not None and marker.trigger == Trigger.CHAT_IMPORTED.value:
                    counts = tx.one("imported_counts", {**params, "version": marker.version})
                    return ImportResult(
                        marker.version - 1, marker, counts["message_versions"], counts["file_versions"], 0
                    )
        raise AlreadyExists("chat_id already has history: import into a new chat id")

    @staticmethod
    def _export(parts: Iterator[bytes | MediaChunk]) -> tuple[bytes, MediaChunk | None]:
        """The export's bytes, and the first media chunk when one follows them."""
        pieces: list[bytes] = []
        size = 0
        for part in parts:
            if isinstance(part, MediaChunk):
                return b"".join(pieces), part
            size += len(part)
            if size > MAX_EXPORT_BYTES:
                raise ResourceExhausted(f"an imported export is limited to {MAX_EXPORT_BYTES} bytes")
            pieces.append(part)
        if not size:
            raise InvalidArgument([FieldViolation(import_plan.FIELD, "no export was sent")])
        return b"".join(pieces), None

    def _held(self, identity: Identity, plan: import_plan.ImportPlan) -> dict[str, int]:
        """The objects of the export the tenant holds already, with their sizes (which must agree)."""
        if not plan.media:
            return {}
        with self.db.transaction(identity.tenant_id) as tx:
            rows = tx.all(
                "objects_held", {"tenant_id": identity.tenant_id, "sha256s": sorted(plan.media)}, prepare=False
            )
        held = {row["sha256"]: row["size_bytes"] for row in rows}
        for sha256, size in held.items():
            if plan.media[sha256] != size:
                raise InvalidArgument(
                    [
                        FieldViolation(
                            import_plan.FIELD, f"a file with sha256 {sha256} differs in size from the held object"
                        )
                    ]
                )
        return held

    def _receive(
        self,
        identity: Identity,
        plan: import_plan.ImportPlan,
        held: dict[str, int],
        first: MediaChunk | None,
        parts: Iterator[bytes | MediaChunk],
        received: dict[str, _Received],
    ) -> None:
        """Store each object sent that the tenant lacks; objects it holds already are read and dropped."""
        for sha256, chunks in _objects(first, parts):
            if sha256 not in plan.media:
                raise InvalidArgument([FieldViolation("media.sha256", "names no file of the export")])
            if sha256 in received:
                raise InvalidArgument([FieldViolation("media.sha256", f"{sha256} was sent twice")])
            size = min(plan.media[sha256], self.max_object_bytes)
            if sha256 in held:
                for _ in _bounded(chunks, sha256, size):
                    pass
                continue
            received[sha256] = self._store(identity, sha256, _bounded(chunks, sha256, size))

    def _store(self, identity: Identity, sha256: str, chunks: Iterator[bytes]) -> _Received:
        writer = self.vault.writer(object_key(identity.tenant_id, uuid4()), "application/octet-stream")
        digest, crc32, size = hashlib.sha256(), 0, 0
        try:
            for data in chunks:
                digest.update(data)
                crc32 = zlib.crc32(data, crc32)  # recorded so that ZIP exports need not read the bytes twice
                size += len(data)
                writer.write(data)
            if digest.hexdigest() != sha256:
                raise InvalidArgument([FieldViolation("media.chunk", f"the bytes sent for {sha256} do not hash to it")])
            return _Received(writer.finish(), size, crc32)
        except BaseException:
            writer.abort()
            raise

    # -- the transaction -------------------------------------------------------

    def _write(
        self,
        tx: Transaction,
        identity: Identity,
        chat: UUID,
        key: str | None,
        plan: import_plan.ImportPlan,
        received: dict[str, _Received],
    ) -> tuple[ImportResult, set[str]]:
        """Every row; the result and the sha256s whose objects this call's rows use."""
        params = {"tenant_id": identity.tenant_id, "chat_id": chat}
        last = plan.last
        marker_id = uuid4()
        created = tx.one(
            "import_chat",
            {
                **params,
                "title": last["title"],
                "head_version": last["version"],
                "head_snapshot_id": last["id"],
                "head_time": last["created_at"],
                "message_count": last["message_count"],
                "file_count": last["file_count"],
                "total_tokens": last["total_tokens"],
                "state_sum": last["checksum"],
                "next_position": plan.next_position,
            },
        )
        if created is None:  # another call wrote to this chat id since the check
            raise AlreadyExists("chat_id already has history: import into a new chat id")
        used: set[str] = set()
        for sha256, got in received.items():
            stored = tx.one(
                "insert_object",
                {
                    **params,
                    "sha256": sha256,
                    "size_bytes": got.size,
                    "crc32": got.crc32,
                    "s3_bucket": self.vault.bucket,
                    "s3_key": got.stored.key,
                    "s3_version_id": got.stored.version_id,
                },
            )
            if stored is not None:
                used.add(sha256)
        tx.execute("import_snapshots", {**params, "rows": _json(plan.snapshots)}, prepare=False)
        tx.execute("import_message_versions", {**params, "rows": _json(plan.message_versions)}, prepare=False)
        tx.execute("import_message_heads", {**params, "rows": _json(plan.message_heads)}, prepare=False)
        if plan.files:
            written = tx.execute("import_files", {**params, "rows": _json(plan.files)}, prepare=False)
            assert written == len(plan.files), "every file's object is recorded"
            tx.execute("import_file_deletions", {**params, "rows": _json(plan.file_deletions)}, prepare=False)
            tx.execute("import_file_heads", {**params, "rows": _json(plan.file_heads)}, prepare=False)
        if plan.restores:
            tx.execute("import_restores", {**params, "rows": _json(plan.restores)}, prepare=False)
        if plan.attachments:
            tx.execute(
                "insert_attachments", {**params, "given": _json(plan.attachments), "copies": "[]"}, prepare=False
            )
        marker: Snapshot = tx.one(
            "import_marker",
            {
                **params,
                "id": marker_id,
                "version": last["version"] + 1,
                "last_time": last["created_at"],
                "message_count": last["message_count"],
                "file_count": last["file_count"],
                "total_tokens": last["total_tokens"],
                "description": f"imported {len(plan.snapshots)} snapshots",
                "previous_snapshot_id": last["id"],
                "checksum": last["checksum"],
                "title": last["title"],
                "user_id": identity.user_id,
                "request_id": key,
            },
            Snapshot,
        )
        tx.execute(
            "import_head",
            {
                **params,
                "version": marker.version,
                "snapshot_id": marker.id,
                "head_time": marker.created_at,
                "user_id": identity.user_id,
            },
        )
        tx.snapshots.append(Trigger.CHAT_IMPORTED.value)
        result = ImportResult(
            snapshots_imported=len(plan.snapshots),
            last_snapshot=marker,
            message_versions=len(plan.message_versions),
            file_versions=len(plan.files),
            media_received=len(received),
        )
        return result, used


def _json(rows: list[dict[str, Any]]) -> str:
    """Rows as one jsonb array (ids and times as text): json.dumps in C beats psycopg's per-element arrays."""
    return json.dumps(rows, default=str, ensure_ascii=False)


def _objects(first: MediaChunk | None, parts: Iterator[bytes | MediaChunk]) -> Iterator[tuple[str, Iterator[bytes]]]:
    """Media chunks grouped by object (consecutive chunks with one sha256).

    Each object's chunks must be read to their end before the next object is asked for.
    """
    pending = first
    while pending is not None:
        start, following = pending, [None]

        def chunks(start: MediaChunk = start, following: list[Any] = following) -> Iterator[bytes]:
            yield start.data
            for part in parts:
                if not isinstance(part, MediaChunk):
                    raise InvalidArgument(
                        [FieldViolation(import_plan.FIELD, "came after media: send the export first")]
                    )
                if part.sha256 != start.sha256:
                    following[0] = part
                    return
                yield part.data

        yield start.sha256, chunks()
        pending = following[0]


def _bounded(chunks: Iterator[bytes], sha256: str, size: int) -> Iterator[bytes]:
    """The chunks, refused once they pass `size` bytes; short of it at the end, refused too."""
    seen = 0
    for data in chunks:
        seen += len(data)
        if seen > size:
            raise InvalidArgument([FieldViolation("media.chunk", f"{sha256}: more bytes than the export's size_bytes")])
        yield data
    if seen != size:
        raise InvalidArgument([FieldViolation("media.chunk", f"{sha256}: {seen} bytes sent, the export says {size}")])
