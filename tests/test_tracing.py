"""Traces: a server span per call, with PostgreSQL and S3 spans beneath it (server/tracing.py).

In process, with the SDK's in-memory exporter: the span tree of a SaveMessage
and of an UploadFile, the caller's traceparent honoured, no parameter or
content in any span, a caller's mistake not marked as a server error, and no
span for a watch. Then `python -m server` configured only by the standard
OTEL_* variables sends its spans over OTLP to a collector run by the test.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from generated.timemachine.v1 import resources_pb2 as pb
from generated.timemachine.v1 import service_pb2 as api
from generated.timemachine.v1 import service_pb2_grpc
from server.app import App, Stores
from server.embedded import free_port
from server.tracing import Tracing
from service.database import Database
from tests.conftest import Stack, quiet_settings, upload_stream
from tests.processes import TENANT, ServerProcess

SERVICE = "timemachine.v1.TimeMachineService"
SECRET = "the-content-no-span-may-carry"


class Traced:
    def __init__(self, stub: service_pb2_grpc.TimeMachineServiceStub, exporter: InMemorySpanExporter) -> None:
        self.stub = stub
        self.exporter = exporter
        self.md = (("x-tenant-id", str(uuid.uuid4())), ("x-user-id", str(uuid.uuid4())))

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def server_span(self, method: str) -> ReadableSpan:
        found = [s for s in self.spans() if s.name == f"{SERVICE}/{method}" and s.kind is SpanKind.SERVER]
        assert len(found) == 1, [s.name for s in self.spans()]
        return found[0]

    def children(self, parent: ReadableSpan) -> list[ReadableSpan]:
        return [s for s in self.spans() if s.parent is not None and s.parent.span_id == parent.context.span_id]


@pytest.fixture
def traced(stack: Stack) -> Iterator[Traced]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = Tracing(provider)
    tracer.instrument_s3()
    db = Database(stack.runtime.database_url, min_size=1, max_size=4, on_connect=tracer.connection_hook())
    db.open()
    app = App(quiet_settings(), Stores(db=db, vault=stack.stores.vault), tracer=tracer)
    app.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{app.port}")
    try:
        yield Traced(service_pb2_grpc.TimeMachineServiceStub(channel), exporter)
    finally:
        channel.close()
        app.stop(grace=1)
        db.close()
        tracer.shutdown()


def _values(span: ReadableSpan) -> list[str]:
    return [str(value) for value in (span.attributes or {}).values()]


def test_a_save_is_a_server_span_over_its_statements_in_the_callers_trace(traced: Traced) -> None:
    trace_id, parent_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    traceparent = ("traceparent", f"00-{trace_id}-{parent_id}-01")
    request = api.SaveMessageRequest(chat_id=str(uuid.uuid4()), role=pb.MESSAGE_ROLE_USER, content=SECRET)
    traced.stub.SaveMessage(request, metadata=(*traced.md, traceparent))
    span = traced.server_span("SaveMessage")
    assert format(span.context.trace_id, "032x") == trace_id
    assert span.parent is not None and format(span.parent.span_id, "016x") == parent_id
    assert span.attributes is not None
    assert (span.attributes["rpc.system"], span.attributes["rpc.method"]) == ("grpc", "SaveMessage")
    assert span.attributes["rpc.grpc.status_code"] == grpc.StatusCode.OK.value[0]
    statements = traced.children(span)
    assert len(statements) >= 3, [s.name for s in statements]  # begin, lock, the write, commit …
    assert all(s.kind is SpanKind.CLIENT and s.context.trace_id == span.context.trace_id for s in statements)
    assert {(s.attributes or {}).get("db.system", (s.attributes or {}).get("db.system.name")) for s in statements} == {
        "postgresql"
    }
    assert any("insert_snapshot" in v or "INSERT INTO tm_snapshots" in v for s in statements for v in _values(s))
    for s in traced.spans():  # statement text with its placeholders; never a parameter
        assert not any(SECRET in v for v in _values(s)), s.name


def test_a_save_on_the_event_loop_has_its_statement_beneath_it(traced: Traced) -> None:
    """An ordinary save (a new message in an existing chat) runs on the event loop with an asyncio
    connection (service/async_database.py): its statement is a span of the call's trace all the same."""
    chat_id = str(uuid.uuid4())
    request = api.SaveMessageRequest(chat_id=chat_id, role=pb.MESSAGE_ROLE_USER, content="first")
    traced.stub.SaveMessage(request, metadata=traced.md)  # a new chat: the general path
    traced.exporter.clear()
    request = api.SaveMessageRequest(chat_id=chat_id, role=pb.MESSAGE_ROLE_USER, content=SECRET)
    assert traced.stub.SaveMessage(request, metadata=traced.md).snapshot.version == 2
    span = traced.server_span("SaveMessage")
    statements = traced.children(span)
    assert all(s.kind is SpanKind.CLIENT and s.context.trace_id == span.context.trace_id for s in statements)
    texts = [v for s in statements for v in _values(s)]
    assert any("WITH h AS" in v and "INSERT INTO tm_snapshots" in v for v in texts), texts
    for s in traced.spans():
        assert not any(SECRET in v for v in _values(s)), s.name


