"""New snapshots, as they commit, for WatchChat: from every server replica.

Each write's transaction issues pg_notify (delivered only on commit), so a
listener in every replica hears about every chat's new versions. Watchers
wait on a condition variable and re-read from the database; the notification
only says "look again", so a missed one costs at most the fallback poll.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from uuid import UUID

import psycopg

from service.database import Database
from service.errors import FieldViolation, InvalidArgument, ResourceExhausted
from service.models import Identity, Snapshot
from service.slots import Slots
from service.timeline import require_chat
from service.validation import Checker

log = logging.getLogger(__name__)
CHANNEL = "tm_chat_events"
FALLBACK_POLL_SECONDS = 2.0
PAGE = 100


class ChatEvents:
    def __init__(self, url: str) -> None:
        self.url = url
        self._changed = threading.Condition()
        # Change counters of the chats someone here follows, and how many follow
        # each: a chat nobody follows takes no memory, however many are written.
        self._seq: dict[str, int] = {}
        self._followers: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="chat-events", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with self._changed:
            self._changed.notify_all()

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=1.0):
                            with self._changed:
                                if note.payload in self._seq:
                                    self._seq[note.payload] += 1
                                    self._changed.notify_all()
            except psycopg.Error as exc:  # the database went away: watchers fall back to polling
                log.warning("chat event listener reconnecting: %s", type(exc).__name__)
                self._stop.wait(1.0)

    @contextmanager
    def following(self, key: str) -> Iterator[None]:
        """Count changes of `key` while the block runs."""
        with self._changed:
            self._followers[key] = self._followers.get(key, 0) + 1
            self._seq.setdefault(key, 0)
        try:
            yield
        finally:
            with self._changed:
                self._followers[key] -= 1
                if not self._followers[key]:
                    del self._followers[key], self._seq[key]

    def followed(self) -> int:
        """How many chats have a counter (for tests and metrics)."""
        with self._changed:
            return len(self._seq)

    def seq(self, key: str) -> int:
        with self._changed:
            return self._seq.get(key, 0)

    def wait(self, key: str, seen: int, timeout: float) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self._seq.get(key, 0) != seen or self._stop.is_set(), timeout)


def channel_key(tenant_id: UUID, chat_id: UUID) -> str:
    return f"{tenant_id}/{chat_id}"


class Watcher:
    def __init__(self, db: Database, events: ChatEvents, max_watches: int) -> None:
        self.db = db
        self.events = events
        # Each open watch holds a server worker thread; capping them keeps
        # threads free for every other call.
        self.slots = Slots(max_watches)
        self.max_watches = max_watches

    def watch(
        self, identity: Identity, chat_id: str, after_version: int, active: Callable[[], bool]
    ) -> Generator[Snapshot, None, None]:
        """Every snapshot after `after_version`, then each new one as it commits, while `active()`."""
        check = Checker()
        chat = check.uuid("chat_id", chat_id)
        check.done()
        if after_version < 0:
            raise InvalidArgument([FieldViolation("after_version", "must not be negative")])
        assert chat is not None
        key = channel_key(identity.tenant_id, chat)
        with self.db.transaction(identity.tenant_id) as tx:
            require_chat(tx, identity, chat)
        if not self.slots.take():
            raise ResourceExhausted(f"this server already serves {self.max_watches} watches; retry later")
        try:
            with self.events.following(key):
                yield from self._follow(identity, chat, key, after_version, active)
        finally:
            self.slots.give_back()

    def _follow(
        self, identity: Identity, chat: UUID, key: str, after_version: int, active: Callable[[], bool]
    ) -> Iterator[Snapshot]:
        last = after_version
        while active():
            seen = self.events.seq(key)  # read before querying, so no commit slips between
            with self.db.transaction(identity.tenant_id) as tx:
                rows: list[Snapshot] = tx.all(
                    "snapshots_page",
                    {"tenant_id": identity.tenant_id, "chat_id": chat, "after_version": last, "limit": PAGE},
                    Snapshot,
                )
            for row in rows:
                yield row
                last = row.version
            if len(rows) < PAGE:
                self.events.wait(key, seen, FALLBACK_POLL_SECONDS)
