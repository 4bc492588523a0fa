"""Restore: bring back a past state by appending new versions.

Nothing a restore replaces is lost: it writes new versions (or tombstones) for
exactly the messages whose current state differs from the target's, in the
same transaction as its snapshot and its audit-log entry. Reads happen on the
write's own connection, with the chat locked, so the state it compares against
cannot move underneath it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple
from uuid import UUID, uuid4

from service import checksum, states
from service.compare import Comparison, changes_between
from service.database import Database
from service.errors import FieldViolation, InvalidArgument, NotFound
from service.models import (
    FileHead,
    Identity,
    MediaFile,
    MessageHead,
    RestoreRecord,
    RestoreResult,
    Scope,
    Snapshot,
    Trigger,
)
from service.timeline import check_point, find_snapshot, point
from service.validation import Checker
from service.writes import ContentCopy, Replay, Write, WriteOptions, open_write


@dataclass(frozen=True)
class RestoreRequest:
    chat_id: str
    target_snapshot_id: str
    scope: Scope | None
    message_ids: list[str]
    file_ids: list[str]
    range_first_id: str
    range_last_id: str
    reason: str
    target_label: str = ""  # instead of target_snapshot_id
    validate_only: bool = False  # AIP-163: answer with what the restore would do, write nothing


@dataclass
class RestorePreview:
    """What a restore would do: the change from the chat now to the chat restored, and its checksum."""

    changes: Comparison
    checksum: str
    version: int


class _Previewed(Exception):
    def __init__(self, preview: RestorePreview, result: RestoreResult) -> None:
        self.preview = preview
        self.result = result


class MessagePlan(NamedTuple):
    """A message as it is now and as it was at the target (service/sql/states.sql, restore_message_plan)."""

    message_id: UUID
    position: int
    now_id: UUID
    now_version: int
    now_deleted: bool
    now_tokens: int
    now_role: str | None  # read only where a tombstone needs them (the message is alive now and not at the target)
    now_model_id: str | None
    original_created_at: datetime
    existed: bool  # whether the message existed at the target; the target_* fields and those below are its then
    target_id: UUID | None
    target_deleted: bool
    role: str
    model_id: str
    tokens: int
    unchanged: bool  # alive then and now, with the same fields: nothing to restore
    now_element: str | None  # checksum elements, only where a version will be written
    target_element: str | None

    def head(self) -> MessageHead:
        """The message's head as the write pipeline stages a version over it."""
        return MessageHead(
            message_id=self.message_id,
            position=self.position,
            current_version_id=self.now_id,
            version=self.now_version,
            is_deleted=self.now_deleted,
            tokens=self.now_tokens,
            element_hash=self.now_element or checksum.ZERO,
            original_created_at=self.original_created_at,
        )


