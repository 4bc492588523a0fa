"""Named versions: labels on snapshots ("before the rewrite").

A label names one snapshot of its chat at a time; it can move to another
snapshot and be taken off. Each change is a SNAPSHOT_LABELED snapshot and a
row of tm_label_changes (migration 015), which only grows, so the history
says what each label named when. Wherever a call names a snapshot it may
name a label instead (GetChatAtSnapshot, Restore, CompareSnapshots,
ExportChat): timeline.resolve_label turns it into the snapshot it names now.
"""

from __future__ import annotations

from uuid import UUID

from service.database import Database
from service.errors import FailedPrecondition
from service.models import Identity, Snapshot, Trigger
from service.timeline import check_label, find_snapshot, resolve_label
from service.validation import Checker
from service.writes import Replay, Write, WriteOptions, open_write


class Labels:
    def __init__(self, db: Database) -> None:
        self.db = db

    def label(self, identity: Identity, chat_id: str, snapshot_id: str, label: str, options: WriteOptions) -> Snapshot:
        """Put `label` on a snapshot, or move it there from the one it named."""
        check = Checker()
        chat = check.uuid("chat_id", chat_id)
        target_id = check.uuid("snapshot_id", snapshot_id)
        name = check_label(check, "label", label, required=True)
        check.request_id(options.request_id)
        check.expected_version(options.expected_version)
        check.done()
        assert chat is not None and target_id is not None and name is not None
        with self.db.transaction(identity.tenant_id) as tx:
            try:
                write = open_write(tx, identity, chat, options, (Trigger.SNAPSHOT_LABELED,), register=False)
            except Replay as replay:
                return replay.snapshot
            target = find_snapshot(tx, identity, chat, target_id, "snapshot_id")
            now = tx.one("label_target", {**write.params, "label": name})
            named = now["snapshot_id"] if now is not None else None
            if named == target.id:
                raise FailedPrecondition(f"label {name!r} names version {target.version} already")
            if named is None:
                description = f"label {name!r} put on version {target.version}"
            else:
                was = find_snapshot(tx, identity, chat, named, "label")
                description = f"label {name!r} moved from version {was.version} to version {target.version}"
            return self._commit(write, name, target.id, description)

    def unlabel(self, identity: Identity, chat_id: str, label: str, options: WriteOptions) -> Snapshot:
        """Take `label` off the snapshot it names; its history stays."""
        check = Checker()
        chat = check.uuid("chat_id", chat_id)
        name = check_label(check, "label", label, required=True)
        check.request_id(options.request_id)
        check.expected_version(options.expected_version)
        check.done()
        assert chat is not None and name is not None
        with self.db.transaction(identity.tenant_id) as tx:
            try:
                write = open_write(tx, identity, chat, options, (Trigger.SNAPSHOT_LABELED,), register=False)
            except Replay as replay:
                return replay.snapshot
            was = resolve_label(tx, identity, chat, name, "label")
            return self._commit(write, name, None, f"label {name!r} taken off version {was.version}")

    @staticmethod
    def _commit(write: Write, name: str, target: UUID | None, description: str) -> Snapshot:
        snapshot: Snapshot = write.commit(Trigger.SNAPSHOT_LABELED, description=description)[0]
        write.tx.execute(
            "insert_label_change",
            {**write.params, "label": name, "chat_version": snapshot.version, "snapshot_id": target},
        )
        return snapshot
