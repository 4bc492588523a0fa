"""The write pipeline every action goes through.

One action = one transaction: lock the chat's head row, check idempotency and
the expected version, stage the changed history rows, then insert the snapshot,
the rows and the new heads together. Counts and the checksum move by the
staged deltas only (O(changed elements), never O(chat)).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple
from uuid import UUID, uuid4

from psycopg.types.json import Jsonb

from service import checksum
from service.attachments import Reference
from service.database import Transaction
from service.errors import Aborted, FailedPrecondition, NotFound
from service.models import (
    ChatHead,
    FileHead,
    Identity,
    MediaFile,
    MessageHead,
    MessageVersion,
    Snapshot,
    Trigger,
)
from service.timeline import missing_chat


@dataclass(frozen=True)
class WriteOptions:
    """What every write accepts besides its own fields (validated by the caller)."""

    request_id: str = ""
    expected_version: int | None = None


@dataclass
class StagedMessage:
    """A message version to be written with the snapshot."""

    message_id: UUID
    version: int
    position: int
    role: str
    content: str | None  # None: copied in SQL from version `copy_of` (a restore)
    model_id: str
    metadata: dict[str, Any] | None  # None: copied in SQL with the content
    tokens: int
    is_deleted: bool
    edit_reason: str
    original_created_at: Any
    element_hash: str
    # The version this one replaces as the message's current one (None: a new message).
    superseded: UUID | None
    copy_of: UUID | None = None
    # The file versions it refers to (service/attachments.py); None: those of the version it restores or follows.
    attachments: list[Reference] | None = None
    id: UUID = field(default_factory=uuid4)


class ContentCopy(NamedTuple):
    """A new version's content taken from an earlier version where it is stored.

    A restore brings back thousands of versions whose content and metadata
    the database already holds: they need not travel to us and back.
    `element` is that content's checksum element, computed in SQL
    (migrations/012).
    """

    version_id: UUID
    element: str


class Replay(Exception):
    """The request id was already used in this chat; carries the first snapshot."""

    def __init__(self, snapshot: Snapshot) -> None:
        super().__init__("replay")
        self.snapshot = snapshot


class Write:
    """One action on one chat, inside its transaction, with the chat locked."""

    def __init__(self, tx: Transaction, head: ChatHead, identity: Identity, request_id: str | None) -> None:
        self.tx = tx
        self.head = head
        self.identity = identity
        self.request_id = request_id
        self.state = checksum.StateSum.parse(head.state_sum)
        self.title = head.title
        self.message_count = head.message_count
        self.file_count = head.file_count
        self.total_tokens = head.total_tokens
        self.next_position = head.next_position
        self.messages: list[StagedMessage] = []
        # Staged file rows by statement (insert_files, insert_file_deletions,
        # upsert_file_heads): each is written as one statement at commit.
        self.file_rows: dict[str, list[dict[str, Any]]] = {
            "insert_files": [],
            "insert_file_deletions": [],
            "upsert_file_heads": [],
        }
        self.snapshot_id = uuid4()

    @property
    def params(self) -> dict[str, Any]:
        return {"tenant_id": self.head.tenant_id, "chat_id": self.head.chat_id}

    # -- reading current state -------------------------------------------------

    def message_head(self, message_id: UUID) -> MessageHead | None:
        row: MessageHead | None = self.tx.one(
            "get_message_head", {**self.params, "message_id": message_id}, MessageHead
        )
        return row

    def live_message(self, message_id: UUID, field_name: str = "message_id") -> tuple[MessageHead, MessageVersion]:
        head = self.message_head(message_id)
        if head is None or head.is_deleted:
            raise NotFound(f"{field_name} {message_id} is not a message in this chat's current view")
        current: MessageVersion = self.tx.one(
            "current_message_version",
            {
                **self.params,
                "id": head.current_version_id,
                "message_id": message_id,
                "position": head.position,
                "version": head.version,
            },
            MessageVersion,
        )
        return head, current

    # -- staging changes ---------------------------------------------------------

    def put_message(
        self,
        message_id: UUID,
        previous: MessageHead | None,
        *,
        role: str,
        content: str | None,
        model_id: str,
        metadata: dict[str, Any] | None,
        tokens: int,
        is_deleted: bool,
        edit_reason: str = "",
        copy: ContentCopy | None = None,
        attachments: list[Reference] | None = None,
    ) -> StagedMessage:
        """Stage a new version of a message and move counts and checksum.

        With `copy`, `content` and `metadata` must be None: the version's are
        the copied version's, and its checksum element is the one given.
        """
        assert (content is None) == (copy is not None), "content comes either given or copied"
        assert (metadata is None) == (copy is not None), "metadata comes either given or copied"
        if previous is not None and not previous.is_deleted:
            self.state.remove(checksum.from_hex(previous.element_hash))
            self.message_count -= 1
            self.total_tokens -= previous.tokens
        if previous is None:
            position = self.next_position
            self.next_position += 1
        else:
            position = previous.position
        if is_deleted:
            element = 0
        elif copy is not None:
            element = checksum.from_hex(copy.element)
        else:
            assert content is not None
            element = checksum.message_element(message_id, position, role, content)
        if not is_deleted:
            self.state.add(element)
            self.message_count += 1
            self.total_tokens += tokens
        staged = StagedMessage(
            message_id=message_id,
            version=(previous.version + 1) if previous else 1,
            position=position,
            role=role,
            content=content,
            model_id=model_id,
            metadata=metadata,
            tokens=tokens,
            is_deleted=is_deleted,
            edit_reason=edit_reason,
            original_created_at=previous.original_created_at if previous else None,
            element_hash=checksum.to_hex(element),
            superseded=previous.current_version_id if previous else None,
            copy_of=copy.version_id if copy is not None else None,
            attachments=attachments,
        )
        self.messages.append(staged)
        return staged

    def file_head(self, name: str) -> FileHead | None:
        row: FileHead | None = self.tx.one("get_file_head", {**self.params, "original_name": name}, FileHead)
        return row

    def put_file(self, previous: FileHead | None, fields: dict[str, Any]) -> UUID:
        """Stage a new current version of a file name (an upload or a restore).

        `fields` are tm_files columns besides ids, version and lineage; a
        restore passes those of the version it brings back.
        """
        name = fields["original_name"]
        if previous is not None and not previous.is_deleted:
            self.state.remove(checksum.from_hex(previous.element_hash))
            self.file_count -= 1
        element = checksum.file_element(name, fields["checksum_sha256"], fields["size_bytes"], fields["mime_type"])
        self.state.add(element)
        self.file_count += 1
        file_id = uuid4()
        version = previous.version + 1 if previous else 1
        self.file_rows["insert_files"].append(
            {
                **fields,
                "id": file_id,
                "version": version,
                "previous_version_id": previous.current_file_id if previous else None,
            }
        )
        self._stage_file_head(name, file_id, version, is_deleted=False, element=element)
        return file_id

    def delete_file(self, head: FileHead) -> None:
        """Stage a tombstone: the name leaves the view; every version stays."""
        assert not head.is_deleted
        self.state.remove(checksum.from_hex(head.element_hash))
        self.file_count -= 1
        self.file_rows["insert_file_deletions"].append(
            {"id": uuid4(), "original_name": head.original_name, "file_id": head.current_file_id}
        )
        self._stage_file_head(head.original_name, head.current_file_id, head.version, is_deleted=True, element=0)

    def _stage_file_head(self, name: str, file_id: UUID, version: int, *, is_deleted: bool, element: int) -> None:
        self.file_rows["upsert_file_heads"].append(
            {
                "original_name": name,
                "current_file_id": file_id,
                "version": version,
                "is_deleted": is_deleted,
                "element_hash": checksum.to_hex(element),
            }
        )

    def set_title(self, title: str) -> None:
        self.state.replace(checksum.title_element(self.title), checksum.title_element(title))
        self.title = title

    # -- committing --------------------------------------------------------------

    def commit(
        self,
        trigger: Trigger,
        *,
        trigger_message_id: UUID | None = None,
        trigger_file_id: UUID | None = None,
        description: str = "",
        restored_from: UUID | None = None,
        returning: bool = True,
    ) -> tuple[Snapshot, list[MessageVersion]]:
        """The snapshot, the chat's new head and the staged messages in one statement, then
        the staged file rows; the message versions written (when `returning`)."""
        snapshot: Snapshot = self.tx.one(
            "insert_snapshot",
            {
                **self.params,
                "id": self.snapshot_id,
                "version": self.head.head_version + 1,
                "head_time": self.head.head_time,
                "message_count": self.message_count,
                "file_count": self.file_count,
                "total_tokens": self.total_tokens,
                "trigger": trigger.value,
                "trigger_message_id": trigger_message_id,
                "trigger_file_id": trigger_file_id,
                "trigger_description": description,
                "previous_snapshot_id": self.head.head_snapshot_id,
                "restored_from_snapshot_id": restored_from,
                "checksum": self.state.hex,
                "title": self.title,
                "user_id": self.identity.user_id,
                "request_id": self.request_id,
                "next_position": self.next_position,
                "staged": Jsonb([_staged_json(m) for m in self.messages]),
            },
            Snapshot,
        )
        self.tx.snapshots.append(trigger.value)
        self._write_attachments()
        written = [self._version_of(m, snapshot) for m in self.messages] if returning else []
        for name, rows in self.file_rows.items():
            if rows:  # one statement for every row: a restore of many files is a few round trips
                columns = {column: [row[column] for row in rows] for column in rows[0]}
                params = {**self.params, **columns, **self._written(snapshot)}
                self.tx.execute(name, params, prepare=False if len(rows) > 1 else None)
        return snapshot, written

    def _write_attachments(self) -> None:
        """The staged versions' file references: given ones, and those kept from the version each
        follows or restores (only in a chat that has any: most chats skip the round trip)."""
        given = [
            {"message_version_id": str(m.id), "display_order": r.display_order, "file_id": str(r.file_id),
             "reference_type": r.reference_type}
            for m in self.messages if m.attachments
            for r in m.attachments
        ]  # fmt: skip
        copies = []
        if self.head.has_attachments:
            copies = [
                {"message_version_id": str(m.id), "source": str(m.copy_of or m.superseded)}
                for m in self.messages
                if m.attachments is None and not m.is_deleted and (m.copy_of or m.superseded) is not None
            ]
        if given or copies:
            self.tx.execute(
                "insert_attachments", {**self.params, "given": Jsonb(given), "copies": Jsonb(copies)}, prepare=False
            )

    def file(self, file_id: UUID) -> MediaFile:
        row: MediaFile = self.tx.one("file_by_id", {"tenant_id": self.head.tenant_id, "file_id": file_id}, MediaFile)
        return row

    @staticmethod
    def _written(snapshot: Snapshot) -> dict[str, Any]:
        """What every row staged by this write records of its snapshot."""
        return {"snapshot_id": snapshot.id, "chat_version": snapshot.version, "created_at": snapshot.created_at}

    def _version_of(self, staged: StagedMessage, snapshot: Snapshot) -> MessageVersion:
        """The row insert_snapshot wrote for `staged`: every value is known here but the snapshot's."""
        assert staged.content is not None and staged.metadata is not None, (
            "copied content is not known here: commit with returning=False"
        )
        return MessageVersion(
            id=staged.id,
            tenant_id=self.head.tenant_id,
            chat_id=self.head.chat_id,
            message_id=staged.message_id,
            snapshot_id=snapshot.id,
            chat_version=snapshot.version,
            version=staged.version,
            position=staged.position,
            role=staged.role,
            content=staged.content,
            model_id=staged.model_id,
            metadata=staged.metadata,
            tokens=staged.tokens,
            is_deleted=staged.is_deleted,
            edit_reason=staged.edit_reason,
            edited_by=self.identity.user_id,
            created_at=snapshot.created_at,
            original_created_at=staged.original_created_at or snapshot.created_at,
            is_active=True,
            attachments=list(staged.attachments or []),
        )


