"""Messages and their files: references from message versions to file versions.

The seed links a message version to specific file versions with a type
(attachment, inline, result, reference) and a display order. A caller names
a file version by id, or a file name meaning its current version; either way
the reference stores the version, so it keeps naming that version after the
file moves on, and DeleteFile does not break it (the version stays readable
through it). A new message version gets the references given with it; an
edit that gives none, and a restored version, keep those of the version they
follow or restore (migrations/017, service/sql/attachments.sql).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple
from uuid import UUID

from service.database import Transaction
from service.errors import FieldViolation, InvalidArgument
from service.models import Identity, MediaFile
from service.validation import Checker

MAX_ATTACHMENTS = 100
TYPES = frozenset({"attachment", "inline", "result", "reference"})


@dataclass(frozen=True)
class AttachmentRequest:
    """A reference as a caller gives it: a file version id or a file name, a type and an order."""

    file_id: str = ""
    file_name: str = ""
    reference_type: str | None = None
    display_order: int = 0


@dataclass(frozen=True)
class Reference:
    """A reference resolved to a file version of the chat."""

    file_id: UUID
    reference_type: str
    display_order: int
    original_name: str
    file_version: int
    mime_type: str
    size_bytes: int


class AttachmentRow(NamedTuple):
    """A stored reference with what it names (service/sql/attachments.sql, attachments_of)."""

    message_version_id: UUID
    display_order: int
    file_id: UUID
    reference_type: str
    original_name: str
    file_version: int
    mime_type: str
    size_bytes: int


def check(checker: Checker, given: list[AttachmentRequest]) -> None:
    """The references' shape, before any database work."""
    if len(given) > MAX_ATTACHMENTS:
        checker.fail("attachments", f"at most {MAX_ATTACHMENTS} references a message version")
    orders: set[int] = set()
    for index, ref in enumerate(given):
        where = f"attachments[{index}]"
        if bool(ref.file_id) == bool(ref.file_name):
            checker.fail(where, "needs file_id or file_name, one of the two")
        elif ref.file_id:
            checker.uuid(f"{where}.file_id", ref.file_id)
        if ref.reference_type not in TYPES:
            checker.fail(f"{where}.reference_type", "is required: ATTACHMENT, INLINE, RESULT or REFERENCE")
        if ref.display_order in orders:
            checker.fail(f"{where}.display_order", "is another reference's")
        orders.add(ref.display_order)


def resolve(tx: Transaction, identity: Identity, chat: UUID, given: list[AttachmentRequest]) -> list[Reference]:
    """Each reference's file version, which must be one of this chat's (a name: its current version)."""
    found: list[Reference] = []
    for index, ref in enumerate(given):
        where = f"attachments[{index}]"
        if ref.file_id:
            row: MediaFile | None = tx.one(
                "file_by_id", {"tenant_id": identity.tenant_id, "file_id": UUID(ref.file_id)}, MediaFile
            )
            if row is None or row.chat_id != chat:
                raise InvalidArgument([FieldViolation(f"{where}.file_id", "is not a file version of this chat")])
        else:
            head = tx.one(
                "get_file_head", {"tenant_id": identity.tenant_id, "chat_id": chat, "original_name": ref.file_name}
            )
            if head is None or head["is_deleted"]:
                raise InvalidArgument([FieldViolation(f"{where}.file_name", "is no current file of this chat")])
            row = tx.one("file_by_id", {"tenant_id": identity.tenant_id, "file_id": head["current_file_id"]}, MediaFile)
            assert row is not None
        assert ref.reference_type is not None
        found.append(
            Reference(
                row.id,
                ref.reference_type,
                ref.display_order,
                row.original_name,
                row.version,
                row.mime_type,
                row.size_bytes,
            )
        )
    return sorted(found, key=lambda r: r.display_order)


def of_versions(tx: Transaction, tenant: UUID, chat: UUID, ids: list[str]) -> dict[str, list[AttachmentRow]]:
    """The references of these message versions (ids as text), by version id, in display order."""
    if not ids:
        return {}
    found: dict[str, list[AttachmentRow]] = {}
    rows = tx.all("attachments_of", {"tenant_id": tenant, "chat_id": chat, "ids": ids}, AttachmentRow, prepare=False)
    for row in rows:
        found.setdefault(str(row.message_version_id), []).append(row)
    return found
