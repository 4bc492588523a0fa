"""What an export contains, read in one pass from history.

The chat is exported as it was at `to` (default: now). With history, each
message carries its earlier versions (only those after `from`, when given)
and messages deleted by `to` appear, marked deleted. Messages are streamed
from a server-side cursor, one message (with its versions) at a time, so the
memory used does not grow with the chat.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from service.attachments import AttachmentRow
from service.database import Transaction
from service.models import MediaFile, Snapshot


@dataclass
class Version:
    version: int
    chat_version: int
    role: str
    content: str
    model_id: str
    tokens: int
    is_deleted: bool
    edit_reason: str
    created_at: datetime
    metadata: dict[str, Any]
    edited_by: UUID | None
    attachments: list[AttachmentRow] = field(default_factory=list)


@dataclass
class Message:
    message_id: UUID
    position: int
    role: str
    content: str
    model_id: str
    tokens: int
    metadata: dict[str, Any]
    version: int
    created_at: datetime
    original_created_at: datetime
    deleted: bool
    versions: list[Version] = field(default_factory=list)
    attachments: list[AttachmentRow] = field(default_factory=list)  # those of the version shown


@dataclass
class ExportFile:
    file: MediaFile
    current: bool
    path: str = ""  # where the bytes are inside a ZIP, when media is included


@dataclass
class ExportHeader:
    chat_id: UUID
    title: str
    snapshot: Snapshot
    from_snapshot: Snapshot | None
    include_history: bool
    include_media: bool
    exported_at: datetime
    files: list[ExportFile]
    # Message version id -> its file references (service/attachments.py).
    attachments: dict[UUID, list[AttachmentRow]] = field(default_factory=dict)
    # File version id -> the PNG thumbnail of a referenced image (HTML shows it inline).
    thumbnails: dict[UUID, bytes] = field(default_factory=dict)


def messages(tx: Transaction, header: ExportHeader) -> Iterator[Message]:
    """The exported messages in chat order, each with the versions to show."""
    rows = tx.stream(
        "export_versions",
        {"tenant_id": header.snapshot.tenant_id, "chat_id": header.chat_id, "version": header.snapshot.version},
    )
    since = header.from_snapshot.version if header.from_snapshot else 0
    # Rows come in chat order, each message's versions together.
    for _, group in itertools.groupby(rows, key=lambda row: row["message_id"]):
        message = _message(list(group), since, header.include_history, header.attachments)
        if message is not None:
            yield message


def _message(
    group: list[dict[str, Any]], since: int, include_history: bool, refs: dict[UUID, list[AttachmentRow]]
) -> Message | None:
    last = group[-1]
    deleted = bool(last["is_deleted"])
    if deleted and not include_history:
        return None
    # A deleted message shows its last words, marked deleted.
    shown = next((r for r in reversed(group) if not r["is_deleted"]), last)
    versions = []
    if include_history:
        versions = [
            Version(
                version=r["version"],
                chat_version=r["chat_version"],
                role=r["role"],
                content=r["content"],
                model_id=r["model_id"],
                tokens=r["tokens"],
                is_deleted=r["is_deleted"],
                edit_reason=r["edit_reason"],
                created_at=r["created_at"],
                metadata=r["metadata"],
                edited_by=r["edited_by"],
                attachments=refs.get(r["id"], []),
            )
            for r in group
            if r["chat_version"] > since
        ]
    return Message(
        message_id=last["message_id"],
        position=last["position"],
        role=shown["role"],
        content=shown["content"],
        model_id=shown["model_id"],
        tokens=shown["tokens"],
        metadata=shown["metadata"],
        version=last["version"],
        created_at=last["created_at"],
        original_created_at=last["original_created_at"],
        deleted=deleted,
        versions=versions,
        attachments=refs.get(shown["id"], []),
    )


def history(tx: Transaction, header: ExportHeader) -> Iterator[tuple[str, Iterator[dict[str, Any]]]]:
    """The sections of a whole chat's history up to the exported snapshot, each streamed."""
    params = {"tenant_id": header.snapshot.tenant_id, "chat_id": header.chat_id, "version": header.snapshot.version}
    for section in ("snapshots", "file_deletions", "restores"):
        yield section, (_jsonable(row) for row in tx.stream(f"export_history_{section}", params))


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    """Ids and times as JSON writes them."""
    return {key: _plain(value) for key, value in row.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
