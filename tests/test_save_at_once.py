"""The ordinary cases of SaveMessage, EditMessage, DeleteMessage, RenameChat and CreateSnapshot in one
round trip (save_message, edit_message and mark_chat in service/sql/history.sql).

Each must write exactly what the general path (service/writes.py) writes, the
checksum computed in SQL included, and leave every case that is not ordinary
to the general path having written nothing.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import psycopg
import pytest

from generated.timemachine.v1 import resources_pb2 as pb
from generated.timemachine.v1 import service_pb2 as api
from service import checksum
from service.async_database import AsyncDatabase
from service.history import ChatMark, History, MessageEdit, NewMessage
from service.models import Identity, Role, Trigger
from service.writes import WriteOptions, open_write
from tests.conftest import Caller, Stack

NASTY = 'naïve "quoted" \\ back\\slash\ttab\nline \u2028 😀 中文'


class Paths:
    """The one-round-trip save both ways: blocking (Database.at_once) and on an event loop
    (AsyncDatabase.at_once, as the server runs SaveMessage)."""

    def __init__(self, stack: Stack) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.loop_db = self._run(self._open(stack))
        self.history = History(stack.stores.db, max_message_bytes=1 << 20, loop_db=self.loop_db)

    @staticmethod
    async def _open(stack: Stack) -> AsyncDatabase:
        loop_db = AsyncDatabase(stack.stores.db, max_size=6)
        await loop_db.open()
        return loop_db

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def trip(self, path: str, trip: Any) -> Any:
        """A one-trip write alone (no general path): blocking or on the loop."""
        if path == "blocking":
            return self.history._one_trip(trip)
        return self._run(self.history._one_trip_async(trip))

    def save(self, path: str, identity: Identity, new: NewMessage) -> Any:
        return self.trip(path, self.history._save_trip(identity, new))

    def edit(self, path: str, identity: Identity, edit: MessageEdit) -> Any:
        return self.trip(path, self.history._change_trip(identity, edit))

    def mark(self, path: str, identity: Identity, mark: ChatMark) -> Any:
        return self.trip(path, self.history._mark_trip(identity, mark))

    def edit_either_way(self, path: str, identity: Identity, edit: MessageEdit) -> Any:
        """History.edit_message: one round trip, or the general path when that writes nothing."""
        if path == "blocking":
            return self.history.edit_message(identity, edit)
        return self._run(self.history.edit_message_async(identity, edit))

    def close(self) -> None:
        self._run(self.loop_db.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


@pytest.fixture(scope="module")
def paths(stack: Stack) -> Iterator[Paths]:
    opened = Paths(stack)
    yield opened
    opened.close()


@pytest.fixture(params=["blocking", "loop"])
def path(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _identity(caller: Caller) -> Identity:
    return Identity(tenant_id=UUID(caller.tenant_id), user_id=UUID(caller.user_id))


def _at_once(paths: Paths, path: str, caller: Caller, chat_id: str, **kw: Any) -> Any:
    fields: dict[str, Any] = {
        "role": Role.ASSISTANT, "content": NASTY, "model_id": "model-x", "metadata": {"k": [1, "two"]}, "tokens": 7,
        "options": WriteOptions(),
    } | kw  # fmt: skip
    message = fields.pop("message", uuid.uuid4())
    new = paths.history.new_message(chat_id=chat_id, message_id=str(message), **fields)
    return paths.save(path, _identity(caller), new)


def _hashless(rows: dict[str, list[tuple[Any, ...]]]) -> dict[str, list[tuple[Any, ...]]]:
    """`rows` without the element hashes and checksums (64 hex digits), which depend on the message ids."""
    hashed = ("tm_chats", "tm_snapshots", "tm_messages")
    return {
        table: [tuple(v for v in row if not (isinstance(v, str) and len(v) == 64)) for row in found]
        if table in hashed
        else found
        for table, found in rows.items()
    }


def _rows(stack: Stack, caller: Caller, chat_id: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row the writes of this chat left, as the database holds them (ids and times left out)."""
    tables = {
        "tm_chats": "select head_version, message_count, file_count, total_tokens, state_sum, next_position, title"
        " from tm_chats where tenant_id = %(t)s and chat_id = %(c)s",
        "tm_snapshots": "select version, message_count, total_tokens, trigger, trigger_description, checksum, title,"
        " previous_snapshot_id is not null, request_id from tm_snapshots where tenant_id = %(t)s and chat_id = %(c)s"
        " order by version",
        "tm_message_versions": "select chat_version, version, position, role, content, model_id, metadata, tokens,"
        " is_deleted, edit_reason, edited_by, created_at = original_created_at from tm_message_versions"
        " where tenant_id = %(t)s and chat_id = %(c)s order by chat_version",
        "tm_messages": "select position, version, is_deleted, tokens, element_hash from tm_messages"
        " where tenant_id = %(t)s and chat_id = %(c)s order by position",
        "tm_search_documents": "select kind, document::text, is_current from tm_search_documents"
        " where tenant_id = %(t)s and chat_id = %(c)s order by document::text",
    }
    with psycopg.connect(stack.runtime.database_url) as admin:
        params = {"t": caller.tenant_id, "c": chat_id}
        return {name: admin.execute(sql, params).fetchall() for name, sql in tables.items()}


