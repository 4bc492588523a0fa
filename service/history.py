"""Chat actions: save, edit, delete, rename, manual snapshot.

Each method validates its input, then runs one write (service/writes.py).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from psycopg.types.json import Jsonb

from service import attachments as references
from service import states
from service.attachments import AttachmentRequest
from service.database import Database
from service.errors import AlreadyExists
from service.models import Identity, MessageVersion, Role, Snapshot, Trigger
from service.validation import Checker
from service.writes import Replay, Write, WriteOptions, open_write


class History:
    def __init__(self, db: Database, max_message_bytes: int) -> None:
        self.db = db
        self.max_message_bytes = max_message_bytes

    def _check_write(self, check: Checker, chat_id: str, options: WriteOptions) -> UUID | None:
        chat = check.uuid("chat_id", chat_id)
        check.request_id(options.request_id)
        check.expected_version(options.expected_version)
        return chat

    def save_message(
        self,
        identity: Identity,
        *,
        chat_id: str,
        message_id: str,
        role: Role | None,
        content: str,
        model_id: str,
        metadata: dict[str, Any],
        tokens: int,
        options: WriteOptions,
        attachments: list[AttachmentRequest] | None = None,
    ) -> tuple[MessageVersion, Snapshot]:
        check = Checker()
        chat = self._check_write(check, chat_id, options)
        references.check(check, attachments or [])
        chosen = check.uuid("message_id", message_id, required=False)
        message = chosen or uuid4()
        check.enum("role", role)
        check.text("content", content, max_bytes=self.max_message_bytes)
        check.text("model_id", model_id)
        check.metadata("metadata", metadata)
        check.non_negative("tokens", tokens)
        check.done()
        assert chat is not None and role is not None
        trigger = Trigger.MESSAGE_SENT if role is Role.USER else Trigger.MESSAGE_RECEIVED
        if not attachments:
            saved = self._save_at_once(
                identity, chat, message, trigger, role=role, content=content, model_id=model_id,
                metadata=metadata, tokens=tokens, options=options,
            )  # fmt: skip
            if saved is not None:
                return saved
        triggers = (Trigger.MESSAGE_SENT, Trigger.MESSAGE_RECEIVED)
        with self.db.transaction(identity.tenant_id) as tx:
            try:
                write = open_write(tx, identity, chat, options, triggers)
            except Replay as replay:
                return self._replayed_message(write_tx=tx, identity=identity, snapshot=replay.snapshot)
            # A fresh uuid4 cannot collide; only a caller's id needs the look-up.
            if chosen is not None and write.message_head(message) is not None:
                raise AlreadyExists(f"message {message} already exists in this chat; use EditMessage")
            refs = references.resolve(tx, identity, chat, attachments or [])
            staged = write.put_message(
                message,
                None,
                role=role.value,
                content=content,
                model_id=model_id,
                metadata=metadata,
                tokens=tokens,
                is_deleted=False,
                attachments=refs,
            )
            snapshot, written = write.commit(
                trigger, trigger_message_id=staged.message_id, description=f"{role.value} message saved"
            )
            return written[0], snapshot

    def _save_at_once(
        self,
        identity: Identity,
        chat: UUID,
        message: UUID,
        trigger: Trigger,
        *,
        role: Role,
        content: str,
        model_id: str,
        metadata: dict[str, Any],
        tokens: int,
        options: WriteOptions,
    ) -> tuple[MessageVersion, Snapshot] | None:
        """A message saved in one round trip (save_message in service/sql/history.sql); None: not the
        ordinary case (a new or deleted chat, another version expected, a used request or message id),
        which the general path handles. It writes what the general path writes, checksum included."""
        version_id = uuid4()
        row = self.db.at_once(
            identity.tenant_id,
            "save_message",
            {
                "tenant_id": identity.tenant_id, "chat_id": chat, "id": uuid4(), "version_id": version_id,
                "message_id": message, "role": role.value, "content": content, "model_id": model_id,
                "metadata": Jsonb(metadata), "tokens": tokens, "trigger": trigger.value,
                "trigger_description": f"{role.value} message saved", "user_id": identity.user_id,
                "request_id": options.request_id or None, "expected_version": options.expected_version,
            },
            tuple,
        )  # fmt: skip
        if row is None:
            return None
        self.db.snapshots.add(trigger.value)
        snapshot = Snapshot(*row[:-1])  # the snapshot's columns, then the message's position
        version = MessageVersion(
            id=version_id,
            tenant_id=snapshot.tenant_id,
            chat_id=snapshot.chat_id,
            message_id=message,
            snapshot_id=snapshot.id,
            chat_version=snapshot.version,
            version=1,
            position=row[-1],
            role=role.value,
            content=content,
            model_id=model_id,
            metadata=metadata,
            tokens=tokens,
            is_deleted=False,
            edit_reason="",
            edited_by=identity.user_id,
            created_at=snapshot.created_at,
            original_created_at=snapshot.created_at,
            is_active=True,
        )
        return version, snapshot

    def edit_message(
        self,
        identity: Identity,
        *,
        chat_id: str,
        message_id: str,
        content: str,
        edit_reason: str,
        options: WriteOptions,
        attachments: list[AttachmentRequest] | None = None,
    ) -> tuple[MessageVersion, Snapshot]:
        check = Checker()
        chat = self._check_write(check, chat_id, options)
        references.check(check, attachments or [])
        message = check.uuid("message_id", message_id)
        check.text("content", content, max_bytes=self.max_message_bytes)
        check.text("edit_reason", edit_reason)
        check.done()
        assert chat is not None and message is not None
        with self.db.transaction(identity.tenant_id) as tx:
            try:
                write = open_write(tx, identity, chat, options, (Trigger.MESSAGE_EDITED,), register=False)
            except Replay as replay:
                return self._replayed_message(write_tx=tx, identity=identity, snapshot=replay.snapshot)
            head, current = write.live_message(message)
            staged = write.put_message(
                message,
                head,
                role=current.role,
                content=content,
                model_id=current.model_id,
                metadata=current.metadata,
                tokens=current.tokens,
                is_deleted=False,
                edit_reason=edit_reason,
                # None keeps the references of the version edited.
                attachments=references.resolve(tx, identity, chat, attachments) if attachments else None,
            )
            snapshot, written = write.commit(
                Trigger.MESSAGE_EDITED,
                trigger_message_id=message,
                description=edit_reason or "message edited",
            )
            if staged.attachments is None and write.head.has_attachments:
                kept = references.of_versions(tx, identity.tenant_id, chat, [str(staged.id)])
                written[0].attachments = kept.get(str(staged.id), [])
            return written[0], snapshot

    def delete_message(self, identity: Identity, *, chat_id: str, message_id: str, options: WriteOptions) -> Snapshot:
        check = Checker()
        chat = self._check_write(check, chat_id, options)
        message = check.uuid("message_id", message_id)
        check.done()
        assert chat is not None and message is not None
        with self.db.transaction(identity.tenant_id) as tx:
            try:
                write = open_write(tx, identity, chat, options, (Trigger.MESSAGE_DELETED,), register=False)
            except Replay as replay:
                return replay.snapshot
            head, current = write.live_message(message)
            # A tombstone: a new version that says "gone", so every earlier
            # snapshot still shows the message as it was.
            write.put_message(
                message,
                head,
                role=current.role,
                content="",
                model_id=current.model_id,
                metadata={},
                tokens=0,
                is_deleted=True,
            )
            snapshot, _ = write.commit(
                Trigger.MESSAGE_DELETED, trigger_message_id=message, description="message deleted"
            )
            return snapshot

    def rename_chat(self, identity: Identity, *, chat_id: str, title: str, options: WriteOptions) -> Snapshot:
        check = Checker()
        chat = self._check_write(check, chat_id, options)
        check.text("title", title, required=True)
        check.done()
        assert chat is not None

        def rename(write: Write) -> Snapshot:
            write.set_title(title)
            return write.commit(Trigger.CHAT_RENAMED, description=f"renamed to {title}")[0]

        return self._simple_write(identity, chat, options, Trigger.CHAT_RENAMED, rename)

    def create_snapshot(self, identity: Identity, *, chat_id: str, description: str, options: WriteOptions) -> Snapshot:
        check = Checker()
        chat = self._check_write(check, chat_id, options)
        check.text("description", description)
        check.done()
        assert chat is not None

        def mark(write: Write) -> Snapshot:
            return write.commit(Trigger.MANUAL_SNAPSHOT, description=description)[0]

        return self._simple_write(identity, chat, options, Trigger.MANUAL_SNAPSHOT, mark)

    def _simple_write(
        self,
        identity: Identity,
        chat: UUID,
        options: WriteOptions,
        trigger: Trigger,
        action: Any,
    ) -> Snapshot:
        with self.db.transaction(identity.tenant_id) as tx:
            try:
                write = open_write(tx, identity, chat, options, (trigger,))
            except Replay as replay:
                return replay.snapshot
            result: Snapshot = action(write)
            return result

    @staticmethod
    def _replayed_message(write_tx: Any, identity: Identity, snapshot: Snapshot) -> tuple[MessageVersion, Snapshot]:
        assert snapshot.trigger_message_id is not None
        (message,) = states.message_versions(
            write_tx, identity.tenant_id, snapshot.chat_id, snapshot.trigger_message_id, chat_version=snapshot.version
        )
        return message, snapshot
