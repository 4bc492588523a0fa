"""Translation between proto messages and the product's records."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from google.protobuf import json_format, struct_pb2, timestamp_pb2

from generated.timemachine.v1 import resources_pb2 as pb
from service import models
from service.attachments import AttachmentRequest
from service.chats import ChatSummary
from service.errors import FieldViolation, InvalidArgument
from service.export.bundles import Bundle

ROLE_FROM_PROTO = {
    pb.MESSAGE_ROLE_USER: models.Role.USER,
    pb.MESSAGE_ROLE_ASSISTANT: models.Role.ASSISTANT,
    pb.MESSAGE_ROLE_SYSTEM: models.Role.SYSTEM,
}
ROLE_TO_PROTO = {role.value: value for value, role in ROLE_FROM_PROTO.items()}
SCOPE_FROM_PROTO = {
    pb.RESTORE_SCOPE_FULL_CHAT: models.Scope.FULL_CHAT,
    pb.RESTORE_SCOPE_SINGLE_MESSAGE: models.Scope.SINGLE_MESSAGE,
    pb.RESTORE_SCOPE_SINGLE_FILE: models.Scope.SINGLE_FILE,
    pb.RESTORE_SCOPE_MESSAGE_RANGE: models.Scope.MESSAGE_RANGE,
    pb.RESTORE_SCOPE_FILES_ONLY: models.Scope.FILES_ONLY,
}
SCOPE_TO_PROTO = {scope.value: value for value, scope in SCOPE_FROM_PROTO.items()}
SOURCE_FROM_PROTO = {
    pb.FILE_SOURCE_USER_UPLOAD: models.FileSource.USER_UPLOAD,
    pb.FILE_SOURCE_AI_GENERATED: models.FileSource.AI_GENERATED,
    pb.FILE_SOURCE_SYSTEM: models.FileSource.SYSTEM,
}
SOURCE_TO_PROTO = {source.value: value for value, source in SOURCE_FROM_PROTO.items()}
STATUS_TO_PROTO = {
    "active": pb.MEDIA_STATUS_ACTIVE,
    "processing": pb.MEDIA_STATUS_PROCESSING,
    "archived": pb.MEDIA_STATUS_ARCHIVED,
    "soft_deleted": pb.MEDIA_STATUS_SOFT_DELETED,
}
TRIGGER_TO_PROTO = {
    trigger.value: pb.SnapshotTrigger.Value(f"SNAPSHOT_TRIGGER_{trigger.name}") for trigger in models.Trigger
}


def text(value: UUID | str | None) -> str:
    return "" if value is None else str(value)


def timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    # Timestamp.FromDatetime works through time tuples in Python: a third of
    # the cost of converting a large chat. Microseconds give the same fields.
    return None if value is None else timestamp_pb2.Timestamp(**_stamp(models.micros(value)))


def moment(value: timestamp_pb2.Timestamp, field: str) -> datetime:
    """A request's Timestamp as a datetime; one outside years 1-9999 is the caller's mistake."""
    try:
        return value.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise InvalidArgument([FieldViolation(field, "must be a time between years 1 and 9999")]) from None


def struct(value: dict[str, Any]) -> struct_pb2.Struct:
    result = struct_pb2.Struct()
    result.update(value)
    return result


def from_struct(value: struct_pb2.Struct, field: str) -> dict[str, Any]:
    if not value.fields:  # most requests carry none; MessageToDict of an empty Struct was ~5 % of a save's own Python
        return {}
    try:
        converted: dict[str, Any] = json_format.MessageToDict(value)
    except ValueError:  # NaN or Infinity: JSON (and jsonb) has no such numbers
        raise InvalidArgument([FieldViolation(field, "numbers must be finite (no NaN or Infinity)")]) from None
    return converted


def snapshot(row: models.Snapshot, labels: Iterable[str] = ()) -> pb.Snapshot:
    return pb.Snapshot(
        labels=sorted(labels),
        id=str(row.id),
        chat_id=str(row.chat_id),
        version=row.version,
        timestamp=timestamp(row.created_at),
        message_count=row.message_count,
        file_count=row.file_count,
        total_tokens=row.total_tokens,
        trigger=TRIGGER_TO_PROTO[row.trigger],
        trigger_message_id=text(row.trigger_message_id),
        trigger_file_id=text(row.trigger_file_id),
        trigger_description=row.trigger_description,
        previous_snapshot_id=text(row.previous_snapshot_id),
        restored_from_snapshot_id=text(row.restored_from_snapshot_id),
        checksum=row.checksum,
        title=row.title,
        user_id=text(row.user_id),
    )


def _stamp(us: int) -> dict[str, int]:
    """A Timestamp's fields from microseconds since the epoch, which a constructor takes faster than a Timestamp."""
    seconds, rest = divmod(us, 1_000_000)
    return {"seconds": seconds, "nanos": rest * 1000}


