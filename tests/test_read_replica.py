"""TM_DATABASE_READ_URL: the timeline, the calendar and search read from a hot standby.

The standby is a real streaming replica of the session's PostgreSQL, cloned
with pg_basebackup. Pausing its replay makes the lag visible: what those reads
show stops at the pause, while GetChat (on the primary) shows every write.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import grpc
import psycopg
import pytest

from generated.timemachine.v1 import service_pb2 as api
from generated.timemachine.v1 import service_pb2_grpc
from server.app import App
from service.database import Database
from tests.conftest import Caller, Stack, contents, quiet_settings
from tests.standby import Standby


@dataclass
class Replicated:
    standby: Standby
    caller: Caller
    app: App


def _lsn(url: str, function: str) -> str:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(f"select {function}()::text").fetchone()
    assert row is not None
    return str(row[0])


def caught_up(stack: Stack, standby: Standby, timeout: float = 30) -> None:
    """Until the standby has replayed everything the primary has written so far."""
    target = _lsn(stack.runtime.database_url, "pg_current_wal_lsn")
    deadline = time.monotonic() + timeout
    with psycopg.connect(standby.url, autocommit=True) as conn:
        while True:
            row = conn.execute("select pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)).fetchone()
            if row is not None and row[0]:
                return
            assert time.monotonic() < deadline, "the standby did not catch up"
            time.sleep(0.05)


def replay(standby: Standby, *, paused: bool) -> None:
    with psycopg.connect(standby.url, autocommit=True) as conn:
        conn.execute("select pg_wal_replay_pause()" if paused else "select pg_wal_replay_resume()")


@pytest.fixture(scope="module")
def replicated(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicated]:
    if stack.runtime.postgres is None:
        pytest.skip("clones its standby from the embedded PostgreSQL")
    standby = Standby(tmp_path_factory.mktemp("standby"), stack.runtime.postgres)
    standby.start()
    reads = Database(standby.url, min_size=1, max_size=4)
    reads.open()
    app = App(quiet_settings(database_read_url=standby.url), replace(stack.stores, reads=reads))
    app.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{app.port}")
    caller = Caller(service_pb2_grpc.TimeMachineServiceStub(channel), str(uuid.uuid4()), str(uuid.uuid4()))
    try:
        yield Replicated(standby, caller, app)
    finally:
        channel.close()
        app.stop(grace=1)
        reads.close()
        standby.stop()


def _timeline(caller: Caller, chat_id: str) -> list[int]:
    page = caller.stub.GetTimeline(api.GetTimelineRequest(chat_id=chat_id, page_size=100), metadata=caller.md)
    return [s.version for s in page.snapshots]


def _found(caller: Caller, word: str) -> int:
    return len(caller.stub.Search(api.SearchRequest(query=word), metadata=caller.md).message_hits)


def test_lagging_reads_answer_from_the_standby_and_own_writes_from_the_primary(
    stack: Stack, replicated: Replicated
) -> None:
    caller, standby = replicated.caller, replicated.standby
    chat = str(uuid.uuid4())
    caller.save(chat, "first words")
    caller.save(chat, "second words")
    caught_up(stack, standby)
    assert _timeline(caller, chat) == [1, 2]

    replay(standby, paused=True)
    try:
        caller.save(chat, "written while the standby waits: zebra")
        # The primary has it: the caller reads its own write.
        assert contents(caller.chat(chat).messages)[-1].endswith("zebra")
        # The standby is behind: timeline, calendar and search show the chat as it was.
        assert _timeline(caller, chat) == [1, 2]
        today = datetime.now(UTC).date().isoformat()
        by_date = caller.stub.ListSnapshotsByDate(
            api.ListSnapshotsByDateRequest(chat_id=chat, date=today, time_zone="UTC"), metadata=caller.md
        )
        assert [s.version for s in by_date.snapshots] == [1, 2]
        assert _found(caller, "zebra") == 0
    finally:
        replay(standby, paused=False)
    caught_up(stack, standby)
    assert _timeline(caller, chat) == [1, 2, 3]
    assert _found(caller, "zebra") == 1


def test_a_chat_the_standby_has_not_replayed_is_read_from_the_primary(stack: Stack, replicated: Replicated) -> None:
    caller, standby = replicated.caller, replicated.standby
    replay(standby, paused=True)
    try:
        chat = str(uuid.uuid4())
        caller.save(chat, "brand new")
        # Not NOT_FOUND: the standby does not have the chat yet, the primary does.
        assert _timeline(caller, chat) == [1]
    finally:
        replay(standby, paused=False)


def test_an_unreachable_standby_sends_lagging_reads_to_the_primary(stack: Stack, replicated: Replicated) -> None:
    caller, standby = replicated.caller, replicated.standby
    chat = str(uuid.uuid4())
    caller.save(chat, "kept")
    standby.stop()
    try:
        caller.save(chat, "after the standby stopped")
        assert _timeline(caller, chat) == [1, 2]
        assert _found(caller, "stopped") >= 1
    finally:
        standby.start()
    caught_up(stack, standby)
