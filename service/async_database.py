"""The write path's one-round-trip statements, run on the gRPC server's event loop.

An ordinary SaveMessage, EditMessage or DeleteMessage is one statement in one
round trip (Database.at_once). Run from a pool thread, as every other call is,
it paid twice for the hop: the loop handing the call to a thread and back,
and the two threads taking turns at Python's lock around each of the driver's
waits. Awaited on the loop itself, with psycopg's asyncio connection, the
whole call stays in one thread: about a fifth less of our CPU per save and a
third more saves a second on 2 CPUs (docs/benchmarks.md, issue 10).
Everything else keeps the blocking path.

The pool is small and its own (a quarter of TM_DB_POOL_MAX, at least 2): a
statement holds a connection for one round trip, and nothing else waits on it.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
import psycopg.errors
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from service.database import TIME_LIMITS, Database, JsonbLoader, dropped, row_factory, tenant_setting
from service.errors import Unavailable
from service.queries import query


def loop_pool_size(db_pool_max: int) -> int:
    return max(2, db_pool_max // 4)


class AsyncDatabase:
    """One-round-trip statements on an event loop, sharing `db`'s settings, limits and errors."""

    def __init__(self, db: Database, max_size: int) -> None:
        self.db = db
        # Made and opened on the loop that will use it (psycopg's asyncio objects belong to one loop).
        self.pool = AsyncConnectionPool(
            db.url,
            min_size=1,
            max_size=max_size,
            open=False,
            kwargs={"autocommit": True},
            configure=self._configure,
            timeout=5.0,  # as Database's: how long a call waits for a connection before UNAVAILABLE
            name="timemachine-loop",
        )

    async def _configure(self, conn: psycopg.AsyncConnection[Any]) -> None:
        for statement in self.db.session_setup():
            await conn.execute(statement)
        conn.adapters.register_loader("jsonb", JsonbLoader)
        if self.db.on_connect is not None:
            self.db.on_connect(conn)

    async def open(self) -> None:
        try:
            await self.pool.open(wait=True, timeout=30.0)
        except PoolTimeout as exc:
            raise Unavailable("the database is unreachable") from exc

    async def close(self) -> None:
        await self.pool.close()

    async def at_once(self, tenant_id: UUID, name: str, params: dict[str, Any], row: type[Any] | None = None) -> Any:
        """Database.at_once, awaited: the same pipeline, the same None for what is not ordinary."""
        left, limits = self.db.one_trip_limits()
        with self.db.translated(left):
            async with self.pool.connection() as conn:
                if dropped(conn):
                    await conn.close()  # the pool discards it; the general path checks the rest
                    return None
                try:
                    async with conn.pipeline():
                        await conn.execute(tenant_setting(tenant_id), prepare=False)
                        if limits is not None:
                            await conn.execute(TIME_LIMITS, limits)
                        cur = conn.cursor(row_factory=row_factory(row), binary=True)
                        await cur.execute(query(name), params)
                except psycopg.errors.UniqueViolation:
                    return None
                return await cur.fetchone()
