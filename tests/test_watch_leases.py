"""Writes notify only chats someone watches (migrations/018, service/events.py).

A raw LISTEN connection hears what PostgreSQL sends: nothing for a chat no
replica follows, every write of one that a watch follows, for as long as it
follows (the lease is renewed), and nothing again once the lease lapsed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from generated.timemachine.v1 import service_pb2 as api
from server.app import App
from service.events import CHANNEL
from tests.conftest import Caller, Stack, rows, serving


class Listener:
    """The keys PostgreSQL notifies on the watch channel, as a replica's listener hears them."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)
        self.conn.execute(f"LISTEN {CHANNEL}")

    def keys(self, seconds: float) -> list[str]:
        return [note.payload.partition(" ")[0] for note in self.conn.notifies(timeout=seconds, stop_after=1000)]


@contextmanager
def listening(stack: Stack) -> Iterator[Listener]:
    listener = Listener(stack.runtime.database_url)
    try:
        yield listener
    finally:
        listener.conn.close()


def fast_leases(app: App) -> None:
    """Leases of 2 s, renewed every 0.5 s (the defaults: 120 s, every 30 s)."""
    app.events.resync_seconds, app.events.lease_seconds = 0.5, 2.0


def test_a_chat_no_one_watches_is_not_notified_and_a_watched_one_is(stack: Stack, caller: Caller, chat_id: str) -> None:
    unwatched = str(uuid.uuid4())
    caller.save(chat_id, "before anyone watches")
    with listening(stack) as listener:
        caller.save(unwatched, "no one hears this")
        caller.save(chat_id, "nor this")
        assert listener.keys(1.0) == []
        stream = caller.stub.WatchChat(api.WatchChatRequest(chat_id=chat_id), metadata=caller.md, timeout=30)
        assert [next(stream).snapshot.version for _ in range(2)] == [1, 2]
        caller.save(chat_id, "watched")
        caller.save(unwatched, "still no one")
        assert next(stream).snapshot.version == 3
        assert listener.keys(1.0) == [f"{caller.tenant_id}/{chat_id}"]
        stream.cancel()


def test_a_lease_lasts_while_a_watch_follows_and_lapses_after(stack: Stack, caller: Caller, chat_id: str) -> None:
    caller.save(chat_id, "one")
    with serving(stack, prepare=fast_leases) as served, listening(stack) as listener:
        stream = served.stub.WatchChat(api.WatchChatRequest(chat_id=chat_id), metadata=caller.md, timeout=30)
        assert next(stream).snapshot.version == 1
        time.sleep(3.0)  # longer than a lease: only its renewals keep it
        caller.save(chat_id, "two")
        assert next(stream).snapshot.version == 2
        assert listener.keys(1.0) == [f"{caller.tenant_id}/{chat_id}"]
        stream.cancel()
        time.sleep(3.0)  # no one renews it now
        lapsed = rows(stack, caller.tenant_id, "select watched_until < now() from tm_chats where chat_id = %s", chat_id)
        assert lapsed == [(True,)]
        caller.save(chat_id, "three")
        assert listener.keys(1.0) == []