def message(row: models.MessageEntry) -> pb.MessageVersion:
    return pb.MessageVersion(**message_fields(row))


def add_messages(container: Any, rows: Iterable[models.MessageEntry]) -> None:
    """Each row as a new element of a repeated MessageVersion field.

    Built in place: a list of messages given to a constructor is copied
    message by message (13 % of a large GetChat's time).
    """
    add = container.add
    for row in rows:
        add(**message_fields(row))


def message_fields(row: models.MessageEntry) -> dict[str, Any]:
    """A MessageVersion's constructor arguments: a dict, which also fills a nested message field."""
    # Only fields that differ from their defaults: a large chat converts
    # thousands of these, and every keyword costs (40 -> 22 us a message).
    fields: dict[str, Any] = {
        "id": row.id,
        "message_id": row.message_id,
        "chat_id": row.chat_id,
        "snapshot_id": row.snapshot_id,
        "role": ROLE_TO_PROTO[row.role],
        "content": row.content,
        "tokens": row.tokens,
        "version": row.version,
        "is_active": row.is_active,
        "is_deleted": row.is_deleted,
        "created_at": _stamp(row.created_us),
        "original_created_at": _stamp(row.original_created_us),
        "chat_version": row.chat_version,
    }
    if row.model_id:
        fields["model_id"] = row.model_id
    if row.metadata:
        fields["metadata"] = struct(row.metadata)
    if row.edit_reason:
        fields["edit_reason"] = row.edit_reason
    if row.edited_by is not None:
        fields["edited_by"] = row.edited_by
    if row.superseded_us is not None:
        fields["superseded_at"] = _stamp(row.superseded_us)
    return fields


def restore_record(row: models.RestoreRecord) -> pb.RestoreRecord:
    record = pb.RestoreRecord(
        id=str(row.id),
        chat_id=str(row.chat_id),
        user_id=str(row.user_id),
        from_snapshot_id=str(row.from_snapshot_id),
        to_snapshot_id=str(row.to_snapshot_id),
        previous_snapshot_id=text(row.previous_snapshot_id),
        scope=SCOPE_TO_PROTO[row.scope],
        message_ids=[str(m) for m in row.message_ids],
        file_ids=[str(f) for f in row.file_ids],
        messages_restored=row.messages_restored,
        files_restored=row.files_restored,
        reason=row.reason,
        created_at=timestamp(row.created_at),
    )
    if row.range_first_id or row.range_last_id:
        record.message_range.first_message_id = text(row.range_first_id)
        record.message_range.last_message_id = text(row.range_last_id)
    return record


def media_file(row: models.MediaFile, *, with_text: bool = True) -> pb.MediaFile:
    return pb.MediaFile(
        id=str(row.id),
        chat_id=str(row.chat_id),
        message_id=text(row.message_id),
        snapshot_id=str(row.snapshot_id),
        original_name=row.original_name,
        display_name=row.display_name,
        mime_type=row.mime_type,
        size_bytes=row.size_bytes,
        checksum_sha256=row.checksum_sha256,
        version=row.version,
        previous_version_id=text(row.previous_version_id),
        source=SOURCE_TO_PROTO[row.source],
        status=STATUS_TO_PROTO[row.status],
        extracted_text=(row.extracted_text or "") if with_text else "",
        ai_description=row.ai_description or "",
        created_at=timestamp(row.created_at),
        archived_at=timestamp(row.archived_at),
        version_count=row.version_count,
        preview_generated=row.preview_generated,
    )


