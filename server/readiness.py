"""Health that follows the stores.

A replica whose PostgreSQL or S3 cannot be reached answers every call with
UNAVAILABLE; a load balancer should send calls elsewhere. So the gRPC health
status goes NOT_SERVING once a store has been unreachable for a grace period
(TM_HEALTH_GRACE_SECONDS; a blip does not flap it), and SERVING again as soon
as both answer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from grpc_health.v1 import health, health_pb2

from service.background import Loop
from service.database import Database
from service.errors import ServiceError
from service.vault import Vault

log = logging.getLogger(__name__)
PROBE_SECONDS = 1.0


class Readiness:
    def __init__(
        self, servicer: health.HealthServicer, names: tuple[str, ...], db: Database, vault: Vault, grace_seconds: float
    ) -> None:
        self.servicer = servicer
        self.names = names
        self.probes: dict[str, Callable[[], None]] = {"PostgreSQL": lambda: _ping(db), "S3": vault.ping}
        self.grace_seconds = grace_seconds
        self.serving = True
        self._down_since: dict[str, float] = {}
        self.loop = Loop("readiness", self.step)

    def start(self) -> None:
        self.loop.start()

    def stop(self) -> None:
        self.loop.stop()

    def step(self) -> float:
        for store, probe in self.probes.items():
            try:
                probe()
            except ServiceError as exc:
                if store not in self._down_since:
                    log.warning("%s is unreachable (%s)", store, exc.message)
                self._down_since.setdefault(store, time.monotonic())  # from the first failed answer
            else:
                if self._down_since.pop(store, None) is not None:
                    log.info("%s answers again", store)
        now = time.monotonic()
        down = [s for s, since in self._down_since.items() if now - since >= self.grace_seconds]
        serving = not down
        if serving != self.serving and not self.loop.stopping.is_set():
            self.serving = serving
            status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
            for name in self.names:
                self.servicer.set(name, status)
            if serving:
                log.info("health: SERVING (PostgreSQL and S3 answer)")
            else:
                log.warning("health: NOT_SERVING (%s unreachable for %.0f s)", " and ".join(down), self.grace_seconds)
        return PROBE_SECONDS


def _ping(db: Database) -> None:
    with db.transaction(None) as tx:
        tx.one("ping")
