"""Reads that may lag: a hot standby when there is one (TM_DATABASE_READ_URL), else the primary.

The timeline, the calendar and search may answer from a streaming replica a
moment behind the primary; everything else, and every write, uses the
primary, so a caller always reads its own writes there (the contract in
proto/timemachine/v1/service.proto says which is which). The standby answers
what it has replayed. What it cannot answer goes to the primary:
- a chat it does not have (NOT_FOUND): written a moment ago, or not at all,
  which only the primary can tell;
- a standby unreachable or cancelling the read (a conflict with recovery):
  the primary serves, and the standby is left alone for a few seconds, so
  that calls do not each wait for it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar
from uuid import UUID

from service.database import Database, Transaction
from service.errors import Aborted, NotFound, Unavailable

log = logging.getLogger(__name__)
T = TypeVar("T")


class LaggingReads:
    def __init__(self, primary: Database, standby: Database | None = None, rest_seconds: float = 5.0) -> None:
        self.primary = primary
        self.standby = standby
        self.rest_seconds = rest_seconds
        self._standby_rests_until = 0.0
        # How many reads each side answered (tests and operators).
        self.served = {"standby": 0, "primary": 0}
        self._lock = threading.Lock()

    def run(self, tenant_id: UUID, work: Callable[[Transaction], T]) -> T:
        """`work` in one read transaction for the tenant, on the standby when it can answer."""
        if self.standby is not None and time.monotonic() >= self._standby_rests_until:
            try:
                with self.standby.transaction(tenant_id) as tx:
                    result = work(tx)
                self._count("standby")
                return result
            except NotFound:
                pass  # not replayed yet, or not there at all: the primary says which
            except (Unavailable, Aborted) as exc:
                log.warning("the read standby could not answer (%s); reading from the primary", exc)
                self._standby_rests_until = time.monotonic() + self.rest_seconds
        with self.primary.transaction(tenant_id) as tx:
            result = work(tx)
        self._count("primary")
        return result

    def _count(self, side: str) -> None:
        with self._lock:
            self.served[side] += 1
