"""The product's records, as the database returns them (column names = fields)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple
from uuid import UUID

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros(value: datetime) -> int:
    """Microseconds since the Unix epoch (naive means UTC)."""
    delta = (value if value.tzinfo else value.replace(tzinfo=UTC)) - EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


class Trigger(enum.StrEnum):
    MESSAGE_SENT = "message_sent"
    MESSAGE_RECEIVED = "message_received"
    MESSAGE_EDITED = "message_edited"
    MESSAGE_DELETED = "message_deleted"
    FILE_UPLOADED = "file_uploaded"
    FILE_GENERATED = "file_generated"
    FILE_DELETED = "file_deleted"
    CHAT_RENAMED = "chat_renamed"
    RESTORE_PERFORMED = "restore_performed"
    MANUAL_SNAPSHOT = "manual_snapshot"
    CHAT_ARCHIVED = "chat_archived"
    CHAT_UNARCHIVED = "chat_unarchived"
    CHAT_DELETED = "chat_deleted"
    CHAT_UNDELETED = "chat_undeleted"
    SNAPSHOT_LABELED = "snapshot_labeled"
    CHAT_IMPORTED = "chat_imported"


class Role(enum.StrEnum):
    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"


class Scope(enum.StrEnum):
    FULL_CHAT = "full_chat"
    SINGLE_MESSAGE = "single_message"
    SINGLE_FILE = "single_file"
    MESSAGE_RANGE = "message_range"
    FILES_ONLY = "files_only"


@dataclass
class ChatHead:
    """The current state of a chat, locked for the duration of a write."""

    tenant_id: UUID
    chat_id: UUID
    title: str
    head_version: int
    head_snapshot_id: UUID | None
    head_time: datetime | None
    message_count: int
    file_count: int
    total_tokens: int
    state_sum: str
    next_position: int
    archived: bool = False
    deleted: bool = False
    has_attachments: bool = False  # a message of the chat ever referred to a file


@dataclass
class Snapshot:
    id: UUID
    tenant_id: UUID
    chat_id: UUID
    version: int
    created_at: datetime
    message_count: int
    file_count: int
    total_tokens: int
    trigger: str
    trigger_message_id: UUID | None
    trigger_file_id: UUID | None
    trigger_description: str
    previous_snapshot_id: UUID | None
    restored_from_snapshot_id: UUID | None
    checksum: str
    title: str
    user_id: UUID | None
    request_id: str | None


@dataclass
class MessageVersion:
    id: UUID
    tenant_id: UUID
    chat_id: UUID
    message_id: UUID
    snapshot_id: UUID
    chat_version: int
    version: int
    position: int
    role: str
    content: str
    model_id: str
    metadata: dict[str, Any]
    tokens: int
    is_deleted: bool
    edit_reason: str
    edited_by: UUID | None
    created_at: datetime
    original_created_at: datetime
    is_active: bool = False
    superseded_at: datetime | None = None
    attachments: list[Any] = field(default_factory=list)  # service/attachments.py: Reference or AttachmentRow

    def entry(self) -> MessageEntry:
        return MessageEntry(
            str(self.id),
            str(self.chat_id),
            str(self.message_id),
            str(self.snapshot_id),
            self.chat_version,
            self.version,
            self.position,
            self.role,
            self.content,
            self.model_id,
            self.metadata,
            self.tokens,
            self.is_deleted,
            self.edit_reason,
            None if self.edited_by is None else str(self.edited_by),
            micros(self.created_at),
            micros(self.original_created_at),
            self.is_active,
            None if self.superseded_at is None else micros(self.superseded_at),
        )


class MessageEntry(NamedTuple):
    """A message version as an answer carries it: ids as text, times in microseconds since the epoch.

    The chat reads return thousands of these. Loaded as UUIDs and datetimes,
    then turned back into text and seconds for the wire, a 10,000-message chat
    spent 270 ms in the driver alone; cast in SQL (service/sql/states.sql,
    message_entries_at_version) and built as a tuple, 100 ms.
    """

    id: str
    chat_id: str
    message_id: str
    snapshot_id: str
    chat_version: int
    version: int
    position: int
    role: str
    content: str
    model_id: str
    metadata: dict[str, Any]
    tokens: int
    is_deleted: bool
    edit_reason: str
    edited_by: str | None
    created_us: int
    original_created_us: int
    is_active: bool
    superseded_us: int | None


@dataclass
class MessageHead:
    message_id: UUID
    position: int
    current_version_id: UUID
    version: int
    is_deleted: bool
    tokens: int
    element_hash: str
    original_created_at: datetime


class FileSource(enum.StrEnum):
    USER_UPLOAD = "user_upload"
    AI_GENERATED = "ai_generated"
    SYSTEM = "system"


@dataclass
class MediaFile:
    """One file version (a row of tm_files_view)."""

    id: UUID
    tenant_id: UUID
    chat_id: UUID
    message_id: UUID | None
    snapshot_id: UUID
    chat_version: int
    original_name: str
    display_name: str
    mime_type: str
    size_bytes: int
    checksum_sha256: str
    s3_bucket: str
    s3_key: str
    s3_version_id: str
    thumbnail_s3_key: str | None
    thumbnail_version_id: str | None
    preview_generated: bool
    version: int
    previous_version_id: UUID | None
    source: str
    extracted_text: str | None
    ai_description: str | None
    restored_from_id: UUID | None
    created_at: datetime
    status: str
    archived_at: datetime | None
    version_count: int


@dataclass
class FileHead:
    original_name: str
    current_file_id: UUID
    version: int
    is_deleted: bool
    element_hash: str
    changed_at: datetime


@dataclass
class RestoreRecord:
    id: UUID
    tenant_id: UUID
    chat_id: UUID
    user_id: UUID
    from_snapshot_id: UUID
    to_snapshot_id: UUID
    previous_snapshot_id: UUID | None
    scope: str
    message_ids: list[UUID]
    file_ids: list[UUID]
    range_first_id: UUID | None
    range_last_id: UUID | None
    messages_restored: int
    files_restored: int
    reason: str
    created_at: datetime


@dataclass
class ChatView:
    """A chat as it is now or was at a snapshot."""

    chat_id: UUID
    title: str
    snapshot: Snapshot | None
    messages: list[MessageEntry]
    files: list[MediaFile] = field(default_factory=list)
    next_page_token: str = ""
    labels: list[str] = field(default_factory=list)  # those naming `snapshot` now
    # Message version id (text) -> its file references (service/attachments.py AttachmentRow).
    attachments: dict[str, list[Any]] = field(default_factory=dict)


@dataclass
class RestoreResult:
    snapshot: Snapshot
    messages_restored: int
    files_restored: int
    previous_snapshot_id: UUID | None


@dataclass
class Timeline:
    chat_id: UUID
    title: str
    current_version: int
    message_count: int
    file_count: int
    snapshots: list[Snapshot]
    next_page_token: str
    total_snapshots: int
    total_media_bytes: int
    oldest: datetime | None
    newest: datetime | None
    by_date: dict[str, int]
    labels: dict[UUID, list[str]] = field(default_factory=dict)  # snapshot id -> the labels naming it now


@dataclass
class VerifyProblem:
    detail: str
    snapshot_id: UUID | None = None
    version: int = 0
    file_id: UUID | None = None


@dataclass
class VerifyReport:
    problems: list[VerifyProblem]
    snapshots_checked: int
    files_checked: int

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class Identity:
    tenant_id: UUID
    user_id: UUID | None
