"""Chat actions: save, edit, delete, rename, manual snapshot.

Each method validates its input, then runs one write (service/writes.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar
from uuid import UUID, uuid4

from psycopg.types.json import Jsonb

from service import attachments as references
from service import states
from service.async_database import AsyncDatabase
from service.attachments import AttachmentRequest
from service.database import Database
from service.errors import AlreadyExists
from service.models import Identity, MessageVersion, Role, Snapshot, Trigger
from service.tally import Tally
from service.validation import Checker
from service.writes import Replay, WriteOptions, open_write

T = TypeVar("T")
U = TypeVar("U")


@dataclass(frozen=True)
class OneTrip(Generic[T]):
    """An ordinary write as one statement in one round trip (Database.at_once, AsyncDatabase.at_once):
    the statement, its parameters and row type, the trigger of the snapshot it writes, and the call's
    answer made from the row it returns. No row: not ordinary, nothing written."""

    tenant_id: UUID
    statement: str
    params: dict[str, Any]
    row: type[Any]
    trigger: Trigger
    answer: Callable[[Any], T]

    def then(self, pick: Callable[[T], U]) -> OneTrip[U]:
        """The same write answering with pick(answer)."""
        answer = self.answer
        return replace(self, answer=lambda row: pick(answer(row)))  # type: ignore[arg-type, return-value]


@dataclass(frozen=True)
class NewMessage:
    """A SaveMessage's fields, checked."""

    chat: UUID
    message: UUID
    chosen: bool  # the caller named the message (else a fresh uuid4, which cannot collide)
    role: Role
    content: str
    model_id: str
    metadata: dict[str, Any]
    tokens: int
    options: WriteOptions
    attachments: list[AttachmentRequest]

    @property
    def trigger(self) -> Trigger:
        return Trigger.MESSAGE_SENT if self.role is Role.USER else Trigger.MESSAGE_RECEIVED


@dataclass(frozen=True)
class MessageEdit:
    """An EditMessage's fields, checked; or a DeleteMessage's, a delete being the edit to a tombstone."""

    chat: UUID
    message: UUID
    content: str
    edit_reason: str
    options: WriteOptions
    attachments: list[AttachmentRequest]
    deletes: bool = False

    @property
    def trigger(self) -> Trigger:
        return Trigger.MESSAGE_DELETED if self.deletes else Trigger.MESSAGE_EDITED


@dataclass(frozen=True)
class ChatMark:
    """A RenameChat's or CreateSnapshot's fields, checked: a snapshot of the chat as it is, under a new
    title (`title`) or its own (None)."""

    chat: UUID
    title: str | None
    trigger: Trigger
    description: str
    options: WriteOptions

    @property
    def write(self) -> str:
        """Its name in tm_write_paths_total."""
        return "rename" if self.title is not None else "snapshot"