def test_an_ordinary_save_writes_what_the_general_path_writes(
    stack: Stack, caller: Caller, paths: Paths, path: str
) -> None:
    fast, slow = str(uuid.uuid4()), str(uuid.uuid4())
    for chat in (fast, slow):  # each chat's first save registers it: the general path
        caller.save(chat, "first")
    saved = _at_once(paths, path, caller, fast)
    assert saved is not None, "an ordinary save took the general path"
    version, snapshot = saved
    # The same message through the general path, as History.save_message takes it for a save
    # with attachments.
    with stack.stores.db.transaction(UUID(caller.tenant_id)) as tx:
        write = open_write(tx, _identity(caller), UUID(slow), WriteOptions(), ())
        staged = write.put_message(
            uuid.uuid4(), None, role="assistant", content=NASTY, model_id="model-x", metadata={"k": [1, "two"]},
            tokens=7, is_deleted=False,
        )  # fmt: skip
        write.commit(
            Trigger.MESSAGE_RECEIVED, trigger_message_id=staged.message_id, description="assistant message saved"
        )
    fast_rows, slow_rows = _rows(stack, caller, fast), _rows(stack, caller, slow)
    # Element hashes and checksums depend on the message ids: compare them by recomputing.
    assert _hashless(fast_rows) == _hashless(slow_rows)
    assert version.position == 2 and version.version == 1 and snapshot.version == 2
    assert (version.content, version.role, version.tokens, version.metadata) == (
        NASTY,
        "assistant",
        7,
        {"k": [1, "two"]},
    )
    # The checksum computed in SQL is the one service/checksum.py defines, and VerifyChat agrees.
    chat = caller.stub.GetChat(api.GetChatRequest(chat_id=fast), metadata=caller.md)
    state = checksum.StateSum()
    for position, m in enumerate(chat.messages, 1):  # a chat's positions run 1, 2, ...
        role = "user" if m.role == pb.MESSAGE_ROLE_USER else "assistant"
        state.add(checksum.message_element(UUID(m.message_id), position, role, m.content))
    assert snapshot.checksum == state.hex
    report = caller.stub.VerifyChat(api.VerifyChatRequest(chat_id=fast, check_content=True), metadata=caller.md)
    assert report.ok
    # The general path goes on from the head the statement left.
    edited = caller.edit(fast, str(version.message_id), "edited")
    assert edited.snapshot.version == 3
    assert caller.stub.VerifyChat(api.VerifyChatRequest(chat_id=fast, check_content=True), metadata=caller.md).ok


def _snapshots(stack: Stack, caller: Caller, chat_id: str) -> int:
    return len(_rows(stack, caller, chat_id)["tm_snapshots"])


def test_a_new_chat_is_left_to_the_general_path(stack: Stack, caller: Caller, paths: Paths, path: str) -> None:
    chat = str(uuid.uuid4())
    assert _at_once(paths, path, caller, chat) is None
    assert _rows(stack, caller, chat)["tm_chats"] == []


