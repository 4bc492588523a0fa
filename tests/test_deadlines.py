"""Database work ends with the caller's deadline, and a lock wait never holds a call for ever."""

from __future__ import annotations

import time
import uuid

import grpc
import psycopg
import pytest

from generated.timemachine.v1 import resources_pb2 as pb
from generated.timemachine.v1 import service_pb2 as api
from service import deadline
from service.database import Database
from service.errors import DeadlineExceeded, Unavailable
from service.history import History
from service.models import Identity, Role
from service.writes import WriteOptions
from tests.conftest import Caller, Stack, rows


def _save(history: History, who: Identity, chat_id: str, content: str) -> None:
    new = history.new_message(
        chat_id=chat_id,
        message_id="",
        role=Role.USER,
        content=content,
        model_id="",
        metadata={},
        tokens=0,
        options=WriteOptions(),
    )
    history.save_message(who, new)


def _chat_locked(stack: Stack, caller: Caller, chat_id: str) -> psycopg.Connection[object]:
    """Another session holding the chat's head row, as a stuck writer would."""
    conn = psycopg.connect(stack.runtime.database_url)
    conn.execute("select set_config('app.current_tenant_id', %s, false)", (caller.tenant_id,))
    conn.execute("select 1 from tm_chats where tenant_id = %s and chat_id = %s for update", (caller.tenant_id, chat_id))
    return conn


def test_a_write_stuck_on_a_lock_ends_with_the_callers_deadline(stack: Stack, caller: Caller, chat_id: str) -> None:
    """Before, the call waited on the lock until it was released, holding a worker and a connection."""
    caller.save(chat_id, "first")
    holder = _chat_locked(stack, caller, chat_id)
    try:
        started = time.monotonic()
        request = api.SaveMessageRequest(chat_id=chat_id, role=pb.MESSAGE_ROLE_USER, content="second")
        with pytest.raises(grpc.RpcError) as ended:
            caller.stub.SaveMessage(request, metadata=caller.md, timeout=1.5)
        assert ended.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - started < 5
        # The server gave up too: the blocked statement is gone from the database.
        deadline_at = time.monotonic() + 5
        with psycopg.connect(stack.runtime.database_url, autocommit=True) as admin:  # sees every session
            while True:
                waiting = admin.execute(
                    "select count(*) from pg_stat_activity"
                    " where wait_event_type = 'Lock' and datname = current_database()"
                ).fetchone()
                if waiting == (0,) or time.monotonic() > deadline_at:
                    break
                time.sleep(0.1)
        assert waiting == (0,)
    finally:
        holder.close()
    assert [m.content for m in caller.chat(chat_id).messages] == ["first"]


def test_without_a_deadline_a_lock_wait_ends_after_the_lock_timeout(stack: Stack, caller: Caller, chat_id: str) -> None:
    db = Database(stack.runtime.database_url, min_size=1, max_size=2, lock_timeout=0.5)
    db.open()
    history = History(db, 1024 * 1024)
    who = Identity(uuid.UUID(caller.tenant_id), uuid.UUID(caller.user_id))
    caller.save(chat_id, "first")
    holder = _chat_locked(stack, caller, chat_id)
    try:
        started = time.monotonic()
        with pytest.raises(Unavailable):
            _save(history, who, chat_id, "second")
        assert time.monotonic() - started < 3
    finally:
        holder.close()
        db.close()


def test_a_call_past_its_deadline_does_no_work(stack: Stack, caller: Caller, chat_id: str) -> None:
    history = History(stack.stores.db, 1024 * 1024)
    who = Identity(uuid.UUID(caller.tenant_id), uuid.UUID(caller.user_id))
    token = deadline.bind(-0.1)
    try:
        with pytest.raises(DeadlineExceeded):
            _save(history, who, chat_id, "too late")
    finally:
        deadline.unbind(token)
    assert rows(stack, caller.tenant_id, "select count(*) from tm_chats where chat_id = %s", chat_id) == [(0,)]