class History:
    def __init__(self, db: Database, max_message_bytes: int, loop_db: AsyncDatabase | None = None) -> None:
        self.db = db
        self.max_message_bytes = max_message_bytes
        self.loop_db = loop_db  # for save_message_async's ordinary case (service/async_database.py)
        # Writes by the path they took, "save/one_trip", "edit/general" … (server/metrics.py): many calls
        # on the general path mean contention on chats or a mix of writes the one trip does not take.
        self.paths = Tally()

    def _check_write(self, check: Checker, chat_id: str, options: WriteOptions) -> UUID | None:
        chat = check.uuid("chat_id", chat_id)
        check.request_id(options.request_id)
        check.expected_version(options.expected_version)
        return chat

    def new_message(
        self,
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
    ) -> NewMessage:
        """A SaveMessage's fields, checked (every bad one reported at once: InvalidArgument), before either path."""
        check = Checker()
        chat = self._check_write(check, chat_id, options)
        references.check(check, attachments or [])
        chosen = check.uuid("message_id", message_id, required=False)
        check.enum("role", role)
        check.text("content", content, max_bytes=self.max_message_bytes)
        check.text("model_id", model_id)
        check.metadata("metadata", metadata)
        check.non_negative("tokens", tokens)
        check.done()
        assert chat is not None and role is not None
        return NewMessage(
            chat, chosen or uuid4(), chosen is not None, role, content, model_id, metadata, tokens, options,
            attachments or [],
        )  # fmt: skip

    def save_message(self, identity: Identity, new: NewMessage) -> tuple[MessageVersion, Snapshot]:
        """A new message (checked by new_message): the ordinary case in one round trip, else a transaction."""
        return self._write("save", self._save_trip(identity, new), lambda: self._save_in_transaction(identity, new))

    async def save_message_async(self, identity: Identity, new: NewMessage) -> tuple[MessageVersion, Snapshot]:
        """save_message for the event loop: the ordinary case awaited there, the rest in a pool thread
        (the loop's default executor) with the call's context (identity, deadline)."""
        trip = self._save_trip(identity, new)
        return await self._write_async("save", trip, lambda: self._save_in_transaction(identity, new))

    def _write(self, write: str, trip: OneTrip[T] | None, general: Callable[[], T]) -> T:
        """`trip` in one round trip from this thread, else `general` (a transaction); counted by path."""
        done = self._one_trip(trip)
        self._count(write, done is not None)
        return done if done is not None else general()

    async def _write_async(self, write: str, trip: OneTrip[T] | None, general: Callable[[], T]) -> T:
        """_write on the event loop: `trip` awaited there, `general` in a pool thread."""
        done = await self._one_trip_async(trip)
        self._count(write, done is not None)
        return done if done is not None else await asyncio.to_thread(general)

    def _one_trip(self, trip: OneTrip[T] | None) -> T | None:
        if trip is None:
            return None
        return self._answer(trip, self.db.at_once(trip.tenant_id, trip.statement, trip.params, trip.row))

    async def _one_trip_async(self, trip: OneTrip[T] | None) -> T | None:
        if trip is None or self.loop_db is None:
            return None
        return self._answer(trip, await self.loop_db.at_once(trip.tenant_id, trip.statement, trip.params, trip.row))

    def _answer(self, trip: OneTrip[T], row: Any) -> T | None:
        if row is None:
            return None
        self.db.snapshots.add(trip.trigger.value)  # committed: the statement ran in its own transaction
        return trip.answer(row)

    def _count(self, write: str, one_trip: bool) -> None:
        self.paths.add(f"{write}/{'one_trip' if one_trip else 'general'}")

    def _save_trip(self, identity: Identity, new: NewMessage) -> OneTrip[tuple[MessageVersion, Snapshot]] | None:
        """The ordinary save as one statement (see _save_params); None: attachments, which it does not take."""
        if new.attachments:
            return None
        version_id = uuid4()
        params = _save_params(identity, new, version_id)
        saved = lambda row: self._saved(identity, new, version_id, row)  # noqa: E731
        return OneTrip(identity.tenant_id, "save_message", params, tuple, new.trigger, saved)

    def _save_in_transaction(self, identity: Identity, new: NewMessage) -> tuple[MessageVersion, Snapshot]:
        """The general path: a new or deleted chat, a replay, another version expected, attachments."""
        triggers = (Trigger.MESSAGE_SENT, Trigger.MESSAGE_RECEIVED)
        with self.db.transaction(identity.tenant_id) as tx:
            try:
                write = open_write(tx, identity, new.chat, new.options, triggers)
            except Replay as replay:
                return self._replayed_message(write_tx=tx, identity=identity, snapshot=replay.snapshot)
            if new.chosen and write.message_head(new.message) is not None:
                raise AlreadyExists(f"message {new.message} already exists in this chat; use EditMessage")
            refs = references.resolve(tx, identity, new.chat, new.attachments)
            staged = write.put_message(
                new.message,
                None,
                role=new.role.value,
                content=new.content,
                model_id=new.model_id,
                metadata=new.metadata,
                tokens=new.tokens,
                is_deleted=False,
                attachments=refs,
            )
            snapshot, written = write.commit(
                new.trigger, trigger_message_id=staged.message_id, description=f"{new.role.value} message saved"
            )
            return written[0], snapshot

    def _saved(
        self, identity: Identity, new: NewMessage, version_id: UUID, row: tuple[Any, ...]
    ) -> tuple[MessageVersion, Snapshot]:
        """What save_message (service/sql/history.sql) wrote, from the row it returned: the snapshot's
        columns, then the message's position."""
        snapshot = Snapshot(*row[:-1])
        version = _written_version(
            identity, snapshot, version_id, new.message, version=1, position=row[-1], role=new.role.value,
            content=new.content, model_id=new.model_id, metadata=new.metadata, tokens=new.tokens, is_deleted=False,
            edit_reason="", original_created_at=snapshot.created_at,
        )  # fmt: skip
        return version, snapshot

    def new_edit(
        self,
        *,
        chat_id: str,
        message_id: str,
        content: str,
        edit_reason: str,
        options: WriteOptions,
        attachments: list[AttachmentRequest] | None = None,
    ) -> MessageEdit:
        """An EditMessage's fields, checked (every bad one reported at once: InvalidArgument), before either path."""
        check = Checker()
        chat = self._check_write(check, chat_id, options)
        references.check(check, attachments or [])
        message = check.uuid("message_id", message_id)
        check.text("content", content, max_bytes=self.max_message_bytes)
        check.text("edit_reason", edit_reason)
        check.done()
        assert chat is not None and message is not None
        return MessageEdit(chat, message, content, edit_reason, options, attachments or [])

    def new_deletion(self, *, chat_id: str, message_id: str, options: WriteOptions) -> MessageEdit:
        """A DeleteMessage's fields, checked, as the edit to a tombstone (no content, metadata or tokens)."""
        check = Checker()
        chat = self._check_write(check, chat_id, options)
        message = check.uuid("message_id", message_id)
        check.done()
        assert chat is not None and message is not None
        return MessageEdit(chat, message, "", "", options, [], deletes=True)

    def edit_message(self, identity: Identity, edit: MessageEdit) -> tuple[MessageVersion, Snapshot]:
        """A message's new version (checked by new_edit): the ordinary case in one round trip, else a transaction."""
        return self._write("edit", self._change_trip(identity, edit), lambda: self._edit_in_transaction(identity, edit))

    async def edit_message_async(self, identity: Identity, edit: MessageEdit) -> tuple[MessageVersion, Snapshot]:
        """edit_message for the event loop, as save_message_async."""
        trip = self._change_trip(identity, edit)
        return await self._write_async("edit", trip, lambda: self._edit_in_transaction(identity, edit))

    def _change_trip(self, identity: Identity, edit: MessageEdit) -> OneTrip[tuple[MessageVersion, Snapshot]] | None:
        """The ordinary edit or delete as one statement (edit_message in service/sql/history.sql);
        None: attachments given, which it does not take."""
        if edit.attachments:
            return None
        version_id = uuid4()
        params = _change_params(identity, edit, version_id)
        edited = lambda row: self._edited(identity, edit, version_id, row)  # noqa: E731
        return OneTrip(identity.tenant_id, "edit_message", params, tuple, edit.trigger, edited)

    def _edit_in_transaction(self, identity: Identity, edit: MessageEdit) -> tuple[MessageVersion, Snapshot]:
        """The general path: a missing or deleted chat or message, a replay, another version expected,
        attachments given or kept."""
        chat, message = edit.chat, edit.message
        with self.db.transaction(identity.tenant_id) as tx:
            try:
                write = open_write(tx, identity, chat, edit.options, (Trigger.MESSAGE_EDITED,), register=False)
            except Replay as replay:
                return self._replayed_message(write_tx=tx, identity=identity, snapshot=replay.snapshot)
            head, current = write.live_message(message)
            staged = write.put_message(
                message,
                head,
                role=current.role,
                content=edit.content,
                model_id=current.model_id,
                metadata=current.metadata,
                tokens=current.tokens,
                is_deleted=False,
                edit_reason=edit.edit_reason,
                # None keeps the references of the version edited.
                attachments=references.resolve(tx, identity, chat, edit.attachments) if edit.attachments else None,
            )
            snapshot, written = write.commit(
                Trigger.MESSAGE_EDITED,
                trigger_message_id=message,
                description=edit.edit_reason or "message edited",
            )
            if staged.attachments is None and write.head.has_attachments:
                kept = references.of_versions(tx, identity.tenant_id, chat, [str(staged.id)])
                written[0].attachments = kept.get(str(staged.id), [])
            return written[0], snapshot

    def _edited(
        self, identity: Identity, edit: MessageEdit, version_id: UUID, row: tuple[Any, ...]
    ) -> tuple[MessageVersion, Snapshot]:
        """What edit_message (service/sql/history.sql) wrote, from the row it returned: the snapshot's
        columns, then the new version's position, version, role, model id, metadata, tokens and
        original time."""
        snapshot = Snapshot(*row[:-7])
        position, version_number, role, model_id, metadata, tokens, original_created_at = row[-7:]
        version = _written_version(
            identity, snapshot, version_id, edit.message, version=version_number, position=position, role=role,
            content=edit.content, model_id=model_id, metadata=metadata, tokens=tokens, is_deleted=edit.deletes,
            edit_reason=edit.edit_reason, original_created_at=original_created_at,
        )  # fmt: skip
        return version, snapshot

    async def delete_message_async(self, identity: Identity, deletion: MessageEdit) -> Snapshot:
        """A message's tombstone (checked by new_deletion), on the event loop as save_message_async."""
        trip = self._change_trip(identity, deletion)
        snapshot = None if trip is None else trip.then(lambda written: written[1])
        return await self._write_async("delete", snapshot, lambda: self._delete_in_transaction(identity, deletion))

    def _delete_in_transaction(self, identity: Identity, deletion: MessageEdit) -> Snapshot:
        """The general path: a missing or deleted chat or message, a replay, another version expected."""
        chat, message = deletion.chat, deletion.message
        with self.db.transaction(identity.tenant_id) as tx:
            try:
                write = open_write(tx, identity, chat, deletion.options, (Trigger.MESSAGE_DELETED,), register=False)
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

    def new_rename(self, *, chat_id: str, title: str, options: WriteOptions) -> ChatMark:
        """A RenameChat's fields, checked."""
        check = Checker()
        chat = self._check_write(check, chat_id, options)
        check.text("title", title, required=True)
        check.done()
        assert chat is not None
        return ChatMark(chat, title, Trigger.CHAT_RENAMED, f"renamed to {title}", options)

    def new_manual_snapshot(self, *, chat_id: str, description: str, options: WriteOptions) -> ChatMark:
        """A CreateSnapshot's fields, checked: the chat as it is, under its title."""
        check = Checker()
        chat = self._check_write(check, chat_id, options)
        check.text("description", description)
        check.done()
        assert chat is not None
        return ChatMark(chat, None, Trigger.MANUAL_SNAPSHOT, description, options)

    def mark_chat(self, identity: Identity, mark: ChatMark) -> Snapshot:
        """A rename or a manual snapshot: in one round trip when ordinary, else a transaction."""
        return self._write(
            mark.write, self._mark_trip(identity, mark), lambda: self._mark_in_transaction(identity, mark)
        )

    async def mark_chat_async(self, identity: Identity, mark: ChatMark) -> Snapshot:
        """mark_chat for the event loop, as save_message_async."""
        trip = self._mark_trip(identity, mark)
        return await self._write_async(mark.write, trip, lambda: self._mark_in_transaction(identity, mark))

    def _mark_trip(self, identity: Identity, mark: ChatMark) -> OneTrip[Snapshot]:
        """The ordinary rename or manual snapshot as one statement (mark_chat in service/sql/history.sql)."""
        params = _mark_params(identity, mark)
        return OneTrip(identity.tenant_id, "mark_chat", params, Snapshot, mark.trigger, lambda snapshot: snapshot)

    def _mark_in_transaction(self, identity: Identity, mark: ChatMark) -> Snapshot:
        """The general path: a new or deleted chat, a replay, another version expected."""
        with self.db.transaction(identity.tenant_id) as tx:
            try:
                write = open_write(tx, identity, mark.chat, mark.options, (mark.trigger,))
            except Replay as replay:
                return replay.snapshot
            if mark.title is not None:
                write.set_title(mark.title)
            return write.commit(mark.trigger, description=mark.description)[0]

    @staticmethod
    def _replayed_message(write_tx: Any, identity: Identity, snapshot: Snapshot) -> tuple[MessageVersion, Snapshot]:
        assert snapshot.trigger_message_id is not None
        (message,) = states.message_versions(
            write_tx, identity.tenant_id, snapshot.chat_id, snapshot.trigger_message_id, chat_version=snapshot.version
        )
        return message, snapshot