@pytest.mark.parametrize("case", ["expected_version", "request_id", "message_id", "deleted"])
def test_what_is_not_ordinary_is_left_to_the_general_path_with_nothing_written(
    stack: Stack, caller: Caller, paths: Paths, path: str, case: str
) -> None:
    chat = str(uuid.uuid4())
    first = caller.save(chat, "first", request_id="r-1")
    kw: dict[str, Any] = {}
    if case == "expected_version":
        kw["options"] = WriteOptions(expected_version=5)
    elif case == "request_id":
        kw["options"] = WriteOptions(request_id="r-1")
    elif case == "message_id":
        kw["message"] = UUID(first.message.message_id)
    else:
        caller.stub.DeleteChat(api.DeleteChatRequest(chat_id=chat), metadata=caller.md)
    before = _rows(stack, caller, chat)
    assert _at_once(paths, path, caller, chat, **kw) is None
    assert _rows(stack, caller, chat) == before


def _in_threads(count: int, work: Any) -> None:
    """work(0) … work(count - 1) at once, each in a thread; the first failure is the test's."""
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            work(n)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[:1]


def test_saves_that_race_on_one_chat_number_their_versions_without_a_gap(
    stack: Stack, caller: Caller, paths: Paths, path: str
) -> None:
    chat = str(uuid.uuid4())
    caller.save(chat, "first")

    def writer(n: int) -> None:
        for i in range(15):
            assert _at_once(paths, path, caller, chat, content=f"w{n} {i}") is not None

    _in_threads(6, writer)
    rows = _rows(stack, caller, chat)
    assert [row[0] for row in rows["tm_snapshots"]] == list(range(1, 92))
    assert [row[0] for row in rows["tm_messages"]] == list(range(1, 92))
    assert caller.stub.VerifyChat(api.VerifyChatRequest(chat_id=chat, check_content=True), metadata=caller.md).ok


def test_a_statement_that_would_commit_half_a_write_fails_instead(stack: Stack) -> None:
    """tm_invariant (migrations/020): save_message fails, and so writes nothing, if its head did not move."""
    with psycopg.connect(stack.runtime.database_url, autocommit=True) as conn:
        assert conn.execute("select tm_invariant(true, 'fine')").fetchone() == (True,)
        with pytest.raises(psycopg.errors.InternalError_, match="invariant broken: the head"):
            conn.execute("select tm_invariant(1 = 0, 'the head')")


def _edit_at_once(paths: Paths, path: str, caller: Caller, chat_id: str, message_id: str, **kw: Any) -> Any:
    fields: dict[str, Any] = {"content": f"{NASTY} edited", "edit_reason": "typo", "options": WriteOptions()} | kw
    edit = paths.history.new_edit(chat_id=chat_id, message_id=message_id, **fields)
    return paths.edit(path, _identity(caller), edit)


def _chat_with_a_message(caller: Caller) -> tuple[str, str]:
    """A chat of two messages; the id of the first, an assistant's with metadata, model and tokens."""
    chat = str(uuid.uuid4())
    first = caller.save(chat, "hello", role=pb.MESSAGE_ROLE_ASSISTANT, model_id="model-x", tokens=7)
    caller.save(chat, "second")
    return chat, first.message.message_id


def test_an_ordinary_edit_writes_what_the_general_path_writes(
    stack: Stack, caller: Caller, paths: Paths, path: str
) -> None:
    (fast, fast_message), (slow, slow_message) = _chat_with_a_message(caller), _chat_with_a_message(caller)
    edited = _edit_at_once(paths, path, caller, fast, fast_message)
    assert edited is not None, "an ordinary edit took the general path"
    version, snapshot = edited
    general = paths.history.new_edit(
        chat_id=slow, message_id=slow_message, content=f"{NASTY} edited", edit_reason="typo", options=WriteOptions()
    )
    paths.history._edit_in_transaction(_identity(caller), general)
    fast_rows, slow_rows = _rows(stack, caller, fast), _rows(stack, caller, slow)
    assert _hashless(fast_rows) == _hashless(slow_rows)  # hashes and checksums depend on the message ids
    # The old version's search document is no longer current; the new one is.
    assert sorted(row[2] for row in fast_rows["tm_search_documents"]) == [False, True, True]
    assert (version.version, version.position, snapshot.version, snapshot.trigger) == (2, 1, 3, "message_edited")
    assert (version.role, version.model_id, version.tokens, version.edit_reason, version.content) == (
        "assistant",
        "model-x",
        7,
        "typo",
        f"{NASTY} edited",
    )
    assert (snapshot.message_count, snapshot.total_tokens, snapshot.trigger_description) == (2, 7, "typo")
    # What the call answers is what a read of the chat finds, and the checksum is service/checksum.py's.
    chat = caller.stub.GetChat(api.GetChatRequest(chat_id=fast), metadata=caller.md)
    read = chat.messages[0]
    assert (read.id, read.version, read.content, read.edit_reason) == (str(version.id), 2, version.content, "typo")
    assert read.original_created_at.ToDatetime(tzinfo=version.original_created_at.tzinfo) == (
        version.original_created_at
    )
    state = checksum.StateSum()
    for position, m in enumerate(chat.messages, 1):
        role = "user" if m.role == pb.MESSAGE_ROLE_USER else "assistant"
        state.add(checksum.message_element(UUID(m.message_id), position, role, m.content))
    assert snapshot.checksum == state.hex == chat.snapshot.checksum
    assert caller.stub.VerifyChat(api.VerifyChatRequest(chat_id=fast, check_content=True), metadata=caller.md).ok
    # The general path goes on from the head the statement left.
    caller.delete(fast, fast_message)
    assert caller.stub.VerifyChat(api.VerifyChatRequest(chat_id=fast, check_content=True), metadata=caller.md).ok


