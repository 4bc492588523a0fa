"""Reading history: the chat now, at any snapshot, its timeline and calendar."""

from __future__ import annotations

from contextlib import closing
from datetime import datetime
from typing import Any
from uuid import UUID

from service import attachments, paging, states
from service.database import Database, Transaction
from service.errors import FieldViolation, InvalidArgument, NotFound
from service.models import (
    ChatHead,
    ChatView,
    Identity,
    MessageEntry,
    MessageVersion,
    RestoreRecord,
    Snapshot,
    Timeline,
)
from service.standby import LaggingReads
from service.validation import Checker

DEFAULT_PAGE = 100
MAX_PAGE = 1000


MAX_LABEL_BYTES = 128  # a label (LabelSnapshot)


def require_chat(tx: Transaction, identity: Identity, chat_id: UUID) -> ChatHead:
    params = {"tenant_id": identity.tenant_id, "chat_id": chat_id}
    head: ChatHead | None = tx.one("get_chat_head", params, ChatHead)
    if head is None:
        raise missing_chat(tx, identity.tenant_id, chat_id)
    return head


def missing_chat(tx: Transaction, tenant_id: UUID, chat_id: UUID) -> NotFound:
    """NOT_FOUND for a chat id, saying when it was erased if it was (EraseChat leaves a tombstone)."""
    erased = tx.one("erasure_of", {"tenant_id": tenant_id, "chat_id": chat_id})
    if erased is not None:
        return NotFound(f"chat {chat_id} was erased at {erased['erased_at'].isoformat()} (EraseChat)")
    return NotFound(f"chat {chat_id} does not exist")


def find_snapshot(tx: Transaction, identity: Identity, chat_id: UUID, snapshot_id: UUID, field: str) -> Snapshot:
    params = {"tenant_id": identity.tenant_id, "snapshot_id": snapshot_id}
    snapshot: Snapshot | None = tx.one("snapshot_by_id", params, Snapshot)
    if snapshot is None or snapshot.chat_id != chat_id:
        raise NotFound(f"{field} {snapshot_id} is not a snapshot of chat {chat_id}")
    return snapshot


def resolve_label(tx: Transaction, identity: Identity, chat_id: UUID, label: str, field: str) -> Snapshot:
    """The snapshot a label of the chat names now (service/labels.py)."""
    row = tx.one("label_target", {"tenant_id": identity.tenant_id, "chat_id": chat_id, "label": label})
    if row is None or row["snapshot_id"] is None:
        raise NotFound(f"{field} {label!r} names no snapshot of chat {chat_id}")
    return find_snapshot(tx, identity, chat_id, row["snapshot_id"], field)


def point(
    tx: Transaction,
    identity: Identity,
    chat_id: UUID,
    snapshot_id: UUID | None,
    label: str | None,
    fields: tuple[str, str],
) -> Snapshot:
    """The snapshot a request names by id or by label (the validation made sure it named one)."""
    if snapshot_id is not None:
        return find_snapshot(tx, identity, chat_id, snapshot_id, fields[0])
    assert label is not None
    return resolve_label(tx, identity, chat_id, label, fields[1])


def check_label(check: Checker, field: str, label: str, required: bool = False) -> str | None:
    """A label as given (None when absent and not required): text without control characters."""
    check.text(field, label, max_bytes=MAX_LABEL_BYTES, required=required)
    if label and (any(ord(c) < 32 or ord(c) == 127 for c in label) or label != label.strip()):
        check.fail(field, "must not contain control characters or start or end with spaces")
    return label or None


def check_point(check: Checker, fields: tuple[str, str], snapshot_id: str, label: str) -> UUID | None:
    """A snapshot named by id or by label: exactly one of the two."""
    if snapshot_id and label:
        check.fail(fields[1], f"names a snapshot already named by {fields[0]}: give one of the two")
    name = check_label(check, fields[1], label)
    return check.uuid(fields[0], snapshot_id, required=name is None)


def labels_by_snapshot(tx: Transaction, tenant: UUID, chat: UUID) -> dict[UUID, list[str]]:
    """The chat's labels by the snapshot each names now (a chat has few)."""
    found: dict[UUID, list[str]] = {}
    for row in tx.all("chat_labels", {"tenant_id": tenant, "chat_id": chat}):
        if row["snapshot_id"] is not None:
            found.setdefault(row["snapshot_id"], []).append(row["label"])
    return found


def _weight(message: MessageVersion | MessageEntry) -> int:
    return paging.message_weight(message.content, message.metadata)


def _page_at(tx: Transaction, tenant: UUID, chat: UUID, version: int, after: int, size: int) -> list[MessageEntry]:
    """The messages of a page at `version` after position `after`, and one more when there are more.

    With a page size, that many. Without one, as many as fit one answer: read
    as a stream and stopped at the budget, so each page of a large chat costs
    what it returns (reading to the end for every page cost 2.5x the chat, and a
    page token without a size used to fall back to pages of 100).
    """
    if size:
        return states.messages_at(tx, tenant, chat, version, after_position=after, limit=size + 1)
    with closing(states.stream_entries_at(tx, tenant, chat, version, after_position=after)) as rows:
        return paging.until_full(rows, _weight)


