"""New snapshots, as they commit, for WatchChat: thousands of watchers a replica, a small fixed cost each.

Each write to a watched chat issues pg_notify (delivered only on commit):
a replica that follows a chat holds a lease on its notifications, taken
when a watch joins and renewed at every resync (migrations/018), so the
writes of chats no one watches pay no NOTIFY. One listener connection per
replica hears every chat's notifications (in a thread: psycopg's notifies()
blocks) and hands the keys of followed chats to the event loop. There each
followed chat has one channel. A notification carries the new snapshot
(service/sql/history.sql), which the channel puts in every watcher's bounded
queue without a query; when it cannot (a gap, a row too long for a
notification) the channel reads the chat's new snapshots once, however many
watch it. A watcher costs a queue and a suspended coroutine: no thread, no
connection, no query of its own per event.

Joining, or resuming with after_version, reads the missed history in pages,
then follows the channel; each version is delivered once and in order (one
both read and pushed is skipped by its version). A watcher whose reader stops
reading fills its queue and is ended with RESOURCE_EXHAUSTED naming the
version to resume after; nobody else waits for it. A notification lost while
the listener reconnects costs a resync of every channel, which also runs
every RESYNC_SECONDS as a safety net.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections import deque
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field, fields
from datetime import datetime
from uuid import UUID

import psycopg

from service.database import Database, Transaction
from service.errors import FieldViolation, InvalidArgument, ResourceExhausted
from service.models import Identity, Snapshot
from service.slots import Slots
from service.timeline import require_chat
from service.validation import Checker

log = logging.getLogger(__name__)
CHANNEL = "tm_chat_events"
PAGE = 100
RESYNC_SECONDS = 30.0
RETRY_SECONDS = 1.0
BUFFER = 256  # snapshots a watcher may fall behind its chat before it is ended
# Watchers woken per turn of the event loop: a chat's fan-out yields between batches, so a short
# call's next step waits behind a batch (each woken watcher's write, ~56 us), not behind every
# watcher of the chat. 16 added ~1 ms to a save's p50 while 2,000 watched (bench/watchers.py:
# 1.47-1.54 times the p50 without, once saves took one round trip); 4: 1.34-1.45 for 6 % more of
# the server's CPU while it delivers; 1: 1.27-1.32 for 19 % more.
FAN_OUT_BATCH = 4


def channel_key(tenant_id: UUID, chat_id: UUID) -> str:
    return f"{tenant_id}/{chat_id}"


_UUIDS = ("id", "tenant_id", "chat_id", "trigger_message_id", "trigger_file_id", "previous_snapshot_id",
          "restored_from_snapshot_id", "user_id")  # fmt: skip
_FIELDS = tuple(f.name for f in fields(Snapshot))


def snapshot_of(body: str) -> Snapshot | None:
    """The snapshot a notification carries (service/sql/history.sql), or None when it cannot be read."""
    try:
        row = json.loads(body)
        values = {name: row[name] for name in _FIELDS}
        for name in _UUIDS:
            values[name] = UUID(values[name]) if values[name] else None
        values["created_at"] = datetime.fromisoformat(values["created_at"])
        return Snapshot(**values)
    except (ValueError, KeyError, TypeError):
        return None


class Follower:
    """One watcher's place in a channel: the snapshots pushed to it, up to `buffer`.

    A deque and one waiting future rather than an asyncio.Queue: a push is
    made for every watcher of a chat on every commit, and the queue keeps
    bookkeeping none of this needs (unfinished tasks, getter and putter lists).
    """

    __slots__ = ("_waiter", "buffer", "key", "overflowed", "rows")

    def __init__(self, key: str, buffer: int) -> None:
        self.key = key
        self.buffer = buffer
        self.rows: deque[Snapshot] = deque()
        self.overflowed = False
        self._waiter: asyncio.Future[None] | None = None

    def offer(self, row: Snapshot) -> None:
        if self.overflowed:
            return
        if len(self.rows) >= self.buffer:
            self.overflowed = True  # its watch ends at its next read; the others go on
        else:
            self.rows.append(row)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def next(self) -> Snapshot | None:
        """The next snapshot pushed, waiting for one; None once the buffer overflowed."""
        while not self.rows:
            if self.overflowed:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return None if self.overflowed else self.rows.popleft()


@dataclass
class _Channel:
    tenant_id: UUID
    chat_id: UUID
    last: int  # newest version pushed
    followers: set[Follower] = field(default_factory=set)
    refreshing: bool = False
    again: bool = False  # a notification came while a refresh ran
    outbox: deque[Snapshot] = field(default_factory=deque)  # pushed in version order, a batch a turn


class ChatEvents:
    """The replica's listener and its channels; the channels live on `loop`."""

    def __init__(
        self,
        db: Database,
        loop: asyncio.AbstractEventLoop,
        buffer: int = BUFFER,
        resync_seconds: float = RESYNC_SECONDS,
    ) -> None:
        self.db = db
        self.loop = loop
        self.buffer = buffer
        self.resync_seconds = float(resync_seconds)
        # Each resync renews the leases (they have less than lease - resync left by then): three
        # tries before one lapses. A watch that joins renews only a lease a resync has not.
        self.lease_seconds = 4 * self.resync_seconds
        self._channels: dict[str, _Channel] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="chat-events", daemon=True)
        self._resync: asyncio.Future[None] | None = None

    def start(self) -> None:
        self._thread.start()
        self._resync = asyncio.run_coroutine_threadsafe(self._resync_forever(), self.loop)  # type: ignore[assignment]

    def stop(self) -> None:
        self._stop.set()
        if self._resync is not None:
            self._resync.cancel()
        self._thread.join(timeout=5)

    def followed(self) -> int:
        """How many chats have a channel (for tests and metrics)."""
        return len(self._channels)

    # -- the listener thread -------------------------------------------------------

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.db.url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._call(self._resync_all)  # whatever was missed while no one listened
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=1.0):
                            key, _, body = note.payload.partition(" ")
                            if key in self._channels:  # most chats have no watcher here
                                self._call(self._changed, key, snapshot_of(body) if body else None)
            except psycopg.Error as exc:  # the database went away: listen again, then resync
                log.warning("chat event listener reconnecting: %s", type(exc).__name__)
                self._stop.wait(RETRY_SECONDS)

    def _call(self, callback: object, *args: object) -> None:
        try:
            self.loop.call_soon_threadsafe(callback, *args)  # type: ignore[arg-type]
        except RuntimeError:  # the loop closed: the server is stopping
            self._stop.set()

    # -- channels, on the event loop ---------------------------------------------------

    def follow(self, tenant_id: UUID, chat_id: UUID, head_version: int) -> Follower:
        """A place in the chat's channel; a new channel starts from `head_version`, the head as the watcher
        read it. A commit between that read and this call is in the watcher's own backlog read, and the
        channel's next notification finds the gap and reads it again (each version is delivered once)."""
        key = channel_key(tenant_id, chat_id)
        follower = Follower(key, self.buffer)
        channel = self._channels.get(key)
        if channel is None:
            channel = self._channels[key] = _Channel(tenant_id, chat_id, head_version)
        channel.followers.add(follower)
        return follower

    def unfollow(self, follower: Follower) -> None:
        channel = self._channels.get(follower.key)
        if channel is not None:
            channel.followers.discard(follower)
            if not channel.followers:
                del self._channels[follower.key]

    def _changed(self, key: str, row: Snapshot | None = None) -> None:
        """A commit in a followed chat: its snapshot when the notification carried it, pushed as it is when
        it is the next version; else (a gap, a resync, no row) the chat's new snapshots are read."""
        channel = self._channels.get(key)
        if channel is None:
            return
        if row is not None and not channel.refreshing and row.version == channel.last + 1:
            self._push(channel, row)
            return
        if channel.refreshing:
            channel.again = True
            return
        channel.refreshing = True
        asyncio.get_running_loop().create_task(self._refresh(key, channel))

    def _push(self, channel: _Channel, row: Snapshot) -> None:
        """`row` to every follower, after the rows pushed before it (each follower sees versions in order)."""
        channel.last = row.version
        channel.outbox.append(row)
        if len(channel.outbox) == 1:  # nothing in flight: start now
            self._fan_out(channel, list(channel.followers), 0)

    def _fan_out(self, channel: _Channel, followers: list[Follower], start: int) -> None:
        """The outbox's first row to followers[start:start + FAN_OUT_BATCH]; the rest on later turns."""
        row = channel.outbox[0]
        end = start + FAN_OUT_BATCH
        for follower in followers[start:end]:
            follower.offer(row)
        if end < len(followers):
            self.loop.call_soon(self._fan_out, channel, followers, end)
            return
        channel.outbox.popleft()
        if channel.outbox:  # the next row, to the followers there are now
            self.loop.call_soon(self._fan_out, channel, list(channel.followers), 0)

    def _resync_all(self) -> None:
        for key in list(self._channels):
            self._changed(key)

    async def _resync_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.resync_seconds)
            chats: dict[UUID, list[UUID]] = {}
            for channel in self._channels.values():
                chats.setdefault(channel.tenant_id, []).append(channel.chat_id)
            if chats:
                try:
                    await loop.run_in_executor(None, self._renew, chats)
                except Exception as exc:  # a lapse delays events to the next resync; none is lost
                    log.warning("chat event leases could not be renewed: %s", type(exc).__name__)
            self._resync_all()

    def _renew(self, chats: dict[UUID, list[UUID]]) -> None:
        """Renew the leases of the followed chats: one statement per tenant."""
        for tenant_id, chat_ids in chats.items():
            with self.db.transaction(tenant_id) as tx:
                self.lease(tx, tenant_id, chat_ids)

    def lease(self, tx: Transaction, tenant_id: UUID, chat_ids: list[UUID]) -> None:
        """Writes to these chats notify for lease_seconds from now (migrations/018); a lease with more
        than lease - resync left (one a resync or another watch renewed since) is left as it is.

        Either the lease held already, and every write since notifies, or this
        statement took the chat's row lock, after any write holding it: a write
        that did not notify is then below the head the caller reads next in the
        same transaction.
        """
        params = {"tenant_id": tenant_id, "chat_ids": chat_ids, "lease_seconds": self.lease_seconds}
        tx.execute("lease_chat_events", params | {"renew_below": self.lease_seconds - self.resync_seconds})

    async def _refresh(self, key: str, channel: _Channel) -> None:
        """Read the chat's new snapshots once and push them to every follower; again while commits come."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                channel.again = False
                try:
                    rows = await loop.run_in_executor(
                        None, snapshots_after, self.db, channel.tenant_id, channel.chat_id, channel.last, PAGE * 10
                    )
                except Exception as exc:
                    log.warning("chat events could not be read: %s", type(exc).__name__)
                    await asyncio.sleep(RETRY_SECONDS)
                    channel.again = True
                    rows = []
                for row in rows:
                    self._push(channel, row)
                if not channel.again or self._channels.get(key) is not channel:
                    return
        finally:
            channel.refreshing = False


class Watcher:
    def __init__(self, db: Database, events: ChatEvents, max_watches: int) -> None:
        self.db = db
        self.events = events
        self.slots = Slots(max_watches)
        self.max_watches = max_watches

    async def watch(self, identity: Identity, chat_id: str, after_version: int) -> AsyncGenerator[Snapshot, None]:
        """Every snapshot after `after_version`, then each new one as it commits, until the caller leaves."""
        check = Checker()
        chat = check.uuid("chat_id", chat_id)
        check.done()
        if after_version < 0:
            raise InvalidArgument([FieldViolation("after_version", "must not be negative")])
        assert chat is not None
        loop = asyncio.get_running_loop()
        head_version = await loop.run_in_executor(None, self._head_version, identity, chat)
        if not self.slots.take():
            raise ResourceExhausted(
                f"this server already serves {self.max_watches} watches (TM_MAX_WATCHES); retry on another replica"
            )
        try:
            follower = self.events.follow(identity.tenant_id, chat, head_version)
            try:
                last = after_version
                while True:  # what was missed, in pages
                    rows = await loop.run_in_executor(
                        None, snapshots_after, self.db, identity.tenant_id, chat, last, PAGE
                    )
                    for row in rows:
                        yield row
                        last = row.version
                    if len(rows) < PAGE:
                        break
                # A watch lives for hours: it must not keep the last page it replayed (up to PAGE snapshots).
                del rows
                while True:  # then live
                    pushed = await follower.next()
                    if pushed is None:
                        raise ResourceExhausted(
                            f"this watch fell {self.events.buffer} snapshots behind its reader; "
                            f"resume with after_version={last}"
                        )
                    if pushed.version > last:
                        yield pushed
                        last = pushed.version
            finally:
                self.events.unfollow(follower)
        finally:
            self.slots.give_back()

    def _head_version(self, identity: Identity, chat: UUID) -> int:
        """The chat's head, read after its lease is taken: a write after this read notifies."""
        with self.db.transaction(identity.tenant_id) as tx:
            self.events.lease(tx, identity.tenant_id, [chat])
            return require_chat(tx, identity, chat).head_version


def snapshots_after(db: Database, tenant_id: UUID, chat_id: UUID, after: int, limit: int) -> list[Snapshot]:
    """A chat's snapshots after version `after`, oldest first, at most `limit`."""
    with db.transaction(tenant_id) as tx:
        rows: list[Snapshot] = tx.all(
            "snapshots_page",
            {"tenant_id": tenant_id, "chat_id": chat_id, "after_version": after, "limit": limit},
            Snapshot,
        )
    return rows