CASES = ["expected_version", "request_id", "unknown_message", "deleted_message", "deleted_chat", "no_chat"]


@pytest.mark.parametrize(
    ("kind", "case"), [("edit", case) for case in [*CASES, "attachments"]] + [("delete", case) for case in CASES]
)
def test_an_edit_or_delete_that_is_not_ordinary_is_left_to_the_general_path_with_nothing_written(
    stack: Stack, caller: Caller, paths: Paths, path: str, kind: str, case: str
) -> None:
    chat, message = _chat_with_a_message(caller)
    caller.edit(chat, message, "edited once", request_id="r-1")
    kw: dict[str, Any] = {}
    if case == "expected_version":
        kw["options"] = WriteOptions(expected_version=2)
    elif case == "request_id":
        kw["options"] = WriteOptions(request_id="r-1")
    elif case == "unknown_message":
        message = str(uuid.uuid4())
    elif case == "deleted_message":
        caller.delete(chat, message)
    elif case == "deleted_chat":
        caller.stub.DeleteChat(api.DeleteChatRequest(chat_id=chat), metadata=caller.md)
    elif case == "attachments":  # a chat with attachments: the edit carries the version's references over
        uploaded = caller.upload(chat, "notes.txt", b"some notes").file
        reference = pb.Attachment(file_id=uploaded.id, reference_type=pb.REFERENCE_TYPE_ATTACHMENT)
        caller.save(chat, "see the file", attachments=[reference])
    else:
        chat = str(uuid.uuid4())
    before = _rows(stack, caller, chat)
    change = _edit_at_once if kind == "edit" else _delete_at_once
    assert change(paths, path, caller, chat, message, **kw) is None
    assert _rows(stack, caller, chat) == before


def test_edits_that_race_on_one_message_number_its_versions_without_a_gap(
    stack: Stack, caller: Caller, paths: Paths, path: str
) -> None:
    """An edit whose message moved while it waited for the chat's lock writes nothing in its one
    statement (the version number clashes) and is made by the general path; none is lost."""
    chat, message = _chat_with_a_message(caller)

    def editor(n: int) -> None:
        for i in range(10):
            edit = paths.history.new_edit(
                chat_id=chat, message_id=message, content=f"e{n} {i}", edit_reason="", options=WriteOptions()
            )
            paths.edit_either_way(path, _identity(caller), edit)
            assert _at_once(paths, path, caller, chat, content=f"s{n} {i}") is not None

    _in_threads(4, editor)
    rows = _rows(stack, caller, chat)
    assert [row[0] for row in rows["tm_snapshots"]] == list(range(1, 83))
    edited = [row for row in rows["tm_message_versions"] if row[2] == 1]  # the first message's versions
    assert [row[1] for row in edited] == list(range(1, 42))
    assert sum(row[2] for row in rows["tm_search_documents"]) == 1 + 40 + 1  # current: the edit's, the saves', "second"
    assert caller.stub.VerifyChat(api.VerifyChatRequest(chat_id=chat, check_content=True), metadata=caller.md).ok