class Restorer:
    def __init__(self, db: Database) -> None:
        self.db = db

    def restore(
        self, identity: Identity, request: RestoreRequest, options: WriteOptions
    ) -> tuple[RestoreResult, RestorePreview | None]:
        """The restore, or with `validate_only` what it would do (the preview) and nothing written.

        A preview runs the very restore in a transaction that is rolled back,
        so it cannot disagree with the restore itself.
        """
        try:
            return self._restore(identity, request, options), None
        except _Previewed as previewed:
            return previewed.result, previewed.preview

    def _restore(self, identity: Identity, request: RestoreRequest, options: WriteOptions) -> RestoreResult:
        check = Checker()
        chat = check.uuid("chat_id", request.chat_id)
        target_id = check_point(
            check, ("target_snapshot_id", "target_label"), request.target_snapshot_id, request.target_label
        )
        scope = check.enum("scope", request.scope)
        message_ids = check.uuids("message_ids", request.message_ids)
        file_ids = check.uuids("file_ids", request.file_ids)
        first = check.uuid("message_range.first_message_id", request.range_first_id, required=False)
        last = check.uuid("message_range.last_message_id", request.range_last_id, required=False)
        check.text("reason", request.reason)
        check.request_id(options.request_id)
        check.expected_version(options.expected_version)
        if scope is Scope.SINGLE_MESSAGE and not request.message_ids:
            check.fail("message_ids", "is required for RESTORE_SCOPE_SINGLE_MESSAGE")
        if scope is Scope.SINGLE_FILE and not request.file_ids:
            check.fail("file_ids", "is required for RESTORE_SCOPE_SINGLE_FILE")
        if scope is Scope.MESSAGE_RANGE and (first is None or last is None):
            check.fail("message_range", "first_message_id and last_message_id are required for MESSAGE_RANGE")
        check.done()
        assert chat is not None and scope is not None
        if identity.user_id is None:  # the interceptor requires it; keep the log honest regardless
            raise InvalidArgument([FieldViolation("x-user-id", "is required for restores")])
        if request.validate_only:  # a preview is no call to remember: a later real restore may use the key
            options = WriteOptions(expected_version=options.expected_version)
        with self.db.transaction(identity.tenant_id) as tx:
            try:
                write = open_write(tx, identity, chat, options, (Trigger.RESTORE_PERFORMED,), register=False)
            except Replay as replay:
                record: RestoreRecord = tx.one(
                    "restore_by_snapshot",
                    {"tenant_id": identity.tenant_id, "snapshot_id": replay.snapshot.id},
                    RestoreRecord,
                )
                return RestoreResult(
                    replay.snapshot, record.messages_restored, record.files_restored, record.previous_snapshot_id
                )
            target = point(tx, identity, chat, target_id, request.target_label, ("target_snapshot_id", "target_label"))
            messages_restored = self._restore_messages(write, target, scope, message_ids, first, last)
            files_restored = self._restore_files(write, target, scope, file_ids)
            if scope is Scope.FULL_CHAT and write.title != target.title:
                write.set_title(target.title)
            snapshot, _ = write.commit(
                Trigger.RESTORE_PERFORMED,
                restored_from=target.id,
                description=f"{scope.value} restored from version {target.version}",
                returning=False,  # a restore answers with counts, not rows
            )
            tx.execute(
                "insert_restore",
                {
                    **write.params,
                    "id": uuid4(),
                    "user_id": identity.user_id,
                    "from_snapshot_id": target.id,
                    "to_snapshot_id": snapshot.id,
                    "previous_snapshot_id": write.head.head_snapshot_id,
                    "scope": scope.value,
                    "message_ids": message_ids,
                    "file_ids": file_ids,
                    "range_first_id": first,
                    "range_last_id": last,
                    "messages_restored": messages_restored,
                    "files_restored": files_restored,
                    "reason": request.reason,
                    "created_at": snapshot.created_at,
                },
            )
            result = RestoreResult(snapshot, messages_restored, files_restored, write.head.head_snapshot_id)
            if request.validate_only:
                assert write.head.head_snapshot_id is not None  # a registered chat has a head
                now = find_snapshot(tx, identity, chat, write.head.head_snapshot_id, "chat_id")
                changes = changes_between(tx, now, snapshot)
                raise _Previewed(RestorePreview(changes, snapshot.checksum, snapshot.version), result)
            return result

    def _restore_messages(
        self,
        write: Write,
        target: Snapshot,
        scope: Scope,
        message_ids: list[UUID],
        first: UUID | None,
        last: UUID | None,
    ) -> int:
        if scope in (Scope.SINGLE_FILE, Scope.FILES_ONLY):
            return 0
        plan: list[MessagePlan] = write.tx.all(
            "restore_message_plan", {**write.params, "version": target.version}, MessagePlan
        )
        if scope is Scope.FULL_CHAT:
            chosen = plan
        elif scope is Scope.SINGLE_MESSAGE:
            by_id = {row.message_id: row for row in plan}
            chosen = []
            for message_id in dict.fromkeys(message_ids):
                row = by_id.get(message_id)
                if row is None or not row.existed:
                    raise NotFound(f"message {message_id} did not exist at snapshot {target.id}")
                chosen.append(row)
        else:
            chosen = self._range(plan, first, last, target)
        restored = 0
        for row in chosen:
            if row.unchanged or (row.now_deleted and (not row.existed or row.target_deleted)):
                continue
            if row.existed and not row.target_deleted:
                assert row.target_id is not None and row.target_element is not None
                write.put_message(
                    row.message_id,
                    row.head(),
                    role=row.role,
                    content=None,
                    copy=ContentCopy(row.target_id, row.target_element),
                    model_id=row.model_id,
                    metadata=None,
                    tokens=row.tokens,
                    is_deleted=False,
                    edit_reason=f"restored from version {target.version}",
                )
            else:  # the message did not exist then, or was deleted: it leaves the view again
                assert row.now_role is not None and row.now_model_id is not None
                write.put_message(
                    row.message_id,
                    row.head(),
                    role=row.now_role,
                    content="",
                    model_id=row.now_model_id,
                    metadata={},
                    tokens=0,
                    is_deleted=True,
                    edit_reason=f"restored to version {target.version}",
                )
            restored += 1
        return restored

    @staticmethod
    def _range(plan: list[MessagePlan], first: UUID | None, last: UUID | None, target: Snapshot) -> list[MessagePlan]:
        alive = [row for row in plan if row.existed and not row.target_deleted]  # in chat order
        ids = [row.message_id for row in alive]
        for field, message_id in (("first_message_id", first), ("last_message_id", last)):
            if message_id not in ids:
                raise NotFound(f"message_range.{field} {message_id} was not in the chat at snapshot {target.id}")
        assert first is not None and last is not None
        start, end = ids.index(first), ids.index(last)
        if start > end:
            raise InvalidArgument(
                [FieldViolation("message_range", "first_message_id comes after last_message_id in chat order")]
            )
        return alive[start : end + 1]

    def _restore_files(self, write: Write, target: Snapshot, scope: Scope, file_ids: list[UUID]) -> int:
        if scope in (Scope.SINGLE_MESSAGE, Scope.MESSAGE_RANGE):
            return 0
        tenant, chat = write.head.tenant_id, write.head.chat_id
        at_target: dict[str, MediaFile] = {
            row.original_name: row for row in states.files_at(write.tx, tenant, chat, target.version)
        }
        heads: dict[str, FileHead] = {
            row.original_name: row for row in write.tx.all("all_file_heads", write.params, FileHead)
        }
        current: dict[str, MediaFile] = {
            row.original_name: row for row in states.files_at(write.tx, tenant, chat, write.head.head_version)
        }
        if scope is Scope.SINGLE_FILE:
            by_id = {row.id: row for row in at_target.values()}
            chosen = []
            for file_id in dict.fromkeys(file_ids):
                if file_id not in by_id:
                    raise NotFound(f"file_ids: {file_id} was not a current file version at snapshot {target.id}")
                chosen.append(by_id[file_id].original_name)
        else:
            chosen = sorted(set(heads) | set(at_target))
        restored = 0
        for name in chosen:
            wanted, now = at_target.get(name), current.get(name)
            if wanted is None:
                if now is None:
                    continue
                write.delete_file(heads[name])
            elif now is not None and _same_bytes(now, wanted):
                continue
            else:
                # A new version row pointing at the same S3 object version: no copy.
                fields = {field: getattr(wanted, field) for field in RESTORED_FILE_FIELDS}
                write.put_file(heads.get(name), {**fields, "restored_from_id": wanted.id})
            restored += 1
        return restored


RESTORED_FILE_FIELDS = (
    "message_id",
    "original_name",
    "display_name",
    "mime_type",
    "size_bytes",
    "checksum_sha256",
    "s3_bucket",
    "s3_key",
    "s3_version_id",
    "thumbnail_s3_key",
    "thumbnail_version_id",
    "preview_generated",
    "source",
    "extracted_text",
    "ai_description",
)


def _same_bytes(a: MediaFile, b: MediaFile) -> bool:
    return (a.checksum_sha256, a.size_bytes, a.mime_type) == (b.checksum_sha256, b.size_bytes, b.mime_type)