def test_an_upload_has_s3_spans_and_a_mistake_is_not_a_server_error(traced: Traced) -> None:
    chat_id = str(uuid.uuid4())
    traced.stub.UploadFile(upload_stream(chat_id, "notes.txt", b"x" * 5000), metadata=traced.md)
    span = traced.server_span("UploadFile")
    children = traced.children(span)
    s3 = [s for s in children if (s.attributes or {}).get("rpc.system") == "aws-api"]
    assert s3 and {(s.attributes or {}).get("rpc.service") for s in s3} == {"S3"}, [s.name for s in children]
    assert any((s.attributes or {}).get("db.system", (s.attributes or {}).get("db.system.name")) for s in children)
    with pytest.raises(grpc.RpcError) as refused:
        traced.stub.GetChat(api.GetChatRequest(chat_id="not-a-uuid"), metadata=traced.md)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    failed = traced.server_span("GetChat")
    assert (failed.attributes or {})["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert failed.status.status_code is StatusCode.UNSET  # the caller's mistake, not ours


def test_a_watch_makes_no_endless_span(traced: Traced) -> None:
    stream = traced.stub.WatchChat(api.WatchChatRequest(chat_id=str(uuid.uuid4())), metadata=traced.md)
    with pytest.raises(grpc.RpcError):  # nothing happens in the chat: the watch outlives the deadline
        for _ in traced.stub.WatchChat(
            api.WatchChatRequest(chat_id=str(uuid.uuid4())), metadata=traced.md, timeout=0.5
        ):
            pass
    stream.cancel()
    time.sleep(0.2)
    assert not [s for s in traced.spans() if s.name.endswith("/WatchChat")]


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver: what a collector would get."""

    def __init__(self) -> None:
        self.spans: list[Any] = []
        self.services: set[str] = set()
        self.lock = threading.Lock()

    def Export(self, request: Any, context: Any) -> Any:
        with self.lock:
            for resource_spans in request.resource_spans:
                for attribute in resource_spans.resource.attributes:
                    if attribute.key == "service.name":
                        self.services.add(attribute.value.string_value)
                for scope_spans in resource_spans.scope_spans:
                    self.spans.extend(scope_spans.spans)
        return trace_service_pb2.ExportTraceServiceResponse()


def test_the_server_exports_over_otlp_when_the_standard_variables_say_so(tmp_path: Path) -> None:
    collector = Collector()
    receiver = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, receiver)  # type: ignore[no-untyped-call]
    port = free_port()
    receiver.add_insecure_port(f"127.0.0.1:{port}")
    receiver.start()
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_SERVICE_NAME": "tm-under-test",
    }
    server = ServerProcess(tmp_path / "traced", env)
    try:
        request = api.SaveMessageRequest(chat_id=str(uuid.uuid4()), role=pb.MESSAGE_ROLE_USER, content="hello")
        server.stub.SaveMessage(request, metadata=TENANT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with collector.lock:
                saves = [s for s in collector.spans if s.name == f"{SERVICE}/SaveMessage"]
                beneath = [s for s in collector.spans if saves and s.parent_span_id == saves[0].span_id]
            if saves and beneath:
                break
            time.sleep(0.2)
        assert saves, f"no SaveMessage span arrived; server output: {server.output()[-2000:]}"
        assert beneath and all(s.trace_id == saves[0].trace_id for s in beneath)
        assert collector.services == {"tm-under-test"}
    finally:
        assert server.terminate() == 0
        receiver.stop(grace=None)