SEARCH_TYPE_FROM_PROTO = {
    pb.SEARCH_TYPE_UNSPECIFIED: "all",
    pb.SEARCH_TYPE_ALL: "all",
    pb.SEARCH_TYPE_MESSAGES: "messages",
    pb.SEARCH_TYPE_FILES: "files",
}


FORMAT_FROM_PROTO = {
    pb.EXPORT_FORMAT_ZIP: "zip",
    pb.EXPORT_FORMAT_JSON: "json",
    pb.EXPORT_FORMAT_MARKDOWN: "markdown",
    pb.EXPORT_FORMAT_PDF: "pdf",
    pb.EXPORT_FORMAT_HTML: "html",
}
FORMAT_TO_PROTO = {name: value for value, name in FORMAT_FROM_PROTO.items()}
EXPORT_STATUS_TO_PROTO = {
    "pending": pb.EXPORT_STATUS_PENDING,
    "processing": pb.EXPORT_STATUS_PROCESSING,
    "ready": pb.EXPORT_STATUS_READY,
    "expired": pb.EXPORT_STATUS_EXPIRED,
    "failed": pb.EXPORT_STATUS_FAILED,
}


def bundle(row: Bundle) -> pb.ExportBundle:
    return pb.ExportBundle(
        id=str(row.id),
        chat_id=str(row.chat_id),
        status=EXPORT_STATUS_TO_PROTO[row.status],
        format=FORMAT_TO_PROTO[row.format],
        size_bytes=row.size_bytes,
        download_count=row.download_count,
        download_url=row.download_url,
        expires_at=timestamp(row.expires_at),
        created_at=timestamp(row.created_at),
        completed_at=timestamp(row.completed_at),
        error_message=row.error_message,
        include_media=row.include_media,
        include_version_history=row.include_version_history,
        from_snapshot_id=text(row.from_snapshot_id),
        to_snapshot_id=str(row.to_snapshot_id),
        sha256=row.sha256,
        file_name=row.file_name,
    )


def chat_summary(row: ChatSummary) -> pb.ChatSummary:
    return pb.ChatSummary(
        chat_id=str(row.chat_id),
        title=row.title,
        current_version=row.head_version,
        message_count=row.message_count,
        file_count=row.file_count,
        updated_at=timestamp(row.head_time),
        archived=row.archived,
        deleted=row.deleted,
    )


REFERENCE_TYPE_FROM_PROTO = {
    pb.ReferenceType.Value(f"REFERENCE_TYPE_{kind.upper()}"): kind
    for kind in ("attachment", "inline", "result", "reference")
}
REFERENCE_TYPE_TO_PROTO = {kind: value for value, kind in REFERENCE_TYPE_FROM_PROTO.items()}


def attachment_requests(given: Iterable[pb.Attachment]) -> list[AttachmentRequest]:
    return [
        AttachmentRequest(
            file_id=a.file_id,
            file_name=a.file_name,
            reference_type=REFERENCE_TYPE_FROM_PROTO.get(a.reference_type),
            display_order=a.display_order,
        )
        for a in given
    ]


def attachment(ref: Any) -> pb.Attachment:
    """A Reference or an AttachmentRow (service/attachments.py: the same names) as the contract's Attachment."""
    return pb.Attachment(
        file_id=str(ref.file_id),
        file_name=ref.original_name,
        reference_type=REFERENCE_TYPE_TO_PROTO[ref.reference_type],
        display_order=ref.display_order,
        file_version=ref.file_version,
        mime_type=ref.mime_type,
        size_bytes=ref.size_bytes,
    )


def add_attachments(messages: Any, found: dict[str, list[Any]]) -> None:
    """Each answered message version's references (most chats have none: nothing to do)."""
    if not found:
        return
    for message in messages:
        refs = found.get(message.id)
        if refs:
            message.attachments.extend(attachment(ref) for ref in refs)