def _references(tx: Transaction, head: ChatHead, messages: list[MessageEntry]) -> dict[str, list[Any]]:
    """The file references of a page's message versions, by key; none looked for in a chat that never had any."""
    if not head.has_attachments:
        return {}
    return attachments.of_versions(tx, head.tenant_id, head.chat_id, [m.id for m in messages])


def _restore_key(key: list[object]) -> tuple[datetime, UUID]:
    try:
        return datetime.fromisoformat(str(key[0])), UUID(str(key[1]))
    except (ValueError, IndexError):
        raise InvalidArgument([FieldViolation("page_token", "is not a token this service issued")]) from None


class Reader:
    """Reads of history: the timeline and the calendar from `lagging` (a standby may serve them), the rest from `db`."""

    def __init__(self, db: Database, lagging: LaggingReads | None = None) -> None:
        self.db = db
        self.lagging = lagging or LaggingReads(db)

    def get_chat(self, identity: Identity, chat_id: str, page_size: int = 0, page_token: str = "") -> ChatView:
        """The chat now; every message unless a page size asks for pages (by chat order)."""
        check = Checker()
        chat = check.uuid("chat_id", chat_id)
        size = check.page_size("page_size", page_size, default=0, maximum=MAX_PAGE)
        check.done()
        assert chat is not None
        scope = ("chat", identity.tenant_id, chat)
        after = paging.decode(page_token, scope, int) or 0
        with self.db.transaction(identity.tenant_id) as tx:
            head = require_chat(tx, identity, chat)
            snapshot = None
            if head.head_snapshot_id is not None:
                snapshot = find_snapshot(tx, identity, chat, head.head_snapshot_id, "snapshot_id")
            # The chat at its head version: a write committing meanwhile is not half seen.
            messages = _page_at(tx, identity.tenant_id, chat, head.head_version, after, size)
            files = states.files_at(tx, identity.tenant_id, chat, head.head_version, with_text=False)
            messages, token = paging.answer(messages, size or None, scope, lambda m: m.position, _weight)
            refs = _references(tx, head, messages)
        return ChatView(
            chat_id=chat,
            title=head.title,
            snapshot=snapshot,
            messages=messages,
            files=files,
            next_page_token=token,
            attachments=refs,
        )

    def list_message_versions(
        self, identity: Identity, chat_id: str, message_id: str, page_size: int = 0, page_token: str = ""
    ) -> tuple[list[MessageVersion], str]:
        """Every version, newest first, unless a page size asks for pages (versions can be 1 MiB each)."""
        check = Checker()
        chat = check.uuid("chat_id", chat_id)
        message = check.uuid("message_id", message_id)
        size = check.page_size("page_size", page_size, default=0, maximum=MAX_PAGE)
        check.done()
        scope = ("message_versions", identity.tenant_id, chat, message)
        before = paging.decode(page_token, scope, int)
        paged, limit = bool(size or page_token), size or DEFAULT_PAGE
        assert chat is not None and message is not None
        with self.db.transaction(identity.tenant_id) as tx:
            rows = states.message_versions(
                tx,
                identity.tenant_id,
                chat,
                message,
                before_version=before if before is not None else states.NEWEST,
                limit=limit + 1 if paged else None,
            )
        if not rows and before is None:
            raise NotFound(f"message {message_id} does not exist in chat {chat_id}")
        return paging.answer(rows, limit if paged else None, scope, lambda v: v.version, _weight)

    def get_chat_at(
        self,
        identity: Identity,
        chat_id: str,
        *,
        snapshot_id: str | None = None,
        version: int | None = None,
        at_time: datetime | None = None,
        label: str | None = None,
        page_size: int = 0,
        page_token: str = "",
    ) -> ChatView:
        """The chat as it was; every message unless a page size asks for pages (by chat order)."""
        check = Checker()
        chat = check.uuid("chat_id", chat_id)
        size = check.page_size("page_size", page_size, default=0, maximum=MAX_PAGE)
        snap = check.uuid("snapshot_id", snapshot_id) if snapshot_id is not None else None
        if version is not None and version <= 0:
            check.fail("version", "must be 1 or more")
        if label is not None:
            check_label(check, "label", label, required=True)
        if snapshot_id is None and version is None and at_time is None and label is None:
            check.fail("point", "one of snapshot_id, version, at_time or label is required")
        check.done()
        assert chat is not None
        params = {"tenant_id": identity.tenant_id, "chat_id": chat}
        with self.db.transaction(identity.tenant_id) as tx:
            head = require_chat(tx, identity, chat)
            snapshot: Snapshot | None
            if snap is not None:
                snapshot = find_snapshot(tx, identity, chat, snap, "snapshot_id")
            elif label is not None:
                snapshot = resolve_label(tx, identity, chat, label, "label")
            elif version is not None:
                snapshot = tx.one("snapshot_by_version", {**params, "version": version}, Snapshot)
                if snapshot is None:
                    raise NotFound(f"chat {chat_id} has no version {version}")
            else:
                snapshot = tx.one("snapshot_at_time", {**params, "at_time": at_time}, Snapshot)
                if snapshot is None:
                    raise NotFound(f"chat {chat_id} has no snapshot at or before {at_time}")
            # Pages belong to the snapshot the point resolved to.
            scope = ("chat_at", identity.tenant_id, chat, snapshot.id)
            after = paging.decode(page_token, scope, int) or 0
            messages = _page_at(tx, identity.tenant_id, chat, snapshot.version, after, size)
            files = states.files_at(tx, identity.tenant_id, chat, snapshot.version, with_text=False)
            labels = labels_by_snapshot(tx, identity.tenant_id, chat).get(snapshot.id, [])
            messages, token = paging.answer(messages, size or None, scope, lambda m: m.position, _weight)
            refs = _references(tx, head, messages)
        return ChatView(
            chat_id=chat,
            title=snapshot.title,
            snapshot=snapshot,
            messages=messages,
            files=files,
            next_page_token=token,
            labels=labels,
            attachments=refs,
        )

    def timeline(self, identity: Identity, chat_id: str, page_size: int, page_token: str, time_zone: str) -> Timeline:
        check = Checker()
        chat = check.uuid("chat_id", chat_id)
        size = check.page_size("page_size", page_size, default=DEFAULT_PAGE, maximum=MAX_PAGE)
        tz = check.time_zone("time_zone", time_zone)
        check.done()
        assert chat is not None
        scope = ("timeline", identity.tenant_id, chat)
        after = paging.decode(page_token, scope, int) or 0
        params = {"tenant_id": identity.tenant_id, "chat_id": chat}

        def read(tx: Transaction) -> tuple[ChatHead, list[Snapshot], list[dict[str, Any]], int, dict[UUID, list[str]]]:
            head = require_chat(tx, identity, chat)
            page = tx.all("snapshots_page", {**params, "after_version": after, "limit": size + 1}, Snapshot)
            calendar = tx.all("snapshot_calendar", {**params, "tz": tz})
            labels = labels_by_snapshot(tx, identity.tenant_id, chat)
            return head, page, calendar, int(tx.one("chat_media_bytes", params)["bytes"]), labels

        head, page, calendar, media_bytes, labels = self.lagging.run(identity.tenant_id, read)
        page, token = paging.trim(page, size, scope, lambda s: s.version)
        return Timeline(
            chat_id=chat,
            title=head.title,
            current_version=head.head_version,
            message_count=head.message_count,
            file_count=head.file_count,
            snapshots=page,
            next_page_token=token,
            total_snapshots=head.head_version,
            total_media_bytes=media_bytes,
            oldest=min((row["oldest"] for row in calendar), default=None),
            newest=max((row["newest"] for row in calendar), default=None),
            by_date={row["day"]: row["snapshots"] for row in calendar},
            labels=labels,
        )

    def snapshots_by_date(
        self, identity: Identity, chat_id: str, day: str, time_zone: str, page_size: int, page_token: str
    ) -> tuple[list[Snapshot], str]:
        check = Checker()
        chat = check.uuid("chat_id", chat_id)
        parsed = check.date("date", day)
        tz = check.time_zone("time_zone", time_zone)
        size = check.page_size("page_size", page_size, default=DEFAULT_PAGE, maximum=MAX_PAGE)
        check.done()
        scope = ("by_date", identity.tenant_id, chat, day, tz)
        after = paging.decode(page_token, scope, int) or 0
        assert chat is not None

        def read(tx: Transaction) -> list[Snapshot]:
            require_chat(tx, identity, chat)
            rows: list[Snapshot] = tx.all(
                "snapshots_by_date",
                {
                    "tenant_id": identity.tenant_id,
                    "chat_id": chat,
                    "day": parsed,
                    "tz": tz,
                    "after_version": after,
                    "limit": size + 1,
                },
                Snapshot,
            )
            return rows

        rows = self.lagging.run(identity.tenant_id, read)
        return paging.trim(rows, size, scope, lambda s: s.version)

    def list_restores(
        self, identity: Identity, chat_id: str, page_size: int, page_token: str
    ) -> tuple[list[RestoreRecord], str]:
        check = Checker()
        chat = check.uuid("chat_id", chat_id)
        size = check.page_size("page_size", page_size, default=DEFAULT_PAGE, maximum=MAX_PAGE)
        check.done()
        scope = ("restores", identity.tenant_id, chat)
        after = paging.decode(page_token, scope, list)
        after_time, after_id = _restore_key(after) if after else (None, None)
        with self.db.transaction(identity.tenant_id) as tx:
            assert chat is not None
            require_chat(tx, identity, chat)
            rows: list[RestoreRecord] = tx.all(
                "restores_page",
                {
                    "tenant_id": identity.tenant_id,
                    "chat_id": chat,
                    "after_time": after_time,
                    "after_id": after_id,
                    "limit": size + 1,
                },
                RestoreRecord,
            )
        return paging.trim(rows, size, scope, lambda r: [r.created_at.isoformat(), str(r.id)])
