"""The chat list and a chat's life: ListChats, ArchiveChat/UnarchiveChat, DeleteChat/UndeleteChat.

Archiving takes a chat off the default list; it still takes writes. Deleting
is soft: the chat leaves the list and refuses every write but UndeleteChat,
while every version stays readable. Each change is a snapshot of its own
(CHAT_ARCHIVED …), so the timeline tells when and by whom; the state's
checksum does not change, since the flags are not the chat's content.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from service import paging
from service.database import Database
from service.errors import FailedPrecondition, FieldViolation, InvalidArgument
from service.models import Identity, Snapshot, Trigger
from service.validation import Checker
from service.writes import Replay, WriteOptions, open_write

DEFAULT_PAGE = 50
MAX_PAGE = 1000
MAX_QUERY_BYTES = 1024


@dataclass(frozen=True)
class ChatSummary:
    chat_id: UUID
    title: str
    head_version: int
    message_count: int
    file_count: int
    head_time: datetime
    archived: bool
    deleted: bool


@dataclass(frozen=True)
class ChatFilter:
    title_query: str = ""
    user_id: str = ""
    include_archived: bool = False
    include_deleted: bool = False


def _like(text: str) -> str:
    """An ILIKE pattern finding `text` anywhere, its own % and _ taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _key(key: list[object]) -> tuple[datetime, UUID]:
    try:
        return datetime.fromisoformat(str(key[0])), UUID(str(key[1]))
    except (ValueError, IndexError):
        raise InvalidArgument([FieldViolation("page_token", "is not a token this service issued")]) from None


# What each change sets, and what it says when the chat is that way already.
CHANGES: dict[Trigger, tuple[str, bool, str]] = {
    Trigger.CHAT_ARCHIVED: ("archived", True, "the chat is archived already"),
    Trigger.CHAT_UNARCHIVED: ("archived", False, "the chat is not archived"),
    Trigger.CHAT_DELETED: ("deleted", True, "the chat is deleted already"),
    Trigger.CHAT_UNDELETED: ("deleted", False, "the chat is not deleted"),
}


class Chats:
    def __init__(self, db: Database) -> None:
        self.db = db

    def list(
        self, identity: Identity, chat_filter: ChatFilter, page_size: int, page_token: str
    ) -> tuple[list[ChatSummary], str]:
        """The tenant's chats, newest change first."""
        check = Checker()
        size = check.page_size("page_size", page_size, default=DEFAULT_PAGE, maximum=MAX_PAGE)
        check.text("title_query", chat_filter.title_query, max_bytes=MAX_QUERY_BYTES)
        user = check.uuid("user_id", chat_filter.user_id, required=False)
        check.done()
        scope = ("chats", identity.tenant_id, chat_filter)
        after = paging.decode(page_token, scope, list)
        after_time, after_id = _key(after) if after else (None, None)
        with self.db.transaction(identity.tenant_id) as tx:
            rows: list[ChatSummary] = tx.all(
                "chats_page",
                {
                    "tenant_id": identity.tenant_id,
                    "include_archived": chat_filter.include_archived,
                    "include_deleted": chat_filter.include_deleted,
                    "title_pattern": _like(chat_filter.title_query) if chat_filter.title_query else None,
                    "user_id": user,
                    "after_time": after_time,
                    "after_id": after_id,
                    "limit": size + 1,
                },
                ChatSummary,
            )
        return paging.trim(rows, size, scope, lambda c: [c.head_time.isoformat(), str(c.chat_id)])

    def change(self, identity: Identity, chat_id: str, trigger: Trigger, options: WriteOptions) -> Snapshot:
        """Archive, unarchive, delete or undelete a chat: a snapshot with that trigger."""
        column, value, already = CHANGES[trigger]
        check = Checker()
        chat = check.uuid("chat_id", chat_id)
        check.request_id(options.request_id)
        check.expected_version(options.expected_version)
        check.done()
        assert chat is not None
        with self.db.transaction(identity.tenant_id) as tx:
            try:
                undeleting = trigger is Trigger.CHAT_UNDELETED  # the one change a deleted chat takes
                write = open_write(tx, identity, chat, options, (trigger,), register=False, deleted_ok=undeleting)
            except Replay as replay:
                return replay.snapshot
            flags = {"archived": write.head.archived, "deleted": write.head.deleted}
            if flags[column] == value:
                raise FailedPrecondition(already)
            flags[column] = value
            tx.execute("set_chat_flags", {"tenant_id": identity.tenant_id, "chat_id": chat, **flags})
            snapshot: Snapshot = write.commit(trigger, description=trigger.value.replace("_", " "))[0]
            return snapshot
