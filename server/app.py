"""Wiring: the product over its stores, and the gRPC server around it."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from collections.abc import Coroutine
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from generated.timemachine.v1 import service_pb2, service_pb2_grpc
from server import metrics
from server.admission import TRANSFERS, Admission
from server.bridge import bridge
from server.identity import Authenticator
from server.interceptor import SERVICE, ServiceInterceptor
from server.metrics import Metrics
from server.readiness import Readiness
from server.servicer import Product, TimeMachineServicer
from server.tls import ReloadingCredentials, TlsFiles
from server.tokens import TokenRules, TokenVerifier
from server.tracing import Tracing
from service.async_database import AsyncDatabase, loop_pool_size
from service.chats import Chats
from service.compare import Comparer
from service.config import Settings
from service.database import Database
from service.erasure import Eraser
from service.errors import ConfigurationError
from service.events import ChatEvents, Watcher
from service.export.bundles import Bundles, ExportWorker, export_queue
from service.export.exporter import Exporter
from service.files import Files
from service.history import History
from service.importer import Importer
from service.labels import Labels
from service.restore import Restorer
from service.search import Searcher
from service.standby import LaggingReads
from service.sweeper import Sweeper
from service.timeline import Reader
from service.vault import Vault
from service.verify import Verifier

log = logging.getLogger(__name__)
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


@dataclass
class Stores:
    db: Database
    vault: Vault
    reads: Database | None = None  # a hot standby for reads that may lag (TM_DATABASE_READ_URL)


def build_product(
    settings: Settings, stores: Stores, events: ChatEvents, sweeper: Sweeper, loop_db: AsyncDatabase | None = None
) -> Product:
    exporter = Exporter(stores.db, stores.vault, settings.pdf_max_text_bytes)
    lagging = LaggingReads(stores.db, stores.reads)
    return Product(
        history=History(stores.db, settings.max_message_bytes, loop_db),
        reader=Reader(stores.db, lagging),
        restorer=Restorer(stores.db),
        verifier=Verifier(stores.db, stores.vault),
        files=Files(stores.db, stores.vault, settings.max_upload_bytes, sweeper),
        searcher=Searcher(lagging),
        exporter=exporter,
        bundles=Bundles(stores.db, stores.vault, exporter, max_queued=settings.export_queue_per_tenant),
        comparer=Comparer(stores.db),
        # With transfers capped at half the threads (server/admission.py),
        # a quarter for watches leaves short calls a quarter at least.
        watcher=Watcher(stores.db, events, max_watches=settings.max_watches),
        importer=Importer(stores.db, stores.vault, sweeper, settings.max_upload_bytes),
        chats=Chats(stores.db),
        labels=Labels(stores.db),
        eraser=Eraser(stores.db, sweeper),
    )


REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"


class Reflection(reflection.ReflectionServicer):  # type: ignore[misc]
    """Reflection that also finds the file of a method or of an enum value named under its enum.

    `grpcurl describe timemachine.v1.TimeMachineService.Restore` asks for the
    file containing that symbol, and protobuf's pool knows services, messages,
    fields and enum values (as siblings of their enum) but not methods
    (grpc/grpc#34743). Such a name is answered with the file of its parent.
    """

    def _file_containing_symbol(self, request: Any, fully_qualified_name: str) -> Any:
        pool = self._pool
        parent, _, member = fully_qualified_name.rpartition(".")
        try:
            pool.FindFileContainingSymbol(fully_qualified_name)
        except KeyError:
            if _has_member(pool, parent, member):
                return super()._file_containing_symbol(request, parent)
        return super()._file_containing_symbol(request, fully_qualified_name)


def _has_member(pool: Any, parent: str, member: str) -> bool:
    """Whether `member` is a method of service `parent` or a value of enum `parent`."""
    for find, members in (("FindServiceByName", "methods_by_name"), ("FindEnumTypeByName", "values_by_name")):
        try:
            if member in getattr(getattr(pool, find)(parent), members):
                return True
        except KeyError:
            continue
    return False


def _reflection_v1(servicer: Reflection) -> grpc.GenericRpcHandler:
    """grpc.reflection.v1, which newer tools ask for first.

    grpcio-reflection serves only v1alpha; v1's messages are the same on the
    wire, so the v1alpha servicer answers under the v1 name as well.
    """
    return grpc.method_handlers_generic_handler(
        REFLECTION_V1,
        {
            "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
                servicer.ServerReflectionInfo,
                request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
                response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
            )
        },
    )


def _authenticator(settings: Settings) -> Authenticator:
    if settings.auth_mode != "jwt":
        return Authenticator(settings.auth_mode)
    rules = TokenRules(
        secret=settings.jwt_secret,
        public_keys=settings.jwt_public_keys,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        leeway_seconds=settings.jwt_leeway_seconds,
        tenant_claim=settings.jwt_tenant_claim,
        user_claim=settings.jwt_user_claim,
    )
    return Authenticator("jwt", TokenVerifier(rules))


class _Capture:
    """Collects the method handlers the generated code would register."""

    handlers: dict[str, Any]

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        pass

    def add_registered_method_handlers(self, name: str, handlers: dict[str, Any]) -> None:
        self.handlers = dict(handlers)


# Streaming RPCs whose servicer yields bare bytes for chunk messages, and the
# number of the `chunk` field in their response message.
CHUNK_FIELDS = {"DownloadFile": 2, "ExportChat": 3, "DownloadExport": 3}


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _chunk_serializer(field: int, serialize: Any) -> Any:
    tag = bytes([field << 3 | 2])

    def serializer(response: Any) -> bytes:
        if isinstance(response, bytes):  # a chunk: the message with only its bytes field set
            return tag + _varint(len(response)) + response
        data: bytes = serialize(response)
        return data

    return serializer


def _encoded(response: Any) -> bytes:
    """A response the servicer encoded itself, or a message to encode."""
    if isinstance(response, bytes):
        return response
    data: bytes = response.SerializeToString()
    return data


def chunked_streams(servicer: Any) -> grpc.GenericRpcHandler:
    """The service's handlers, where chunk messages skip building a protobuf object.

    Building and serializing a message around each 1 MiB chunk cost as much
    as the rest of the stream; the bytes on the wire are identical.
    """
    capture = _Capture()
    service_pb2_grpc.add_TimeMachineServiceServicer_to_server(servicer, capture)
    handlers = capture.handlers
    for name, field in CHUNK_FIELDS.items():
        old = handlers[name]
        handlers[name] = grpc.unary_stream_rpc_method_handler(
            old.unary_stream,
            request_deserializer=old.request_deserializer,
            response_serializer=_chunk_serializer(field, old.response_serializer),
        )
    watch = handlers["WatchChat"]  # its servicer yields each snapshot encoded once for all watchers
    handlers["WatchChat"] = grpc.unary_stream_rpc_method_handler(
        watch.unary_stream, request_deserializer=watch.request_deserializer, response_serializer=_encoded
    )
    return grpc.method_handlers_generic_handler(SERVICE, handlers)


def keepalive_options(seconds: int) -> list[tuple[str, int]]:
    """HTTP/2 pings to every client with calls open, every `seconds`.

    A client that vanished (host gone, network cut, process frozen) answers no
    ping, so its connection is closed after `seconds` plus at most 20 s and
    its calls end: a stalled upload or export gives its worker thread and
    S3 multipart back instead of holding them until TCP gives up (hours;
    gRPC's own server default pings every 2 hours).
    """
    return [
        ("grpc.keepalive_time_ms", seconds * 1000),
        ("grpc.keepalive_timeout_ms", min(seconds, 20) * 1000),
        # What gRPC core enforces today (the keepalive timeout alone never fires; grpc/grpc#39239).
        ("grpc.http2.ping_timeout_ms", min(seconds, 20) * 1000),
        ("grpc.http2.max_pings_without_data", 0),  # a stalled stream sends no data, and must still be pinged
    ]


async def _server(pool: futures.Executor, interceptor: grpc.aio.ServerInterceptor, options: list[Any]) -> Any:
    """An asyncio gRPC server, made on the loop that will run it."""
    return grpc.aio.server(migration_thread_pool=pool, interceptors=[interceptor], options=options)


async def _loop_database(db: Database, max_size: int) -> AsyncDatabase:
    """The event loop's pool of connections, made and opened on the loop that will use it."""
    loop_db = AsyncDatabase(db, max_size)
    await loop_db.open()
    return loop_db


def _short(handler: grpc.RpcMethodHandler, method: str) -> bool:
    """A call of the service that runs in the short calls' pool: one request, one answer, not a transfer.

    Health checks and reflection stay in the other pool: a probe must answer
    while every short-call thread waits on the database.
    """
    service, _, name = method.lstrip("/").partition("/")
    return service == SERVICE and bool(handler.unary_unary) and name not in TRANSFERS


class AsyncInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """The service interceptor's wrapping for the asyncio server: blocking handlers are bridged to the pool."""

    def __init__(self, inner: ServiceInterceptor, pool: futures.Executor, calls: futures.Executor) -> None:
        self.inner = inner
        self.pool = pool
        self.calls = calls
        # grpc.aio asks for every call: a method's wrapped handler is built once (it keeps
        # no call's state). Only methods the server has are kept, whatever names callers send.
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        wrapped = self._wrapped.get(details.method)
        if wrapped is None:
            handler = await continuation(details)
            pool = self.calls if handler is not None and _short(handler, details.method) else self.pool
            wrapped = bridge(self.inner.intercept_service(lambda _: handler, details), pool)
            if wrapped is not None:
                self._wrapped[details.method] = wrapped
        return wrapped


class App:
    """A started gRPC server with health and reflection."""

    def __init__(
        self, settings: Settings, stores: Stores, address: str | None = None, tracer: Tracing | None = None
    ) -> None:
        self.settings = settings
        self.stores = stores
        self.health = health.HealthServicer()
        self.metrics = Metrics()
        admission = Admission(transfer_slots=max(1, settings.grpc_workers // 2))
        # The asyncio server: blocking handlers run in `pool` (server/bridge.py),
        # async ones (WatchChat) on the event loop, which runs in a thread of its own.
        self.pool = futures.ThreadPoolExecutor(max_workers=settings.grpc_workers, thread_name_prefix="rpc")
        # Short calls (unary, not transfers) in a pool of their own, a few threads a CPU
        # (service/config.py, default_call_workers): more only queue for the GIL.
        self.calls = futures.ThreadPoolExecutor(max_workers=settings.grpc_call_workers, thread_name_prefix="call")
        self.loop = asyncio.new_event_loop()
        self.loop.set_default_executor(self.calls)  # what a handler on the loop hands blocking work to
        self._loop_thread = threading.Thread(target=self.loop.run_forever, name="grpc-loop", daemon=True)
        self._loop_thread.start()
        interceptor = AsyncInterceptor(
            ServiceInterceptor(_authenticator(settings), admission, self.metrics, tracer), self.pool, self.calls
        )
        options = [
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
            # Calls that arrived and wait for the asyncio server to take them: core's
            # default (1,000, hard 3,000) left ~10 % of a burst of 2,000 watches
            # waiting for ever (they never reached a handler). TM_MAX_WATCHES bounds them.
            ("grpc.server.max_pending_requests", 1 << 20),
            ("grpc.server.max_pending_requests_hard_limit", 1 << 20),
            *keepalive_options(settings.grpc_keepalive_seconds),
        ]
        self.server = self._on_loop(_server(self.pool, interceptor, options))
        self.events = ChatEvents(stores.db, self.loop, buffer=settings.watch_buffer)
        self.sweeper = Sweeper(
            stores.db,
            stores.vault,
            grace_seconds=settings.sweeper_grace_seconds,
            interval_seconds=settings.sweeper_interval_seconds,
        )
        # The ordinary SaveMessage, EditMessage and DeleteMessage run on the loop
        # (service/async_database.py): its pool is made there.
        self.loop_db = self._on_loop(_loop_database(stores.db, loop_pool_size(settings.db_pool_max)))
        product = self.product = build_product(settings, stores, self.events, self.sweeper, self.loop_db)
        servicer = TimeMachineServicer(product, stream_idle_seconds=settings.stream_idle_seconds)
        self.workers = [
            ExportWorker(
                stores.db,
                stores.vault,
                product.exporter,
                lease_seconds=settings.export_lease_seconds,
                sweeper=self.sweeper,
            )
            for _ in range(settings.export_workers)
        ]
        self._measure(stores, admission, product)
        self.readiness = Readiness(
            self.health, ("", SERVICE), stores.db, stores.vault, grace_seconds=settings.health_grace_seconds
        )
        self.server.add_generic_rpc_handlers((chunked_streams(servicer),))
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        names: list[Any] = [
            service_pb2.DESCRIPTOR.services_by_name["TimeMachineService"].full_name,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
            REFLECTION_V1,
        ]
        reflector = Reflection(names)
        reflection_pb2_grpc.add_ServerReflectionServicer_to_server(reflector, self.server)
        self.server.add_generic_rpc_handlers((_reflection_v1(reflector),))
        self.tls: ReloadingCredentials | None = None
        if settings.tls_cert_file is not None and settings.tls_key_file is not None:
            files = TlsFiles(settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file)
            self.tls = ReloadingCredentials(files)
            self.port = self.server.add_secure_port(address or settings.grpc_address, self.tls.credentials)
        else:
            self.port = self.server.add_insecure_port(address or settings.grpc_address)
        if self.port == 0:  # taken since the start-up check (server/ports.py)
            raise ConfigurationError(f"TM_GRPC_ADDRESS={address or settings.grpc_address} cannot be listened on")

    def _measure(self, stores: Stores, admission: Admission, product: Product) -> None:
        pools: list[tuple[str, Any]] = [("primary", stores.db), ("primary_loop", self.loop_db)]
        pools += [("standby", stores.reads)] if stores.reads is not None else []
        self.metrics.gauges.add(
            metrics.limits(
                pools,
                stores.vault,
                admission.slots,
                product.watcher.slots,
                self.sweeper,
                lambda: export_queue(stores.db),
                product.history.paths,
            )
        )

    def _on_loop(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        """Run `coroutine` on the server's event loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def start(self) -> None:
        if self.settings.metrics_address:
            self.metrics.serve(self.settings.metrics_address)
        self.events.start()
        self._on_loop(self.server.start())
        for worker in self.workers:
            worker.start()
        self.sweeper.start()
        for name in ("", SERVICE):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self.readiness.start()
        # What start-up made (modules, protobuf descriptors, botocore's service models: ~157,000
        # objects) lives as long as the process. In the collector's view, every full collection
        # walked it all, 75 ms with every Python thread stopped (the event loop too); frozen, a
        # full collection takes 0.3 ms. Garbage is collected first, so none is kept for ever.
        gc.collect()
        gc.freeze()

    def stop(self, grace: float = 10.0) -> None:
        """Health goes NOT_SERVING, new calls are refused, in-flight calls finish."""
        self.readiness.stop()  # before: it must not set SERVING again
        self.health.enter_graceful_shutdown()
        self._on_loop(self.server.stop(grace))
        self._on_loop(self.loop_db.close())
        self.events.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._loop_thread.join(timeout=5)
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.calls.shutdown(wait=False, cancel_futures=True)
        for worker in self.workers:  # a bundle cut short is picked up again by any replica
            worker.stop()
        self.sweeper.stop()
        self.metrics.stop()