def _staged_json(m: StagedMessage) -> dict[str, Any]:
    """A staged version as insert_snapshot reads it: an absent key is NULL there (a copy's content and
    metadata are read in SQL; a new message has no lineage), so a restore's thousand rows stay small."""
    row: dict[str, Any] = {
        "id": str(m.id), "message_id": str(m.message_id), "version": m.version, "position": m.position,
        "role": m.role, "model_id": m.model_id, "tokens": m.tokens, "is_deleted": m.is_deleted,
        "edit_reason": m.edit_reason, "element_hash": m.element_hash,
    }  # fmt: skip
    if m.content is not None:
        row["content"] = m.content
    if m.metadata is not None:
        row["metadata"] = m.metadata
    if m.original_created_at is not None:
        row["original_created_at"] = m.original_created_at.isoformat()
    if m.copy_of is not None:
        row["copy_of"] = str(m.copy_of)
    if m.superseded is not None:
        row["superseded"] = str(m.superseded)
    return row


def open_write(
    tx: Transaction,
    identity: Identity,
    chat_id: UUID,
    options: WriteOptions,
    replay_triggers: tuple[Trigger, ...],
    *,
    register: bool = True,
    deleted_ok: bool = False,
) -> Write:
    """Lock the chat (registering it if new) and check request id, version and that it is not deleted.

    Raises Replay when `request_id` was already used in this chat: the caller
    answers with the first call's result and writes nothing. A deleted chat
    (DeleteChat) takes no write but UndeleteChat (`deleted_ok`).
    """
    params = {"tenant_id": identity.tenant_id, "chat_id": chat_id}
    request_id, expected_version = options.request_id or None, options.expected_version
    head: ChatHead | None = tx.one("lock_chat", params, ChatHead)
    if head is None and register and tx.one("erasure_of", params) is None:
        # First write to this chat id (never one that was erased): register it, then lock.
        tx.execute("register_chat", {**params, "zero": checksum.ZERO})
        head = tx.one("lock_chat", params, ChatHead)
    if head is None:
        raise missing_chat(tx, identity.tenant_id, chat_id)
    if request_id is not None:
        first: Snapshot | None = tx.one("snapshot_by_request", {**params, "request_id": request_id}, Snapshot)
        if first is not None:
            if first.trigger not in replay_triggers:
                raise FailedPrecondition("request_id was already used for a different call in this chat")
            raise Replay(first)
    if head.deleted and not deleted_ok:
        raise FailedPrecondition("the chat is deleted: UndeleteChat brings it back before it takes writes")
    if expected_version is not None and expected_version != head.head_version:
        raise Aborted(f"chat is at version {head.head_version}, not the expected {expected_version}")
    return Write(tx, head, identity, request_id)