def _save_params(identity: Identity, new: NewMessage, version_id: UUID) -> dict[str, Any]:
    """save_message's parameters (service/sql/history.sql): the ordinary case written in one statement,
    as the general path writes it, checksum included. Not ordinary (a new or deleted chat, another
    version expected, a used request or message id), it writes nothing and the general path runs."""
    return {
        "tenant_id": identity.tenant_id, "chat_id": new.chat, "id": uuid4(), "version_id": version_id,
        "message_id": new.message, "role": new.role.value, "content": new.content, "model_id": new.model_id,
        "metadata": Jsonb(new.metadata), "tokens": new.tokens, "trigger": new.trigger.value,
        "trigger_description": f"{new.role.value} message saved", "user_id": identity.user_id,
        "request_id": new.options.request_id or None, "expected_version": new.options.expected_version,
    }  # fmt: skip


def _change_params(identity: Identity, edit: MessageEdit, version_id: UUID) -> dict[str, Any]:
    """edit_message's parameters (service/sql/history.sql): the ordinary edit or delete written in one
    statement, as the general path writes it. Not ordinary, it writes nothing and the general path runs."""
    description = "message deleted" if edit.deletes else edit.edit_reason or "message edited"
    return {
        "tenant_id": identity.tenant_id, "chat_id": edit.chat, "id": uuid4(), "version_id": version_id,
        "message_id": edit.message, "content": edit.content, "edit_reason": edit.edit_reason,
        "deleted": edit.deletes, "trigger": edit.trigger.value, "description": description,
        "user_id": identity.user_id, "request_id": edit.options.request_id or None,
        "expected_version": edit.options.expected_version,
    }  # fmt: skip


def _mark_params(identity: Identity, mark: ChatMark) -> dict[str, Any]:
    """mark_chat's parameters (service/sql/history.sql)."""
    return {
        "tenant_id": identity.tenant_id, "chat_id": mark.chat, "id": uuid4(), "title": mark.title,
        "trigger": mark.trigger.value, "description": mark.description, "user_id": identity.user_id,
        "request_id": mark.options.request_id or None, "expected_version": mark.options.expected_version,
    }  # fmt: skip


def _written_version(
    identity: Identity, snapshot: Snapshot, version_id: UUID, message_id: UUID, **fields: Any
) -> MessageVersion:
    """The message version a one-trip statement wrote with `snapshot`: what the snapshot and the caller
    fix, and `fields`, what the message has."""
    return MessageVersion(
        id=version_id, tenant_id=snapshot.tenant_id, chat_id=snapshot.chat_id, message_id=message_id,
        snapshot_id=snapshot.id, chat_version=snapshot.version, edited_by=identity.user_id,
        created_at=snapshot.created_at, is_active=True, **fields,
    )  # fmt: skip
