"""A chat's fan-out, a batch of watchers per turn of the event loop, keeps each watcher's versions in order.

Rows come from notifications (one at a time) and from refreshes (several at
once) while earlier rows are still being handed out; a watcher that got a
version before the one below it would skip that one for good.
"""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace
from typing import Any, cast

from service.events import FAN_OUT_BATCH, ChatEvents, Follower, channel_key
from service.models import Snapshot


def _row(version: int) -> Snapshot:
    return cast(Snapshot, SimpleNamespace(version=version))


async def _drain(follower: Follower, count: int) -> list[int]:
    versions = []
    for _ in range(count):
        row = await follower.next()
        assert row is not None
        versions.append(row.version)
    return versions


def test_every_follower_gets_every_version_in_order_while_fan_outs_overlap() -> None:
    loop = asyncio.new_event_loop()
    try:
        events = ChatEvents(cast(Any, None), loop)
        tenant, chat = uuid.uuid4(), uuid.uuid4()
        followers = [events.follow(tenant, chat, 0) for _ in range(5 * FAN_OUT_BATCH + 3)]
        channel = events._channels[channel_key(tenant, chat)]

        async def publish() -> None:
            events._changed(channel_key(tenant, chat), _row(1))  # a notification: fanned out over turns
            await asyncio.sleep(0)  # one turn: the first batches have it, the last ones not yet
            for version in (2, 3, 4):  # a refresh's rows, pushed at once behind it
                events._push(channel, _row(version))
            events._changed(channel_key(tenant, chat), _row(5))

        async def scene() -> list[list[int]]:
            readers = [asyncio.ensure_future(_drain(f, 5)) for f in followers]
            await publish()
            return await asyncio.wait_for(asyncio.gather(*readers), timeout=5)

        heard = loop.run_until_complete(scene())
        assert heard == [[1, 2, 3, 4, 5]] * len(followers)
        assert not channel.outbox
    finally:
        loop.close()
