"""CompareSnapshots: what changed between two points of a chat's history.

The message differences are computed in SQL in one pass over the chat
(service/sql/states.sql, message_changes), so only changed messages travel,
and they page by chat position. File differences come with the first page.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

from service import paging, states
from service.database import Database, Transaction
from service.models import Identity, MediaFile, MessageEntry, Snapshot
from service.timeline import MAX_PAGE, check_point, point, require_chat
from service.validation import Checker

FROM, TO = ("from_snapshot_id", "from_label"), ("to_snapshot_id", "to_label")  # a snapshot named by id or by label


@dataclass
class Comparison:
    added_messages: list[MessageEntry] = field(default_factory=list)
    removed_messages: list[MessageEntry] = field(default_factory=list)
    edited_messages: list[tuple[MessageEntry, MessageEntry]] = field(default_factory=list)
    added_files: list[MediaFile] = field(default_factory=list)
    removed_files: list[MediaFile] = field(default_factory=list)
    changed_files: list[tuple[MediaFile, MediaFile]] = field(default_factory=list)
    from_title: str = ""
    to_title: str = ""
    next_page_token: str = ""


# A change row is a MessageEntry's fields and then its change (service/sql/states.sql).
ChangeRow = tuple[Any, ...]
_POSITION = MessageEntry._fields.index("position")
_CONTENT = MessageEntry._fields.index("content")
_METADATA = MessageEntry._fields.index("metadata")


def _by_message(rows: Iterable[ChangeRow]) -> Iterator[tuple[int, list[ChangeRow]]]:
    """The change rows of each message (one, or two for an edit), in chat order."""
    return ((position, list(group)) for position, group in groupby(rows, key=lambda r: r[_POSITION]))


def _weight(change: tuple[int, list[ChangeRow]]) -> int:
    return sum(paging.message_weight(row[_CONTENT], row[_METADATA]) for row in change[1])


class Comparer:
    def __init__(self, db: Database) -> None:
        self.db = db

    def compare(
        self,
        identity: Identity,
        chat_id: str,
        from_snapshot_id: str,
        to_snapshot_id: str,
        page_size: int = 0,
        page_token: str = "",
        from_label: str = "",
        to_label: str = "",
    ) -> Comparison:
        """Every change unless a page size asks for pages (of changed messages, in chat order)."""
        check = Checker()
        chat = check.uuid("chat_id", chat_id)
        first = check_point(check, FROM, from_snapshot_id, from_label)
        last = check_point(check, TO, to_snapshot_id, to_label)
        size = check.page_size("page_size", page_size, default=0, maximum=MAX_PAGE)
        check.done()
        assert chat is not None
        with self.db.transaction(identity.tenant_id) as tx:
            require_chat(tx, identity, chat)
            before_snapshot = point(tx, identity, chat, first, from_label, FROM)
            after_snapshot = point(tx, identity, chat, last, to_label, TO)
            # Pages belong to the snapshots the request resolved to (a label may move meanwhile).
            scope = ("compare", identity.tenant_id, chat, before_snapshot.id, after_snapshot.id)
            after = paging.decode(page_token, scope, int) or 0
            return changes_between(
                tx,
                before_snapshot,
                after_snapshot,
                size=size,
                after_position=after,
                scope=scope,
                with_files=not page_token,
            )


def changes_between(
    tx: Transaction,
    before_snapshot: Snapshot,
    after_snapshot: Snapshot,
    *,
    size: int = 0,
    after_position: int = 0,
    scope: tuple[object, ...] = (),
    with_files: bool = True,
) -> Comparison:
    """What changed from one snapshot of a chat to another, computed in SQL (also a restore's preview)."""
    tenant, chat = after_snapshot.tenant_id, after_snapshot.chat_id
    params = {
        "tenant_id": tenant,
        "chat_id": chat,
        "from_version": before_snapshot.version,
        "to_version": after_snapshot.version,
        "after_position": after_position,
        # An edit is two rows: this many hold `size` messages and the next one's first row.
        "limit": 2 * size + 2 if size else None,
    }
    changes: list[tuple[int, list[ChangeRow]]]
    if size:
        changes = list(_by_message(tx.all("message_changes", params, tuple)))
    else:  # as many as fit one answer, read as a stream and stopped there
        with closing(tx.stream("message_changes", params, tuple)) as rows:
            changes = paging.until_full(_by_message(rows), _weight)
    files_before: dict[str, MediaFile] = {}
    files_after: dict[str, MediaFile] = {}
    if with_files:
        before_files = states.files_at(tx, tenant, chat, before_snapshot.version, with_text=False)
        after_files = states.files_at(tx, tenant, chat, after_snapshot.version, with_text=False)
        files_before = {f.original_name: f for f in before_files}
        files_after = {f.original_name: f for f in after_files}
    result = Comparison(from_title=before_snapshot.title, to_title=after_snapshot.title)
    changes, result.next_page_token = paging.answer(changes, size or None, scope, lambda c: c[0], _weight)
    for _, group in changes:
        kinds = {row[-1]: MessageEntry._make(row[:-1]) for row in group}
        if "added" in kinds:
            result.added_messages.append(kinds["added"])
        elif "removed" in kinds:
            result.removed_messages.append(kinds["removed"])
        else:
            result.edited_messages.append((kinds["before"], kinds["after"]))
    result.added_files = [f for k, f in files_after.items() if k not in files_before]
    result.removed_files = [f for k, f in files_before.items() if k not in files_after]
    result.changed_files = [
        (files_before[k], f)
        for k, f in files_after.items()
        if k in files_before
        and (files_before[k].checksum_sha256, files_before[k].mime_type) != (f.checksum_sha256, f.mime_type)
    ]
    return result