def test_an_edit_whose_message_moved_meanwhile_writes_nothing_in_one_trip(
    stack: Stack, caller: Caller, paths: Paths, path: str
) -> None:
    """The race above made certain: another writer edits the message while the statement waits for the
    chat's lock, so what the statement read of the message is stale; it must write nothing."""
    chat, message = _chat_with_a_message(caller)
    edit = paths.history.new_edit(
        chat_id=chat, message_id=message, content="late", edit_reason="", options=WriteOptions()
    )
    result: list[Any] = []
    waiting = threading.Thread(target=lambda: result.append(paths.edit(path, _identity(caller), edit)))
    with (
        stack.stores.db.transaction(UUID(caller.tenant_id)) as tx,
        # autocommit: inside a transaction pg_stat_activity is read once and kept, so a first look taken
        # before the statement waits would never see it wait (the test failed so, now and then)
        psycopg.connect(stack.runtime.database_url, autocommit=True) as admin,
    ):
        write = open_write(tx, _identity(caller), UUID(chat), WriteOptions(), ())  # holds the chat's lock
        waiting.start()
        for _ in range(200):  # until the statement waits for that lock
            blocked = admin.execute(  # (its text is cut at 1 KiB there: the waiting backend it is)
                "select count(*) from pg_stat_activity where wait_event_type = 'Lock' and state = 'active'"
            ).fetchone()
            if blocked and blocked[0]:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the one-trip edit never waited for the chat's lock")
        head, current = write.live_message(UUID(message))
        write.put_message(
            UUID(message), head, role=current.role, content="theirs", model_id=current.model_id,
            metadata=current.metadata, tokens=current.tokens, is_deleted=False,
        )  # fmt: skip
        write.commit(Trigger.MESSAGE_EDITED, trigger_message_id=UUID(message), description="message edited")
    waiting.join(timeout=10)
    assert result == [None]
    rows = _rows(stack, caller, chat)
    assert [row[0] for row in rows["tm_snapshots"]] == [1, 2, 3]
    assert [(row[1], row[4]) for row in rows["tm_message_versions"] if row[2] == 1] == [(1, "hello"), (2, "theirs")]
    assert caller.stub.VerifyChat(api.VerifyChatRequest(chat_id=chat, check_content=True), metadata=caller.md).ok


def _delete_at_once(paths: Paths, path: str, caller: Caller, chat_id: str, message_id: str, **kw: Any) -> Any:
    deletion = paths.history.new_deletion(
        chat_id=chat_id, message_id=message_id, options=kw.get("options", WriteOptions())
    )
    return paths.edit(path, _identity(caller), deletion)


def test_an_ordinary_delete_writes_what_the_general_path_writes(
    stack: Stack, caller: Caller, paths: Paths, path: str
) -> None:
    (fast, fast_message), (slow, slow_message) = _chat_with_a_message(caller), _chat_with_a_message(caller)
    deleted = _delete_at_once(paths, path, caller, fast, fast_message)
    assert deleted is not None, "an ordinary delete took the general path"
    version, snapshot = deleted
    general = paths.history.new_deletion(chat_id=slow, message_id=slow_message, options=WriteOptions())
    paths.history._delete_in_transaction(_identity(caller), general)
    fast_rows, slow_rows = _rows(stack, caller, fast), _rows(stack, caller, slow)
    assert _hashless(fast_rows) == _hashless(slow_rows)  # hashes and checksums depend on the message ids
    assert sorted(row[2] for row in fast_rows["tm_search_documents"]) == [False, True]  # "second" alone is current
    assert (version.version, version.is_deleted, version.content, version.tokens, version.metadata) == (
        2,
        True,
        "",
        0,
        {},
    )
    assert (snapshot.version, snapshot.trigger, snapshot.trigger_description) == (
        3,
        "message_deleted",
        "message deleted",
    )
    assert (snapshot.message_count, snapshot.total_tokens) == (1, 0)
    chat = caller.stub.GetChat(api.GetChatRequest(chat_id=fast), metadata=caller.md)
    assert [m.content for m in chat.messages] == ["second"]
    state = checksum.StateSum()
    state.add(checksum.message_element(UUID(chat.messages[0].message_id), 2, "user", "second"))
    assert snapshot.checksum == state.hex == chat.snapshot.checksum
    assert caller.stub.VerifyChat(api.VerifyChatRequest(chat_id=fast, check_content=True), metadata=caller.md).ok
    assert caller.save(fast, "after").snapshot.version == 4  # the general path goes on from the head it left
    assert caller.stub.VerifyChat(api.VerifyChatRequest(chat_id=fast, check_content=True), metadata=caller.md).ok


