"""Prometheus metrics on TM_METRICS_ADDRESS (prometheus-client).

The gRPC series carry the names go-grpc-prometheus and the dashboards built
for it expect (grpc_server_started_total, grpc_server_handled_total, ...), so
existing gRPC dashboards and alerts work unchanged. The process's CPU,
memory, file descriptors and garbage collections carry prometheus-client's
standard names (process_*, python_*). The rest describe this server's
limits: pooled connections, transfer and watch slots, the export queue,
vault bytes and sweeper deletions. No label ever names a tenant, a
chat or a user (unbounded, and they would leak who uses the service).

Each App has a registry of its own, so several servers in one process (the
tests) never count into each other.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from service.errors import ServiceError
from service.slots import Slots
from service.sweeper import Sweeper
from service.tally import Tally
from service.vault import Vault

# From 1 ms to 2 minutes: a SaveMessage takes milliseconds, an export minutes.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
CALL_LABELS = ("grpc_type", "grpc_service", "grpc_method")


class Gauges(Collector):
    """Values read at scrape time from the parts that own them."""

    def __init__(self) -> None:
        self._sources: list[Callable[[], Iterable[Any]]] = []

    def add(self, source: Callable[[], Iterable[Any]]) -> None:
        self._sources.append(source)

    def collect(self) -> Iterator[Any]:
        for source in self._sources:
            yield from source()


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.started = Counter("grpc_server_started", "RPCs started on the server.", CALL_LABELS, registry=r)
        self.handled = Counter(
            "grpc_server_handled",
            "RPCs completed on the server, by status code.",
            (*CALL_LABELS, "grpc_code"),
            registry=r,
        )
        self.handling = Histogram(
            "grpc_server_handling_seconds",
            "Time from the start of an RPC to its status.",
            CALL_LABELS,
            buckets=BUCKETS,
            registry=r,
        )
        self.received = Counter(
            "grpc_server_msg_received", "Stream messages received from clients.", CALL_LABELS, registry=r
        )
        self.sent = Counter("grpc_server_msg_sent", "Stream messages sent to clients.", CALL_LABELS, registry=r)
        self.gauges = Gauges()
        r.register(self.gauges)
        # The process's own series, as every Prometheus client exports them by default (ours is not the
        # default registry): process_cpu_seconds_total, process_resident_memory_bytes, open fds, and
        # python_gc_collections_total{generation}, whose generation 2 stops every thread while it runs.
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def serve(self, address: str) -> None:
        """The /metrics endpoint on host:port (port 0: a free one, then in `port`)."""
        host, _, port = address.rpartition(":")
        bind = host.strip("[]") or "0.0.0.0"
        self._server, self._thread = start_http_server(int(port), addr=bind, registry=self.registry)
        self.port = int(self._server.server_port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def limits(
    pools: list[tuple[str, Any]],
    vault: Vault,
    transfers: Slots,
    watches: Slots,
    sweeper: Sweeper,
    export_queue: Callable[[], tuple[int, float]],
    write_paths: Tally,
) -> Callable[[], Iterator[Any]]:
    """The server's limits and queues, read at each scrape."""

    primary = pools[0][1]

    def values() -> Iterator[Any]:
        for role, db in pools:
            stats = db.pool.get_stats()
            size, idle = stats.get("pool_size", 0), stats.get("pool_available", 0)
            yield gauge("tm_db_pool_connections_in_use", "Pooled connections lent out.", size - idle, pool=role)
            yield gauge("tm_db_pool_connections_idle", "Pooled connections idle.", idle, pool=role)
            waiting = stats.get("requests_waiting", 0)
            yield gauge("tm_db_pool_requests_waiting", "Calls waiting for a pooled connection.", waiting, pool=role)
        running = "Uploads, downloads, exports and verifications running."
        yield gauge("tm_transfer_slots_in_use", running, transfers.in_use)
        yield gauge("tm_transfer_slots", "Transfers this server runs at once.", transfers.limit)
        yield gauge("tm_watch_slots_in_use", "Open WatchChat streams.", watches.in_use)
        yield gauge("tm_watch_slots", "WatchChat streams this server holds at once.", watches.limit)
        yield counter(
            "tm_sweeper_deletions",
            "Object versions the sweeper of this server deleted, by reason.",
            "reason",
            dict(sweeper.deletions),
        )
        yield counter(
            "tm_snapshots_written",
            "Snapshots committed through this server's pool, by trigger.",
            "trigger",
            primary.snapshots.counts(),
        )
        paths = CounterMetricFamily(
            "tm_write_paths",
            "Chat actions (save, edit, delete, rename, snapshot) by the path they took: one_trip (one"
            " statement, one round trip) or general (a transaction: what the one trip does not take,"
            " including calls that then fail).",
            labels=["write", "path"],
        )
        for key, count in sorted(write_paths.counts().items()):
            paths.add_metric(key.split("/"), count)
        yield paths
        yield counter(
            "tm_vault_bytes",
            "Bytes this server sent to the vault (in) and read from it (out).",
            "direction",
            vault.traffic.counts(),
        )
        try:
            depth, age = export_queue()
        except ServiceError:  # the database is down: the other series matter most now
            return
        yield gauge("tm_export_queue_depth", "Export bundles waiting to be rendered, all replicas.", depth)
        yield gauge("tm_export_queue_oldest_seconds", "How long the oldest waiting bundle has waited.", age)

    return values


def counter(name: str, documentation: str, label: str, counts: dict[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=[label])
    for value, count in sorted(counts.items()):
        family.add_metric([value], count)
    return family


def gauge(name: str, documentation: str, value: float, **labels: str) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=list(labels))
    family.add_metric(list(labels.values()), value)
    return family
