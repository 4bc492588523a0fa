"""Traces (OpenTelemetry): a server span per call, PostgreSQL and S3 spans beneath it.

Off unless an OTLP endpoint is configured (`OTEL_EXPORTER_OTLP_ENDPOINT` or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`); the SDK reads the other standard
variables itself (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
`OTEL_TRACES_SAMPLER`, `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_BSP_*` …).

The server span is ours, made in the interceptor (server/interceptor.py),
not the contrib gRPC instrumentation's: that one learns a call's status only
from `abort`/`set_code`, and every status here leaves through
`abort_with_status` (it carries google.rpc details), so it would report every
refused call as OK. PostgreSQL spans come from the psycopg instrumentation,
attached to each pooled connection (statement text with its placeholders,
never the parameters); S3 spans from the botocore instrumentation.
WatchChat gets no span: a watch can stay open for days, and a span that long
is never exported.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import grpc
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.botocore import BotocoreInstrumentor
from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

UNTRACED = frozenset({"WatchChat"})
# Codes that mean the server failed (OpenTelemetry's gRPC conventions for
# server spans); a caller's mistake (INVALID_ARGUMENT, NOT_FOUND …) is not an error of the span.
SERVER_ERRORS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)


def provider_from_env() -> TracerProvider | None:
    """A provider exporting over OTLP when an endpoint is configured; None when tracing is off."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if not (os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
        return None
    # Imported here: the exporter pulls in its own gRPC client stack, needed only when it exports.
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    resource = Resource.create()  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):  # neither says
        resource = resource.merge(Resource({"service.name": "time-machine"}))
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


class Tracing:
    """Spans for one process: the server span of each call and the stores' spans beneath it."""

    def __init__(self, provider: TracerProvider | None) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("timemachine.server") if provider is not None else None
        self._botocore: BotocoreInstrumentor | None = None

    @property
    def enabled(self) -> bool:
        return self.tracer is not None

    def connection_hook(self) -> Callable[[Any], None] | None:
        """What each new pooled PostgreSQL connection passes through (service/database.py)."""
        provider = self.provider
        if provider is None:
            return None

        def instrument(conn: Any) -> None:
            PsycopgInstrumentor.instrument_connection(conn, tracer_provider=provider)

        return instrument

    def instrument_s3(self) -> None:
        """S3 calls (every botocore client of this process) become child spans."""
        if self.provider is not None and self._botocore is None:
            self._botocore = BotocoreInstrumentor()  # type: ignore[no-untyped-call]
            self._botocore.instrument(tracer_provider=self.provider)

    def shutdown(self) -> None:
        """Stop tracing S3 and send what is buffered."""
        if self._botocore is not None:
            self._botocore.uninstrument()
            self._botocore = None
        if self.provider is not None:
            self.provider.shutdown()

    def traces(self, method: str) -> bool:
        """Whether calls of `method` get a span (decided once per method: server_span costs a generator)."""
        return self.tracer is not None and method not in UNTRACED

    @contextmanager
    def server_span(self, service: str, method: str, metadata: Any) -> Iterator[trace.Span | None]:
        """The span of one call, a child of the caller's `traceparent` when it sent one."""
        if self.tracer is None or method in UNTRACED:
            yield None
            return
        carrier = {key: value for key, value in metadata or () if isinstance(value, str)}
        with self.tracer.start_as_current_span(
            f"{service}/{method}",
            context=propagate.extract(carrier),
            kind=SpanKind.SERVER,
            attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": method},
            record_exception=False,  # finish() records what is a server failure, without its text
            set_status_on_exception=False,
        ) as span:
            yield span


def finish(span: trace.Span | None, code: grpc.StatusCode, error: BaseException | None) -> None:
    """Record a call's outcome on its span."""
    if span is None:
        return
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    if code in SERVER_ERRORS:
        span.set_status(Status(StatusCode.ERROR, code.name))
        if error is not None:
            # The type only: an exception's text can hold SQL or a caller's values,
            # which never leave the process (the log has the stack of INTERNAL ones).
            span.set_attribute("error.type", type(error).__name__)


def trace_id(span: trace.Span | None) -> str | None:
    """The span's trace id as W3C writes it (32 hex digits)."""
    if span is None:
        return None
    context = span.get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None