def test_a_delete_in_a_chat_with_attachments_is_ordinary(stack: Stack, caller: Caller, paths: Paths, path: str) -> None:
    """A tombstone keeps no references, so a delete, unlike an edit, need not carry any over."""
    chat, message = _chat_with_a_message(caller)
    uploaded = caller.upload(chat, "notes.txt", b"some notes").file
    reference = pb.Attachment(file_id=uploaded.id, reference_type=pb.REFERENCE_TYPE_ATTACHMENT)
    caller.save(chat, "see the file", attachments=[reference])
    assert _delete_at_once(paths, path, caller, chat, message) is not None
    read = caller.chat(chat)
    assert [(m.content, [a.file_id for a in m.attachments]) for m in read.messages] == [
        ("second", []),
        ("see the file", [uploaded.id]),
    ]
    assert caller.stub.VerifyChat(api.VerifyChatRequest(chat_id=chat, check_content=True), metadata=caller.md).ok


def _mark(paths: Paths, kind: str, chat_id: str, options: WriteOptions | None = None) -> ChatMark:
    options = options or WriteOptions()
    if kind == "rename":
        return paths.history.new_rename(chat_id=chat_id, title=f"{NASTY} title", options=options)
    return paths.history.new_manual_snapshot(chat_id=chat_id, description="before the big edit", options=options)


@pytest.mark.parametrize("kind", ["rename", "snapshot"])
def test_an_ordinary_rename_or_manual_snapshot_writes_what_the_general_path_writes(
    stack: Stack, caller: Caller, paths: Paths, path: str, kind: str
) -> None:
    (fast, _), (slow, _) = _chat_with_a_message(caller), _chat_with_a_message(caller)
    for chat in (fast, slow):
        caller.rename(chat, "old title")
    snapshot = paths.mark(path, _identity(caller), _mark(paths, kind, fast))
    assert snapshot is not None, "an ordinary mark took the general path"
    paths.history._mark_in_transaction(_identity(caller), _mark(paths, kind, slow))
    fast_rows, slow_rows = _rows(stack, caller, fast), _rows(stack, caller, slow)
    assert _hashless(fast_rows) == _hashless(slow_rows)  # hashes and checksums depend on the message ids
    title = f"{NASTY} title" if kind == "rename" else "old title"
    assert (snapshot.version, snapshot.title, snapshot.message_count) == (4, title, 2)
    chat = caller.stub.GetChat(api.GetChatRequest(chat_id=fast), metadata=caller.md)
    state = checksum.StateSum(checksum.title_element(title))
    for position, m in enumerate(chat.messages, 1):
        role = "user" if m.role == pb.MESSAGE_ROLE_USER else "assistant"
        state.add(checksum.message_element(UUID(m.message_id), position, role, m.content))
    assert snapshot.checksum == state.hex == chat.snapshot.checksum
    assert chat.title == title
    assert caller.stub.VerifyChat(api.VerifyChatRequest(chat_id=fast, check_content=True), metadata=caller.md).ok


@pytest.mark.parametrize("kind", ["rename", "snapshot"])
@pytest.mark.parametrize("case", ["expected_version", "request_id", "deleted_chat", "no_chat"])
def test_a_mark_that_is_not_ordinary_is_left_to_the_general_path_with_nothing_written(
    stack: Stack, caller: Caller, paths: Paths, path: str, kind: str, case: str
) -> None:
    chat, _ = _chat_with_a_message(caller)
    caller.stub.RenameChat(api.RenameChatRequest(chat_id=chat, title="named", request_id="r-1"), metadata=caller.md)
    options = WriteOptions()
    if case == "expected_version":
        options = WriteOptions(expected_version=2)
    elif case == "request_id":
        options = WriteOptions(request_id="r-1")
    elif case == "deleted_chat":
        caller.stub.DeleteChat(api.DeleteChatRequest(chat_id=chat), metadata=caller.md)
    else:
        chat = str(uuid.uuid4())
    before = _rows(stack, caller, chat)
    assert paths.mark(path, _identity(caller), _mark(paths, kind, chat, options)) is None
    assert _rows(stack, caller, chat) == before
