"""CompareSnapshots: what changed between two points of a chat's history."""

from __future__ import annotations

from dataclasses import dataclass, field

from service.database import Database
from service.models import Identity, MediaFile, MessageVersion
from service.timeline import find_snapshot, messages_at, require_chat
from service.validation import Checker


@dataclass
class Comparison:
    added_messages: list[MessageVersion] = field(default_factory=list)
    removed_messages: list[MessageVersion] = field(default_factory=list)
    edited_messages: list[tuple[MessageVersion, MessageVersion]] = field(default_factory=list)
    added_files: list[MediaFile] = field(default_factory=list)
    removed_files: list[MediaFile] = field(default_factory=list)
    changed_files: list[tuple[MediaFile, MediaFile]] = field(default_factory=list)
    from_title: str = ""
    to_title: str = ""


class Comparer:
    def __init__(self, db: Database) -> None:
        self.db = db

    def compare(self, identity: Identity, chat_id: str, from_snapshot_id: str, to_snapshot_id: str) -> Comparison:
        check = Checker()
        chat = check.uuid("chat_id", chat_id)
        first = check.uuid("from_snapshot_id", from_snapshot_id)
        last = check.uuid("to_snapshot_id", to_snapshot_id)
        check.done()
        assert chat is not None and first is not None and last is not None
        with self.db.transaction(identity.tenant_id) as tx:
            require_chat(tx, identity, chat)
            before_snapshot = find_snapshot(tx, identity, chat, first, "from_snapshot_id")
            after_snapshot = find_snapshot(tx, identity, chat, last, "to_snapshot_id")
            before = {m.message_id: m for m in messages_at(tx, identity, chat, before_snapshot.version)}
            after = {m.message_id: m for m in messages_at(tx, identity, chat, after_snapshot.version)}
            params = {"tenant_id": identity.tenant_id, "chat_id": chat}
            files_before = {
                f.original_name: f
                for f in tx.all("files_at_version", {**params, "version": before_snapshot.version}, MediaFile)
            }
            files_after = {
                f.original_name: f
                for f in tx.all("files_at_version", {**params, "version": after_snapshot.version}, MediaFile)
            }
        result = Comparison(from_title=before_snapshot.title, to_title=after_snapshot.title)
        result.added_messages = [m for k, m in after.items() if k not in before]
        result.removed_messages = [m for k, m in before.items() if k not in after]
        result.edited_messages = [
            (before[k], m)
            for k, m in after.items()
            if k in before and (before[k].role, before[k].content) != (m.role, m.content)
        ]
        result.added_files = [f for k, f in files_after.items() if k not in files_before]
        result.removed_files = [f for k, f in files_before.items() if k not in files_after]
        result.changed_files = [
            (files_before[k], f)
            for k, f in files_after.items()
            if k in files_before
            and (files_before[k].checksum_sha256, files_before[k].mime_type) != (f.checksum_sha256, f.mime_type)
        ]
        return result
