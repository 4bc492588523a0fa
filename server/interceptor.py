"""One interceptor for identity, error mapping, metrics, traces and access logs.

It wraps each handler's behaviour so that everything runs in the worker
thread that serves the call: the identity is bound there, and any exception
the call raises is turned into a gRPC status there. This is the only place
that decides status codes; servicers and the product never do.
"""

from __future__ import annotations

import inspect
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from server import identity, tracing
from server.admission import TRANSFERS, Admission
from server.metrics import Metrics
from service import deadline, errors

log = logging.getLogger("timemachine.access")
SERVICE = "timemachine.v1.TimeMachineService"
# Calls that change data or export it must say which user acts.
USER_REQUIRED = frozenset(
    {
        "SaveMessage",
        "EditMessage",
        "DeleteMessage",
        "RenameChat",
        "CreateSnapshot",
        "Restore",
        "UploadFile",
        "DeleteFile",
        "ExportChat",
        "CreateExport",
        "DownloadExport",
        "ImportChat",
        "ArchiveChat",
        "UnarchiveChat",
        "DeleteChat",
        "UndeleteChat",
        "LabelSnapshot",
        "UnlabelSnapshot",
        "EraseChat",
        "SetLegalHold",
        "EraseTenant",
    }
)
_CODES: dict[type[errors.ServiceError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.Aborted: grpc.StatusCode.ABORTED,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.DataLoss: grpc.StatusCode.DATA_LOSS,
    errors.DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.Cancelled: grpc.StatusCode.CANCELLED,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
}


def to_status(exc: BaseException) -> tuple[grpc.StatusCode, status_pb2.Status]:
    """The gRPC status for an exception, with google.rpc details."""
    if isinstance(exc, errors.ServiceError):
        code = next((c for cls, c in _CODES.items() if isinstance(exc, cls)), grpc.StatusCode.INTERNAL)
        message = exc.message
    elif isinstance(exc, NotImplementedError):
        code, message = grpc.StatusCode.UNIMPLEMENTED, "this RPC is not implemented yet (see the README's status table)"
    else:
        code, message = grpc.StatusCode.INTERNAL, f"internal error (reference {uuid.uuid4()})"
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=message)
    if isinstance(exc, errors.InvalidArgument):
        detail = any_pb2.Any()
        detail.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                    for v in exc.violations
                ]
            )
        )
        status.details.append(detail)
    elif code is grpc.StatusCode.UNAVAILABLE:
        detail = any_pb2.Any()
        detail.Pack(error_details_pb2.RetryInfo(retry_delay={"seconds": 1}))
        status.details.append(detail)
    return code, status


TRACEPARENT = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")


def _field(request: Any, name: str, limit: int) -> str | None:
    """A request's chat_id or request_id for the access log: the caller's text, cut short, never content."""
    value = getattr(request, name, None)
    return value[:limit] if isinstance(value, str) and value else None


def _trace_id(metadata: Any) -> str | None:
    """The trace id of an incoming W3C traceparent, so a call's log line joins its trace."""
    for key, value in metadata or ():
        if key == "traceparent" and isinstance(value, str) and (match := TRACEPARENT.fullmatch(value)):
            return match.group(1)
    return None


class Outcome:
    """How a call ended: None while it succeeds, else the status its caller gets."""

    def __init__(self) -> None:
        self.status: Any = None

    def abort(self, context: grpc.ServicerContext) -> None:
        if self.status is not None:
            context.abort_with_status(self.status)


def _active(context: Any) -> bool:
    """Whether the caller is still there (a threaded context knows; an asyncio one is done once it left)."""
    is_active = getattr(context, "is_active", None)
    return bool(is_active()) if is_active is not None else not context.done()


class _CountedWrites:
    """An asyncio servicer context whose writes are counted as messages sent."""

    __slots__ = ("_context", "_sent")

    def __init__(self, context: Any, sent: Any) -> None:
        self._context = context
        self._sent = sent

    async def write(self, message: Any) -> None:
        await self._context.write(message)
        self._sent.inc()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


def _grpc_type(handler: Any) -> str:
    if handler.unary_unary:
        return "unary"
    if handler.unary_stream:
        return "server_stream"
    return "client_stream" if handler.stream_unary else "bidi_stream"


class ServiceInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    def __init__(
        self,
        authenticator: identity.Authenticator,
        admission: Admission,
        metrics: Metrics,
        tracer: tracing.Tracing | None = None,
    ) -> None:
        self.authenticator = authenticator
        self.admission = admission
        self.metrics = metrics
        self.tracing = tracer or tracing.Tracing(None)

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        handler = continuation(details)
        if handler is None:
            return None
        method: str = details.method
        service, _, name = method.lstrip("/").partition("/")
        guarded = service == SERVICE
        # What a call of this method needs, decided here once: each context manager entered per
        # call is a generator to run (three of them took a few per cent of a save's loop time).
        traced, transfer = guarded and self.tracing.traces(name), guarded and name in TRANSFERS
        labels = (_grpc_type(handler), service, name)
        metrics = self.metrics
        # The method's series, looked up once rather than on every call (a labels() call
        # hashes the label values under a lock); `handled` has one per status code.
        received, sent = metrics.received.labels(*labels), metrics.sent.labels(*labels)
        opened, handling = metrics.started.labels(*labels), metrics.handling.labels(*labels)
        handled: dict[grpc.StatusCode, Any] = {}

        def counted(messages: Iterator[Any], counter: Any) -> Iterator[Any]:
            for message in messages:
                counter.inc()
                yield message

        @contextmanager
        def call(context: Any, request: Any = None) -> Iterator[Outcome]:
            """The call's identity, admission, metrics, trace and log line around its handler.

            A failure is turned into the status the caller gets, kept in the
            outcome: the wrapper aborts with it (synchronously or awaiting).
            """
            started = time.perf_counter()
            outcome = Outcome()
            opened.inc()
            metadata = context.invocation_metadata()
            with self.tracing.server_span(service, name, metadata) if traced else nullcontext() as span:
                token = None
                who = None
                code = grpc.StatusCode.OK
                failure: Exception | None = None
                deadline_token = deadline.bind(context.time_remaining())

                def fail(exc: Exception) -> None:
                    nonlocal code, failure
                    failure = exc
                    if isinstance(exc, grpc.RpcError) and not _active(context):
                        # A request stream broke because the caller went away (cancelled,
                        # or its connection was lost): no one hears the answer, no bug of ours.
                        code = grpc.StatusCode.CANCELLED
                        status = status_pb2.Status(code=code_pb2.CANCELLED, message="the caller went away")
                    else:
                        code, status = to_status(exc)
                        if code is grpc.StatusCode.INTERNAL:  # a bug of ours, never the caller's mistake
                            log.exception("%s failed: %s", method, status.message)
                    outcome.status = rpc_status.to_status(status)

                admitted = ExitStack()
                try:
                    try:  # refused before the handler runs: the wrapper sees the status and does not run it
                        if guarded:
                            who = self.authenticator.identify(metadata, user_required=name in USER_REQUIRED)
                            token = identity.bind(who)
                            if transfer:
                                admitted.enter_context(self.admission.admit(name))
                    except Exception as exc:
                        fail(exc)
                    with admitted:
                        try:
                            yield outcome
                        except Exception as exc:
                            fail(exc)
                finally:
                    deadline.unbind(deadline_token)
                    if token is not None:
                        identity.unbind(token)
                    elapsed = time.perf_counter() - started
                    counter = handled.get(code)
                    if counter is None:
                        counter = handled[code] = metrics.handled.labels(*labels, code.name)
                    counter.inc()
                    handling.observe(elapsed)
                    tracing.finish(span, code, failure)
                    if log.isEnabledFor(logging.INFO):  # the fields cost a few microseconds a call
                        fields = {
                            "method": method,
                            "code": code.name,
                            "duration_ms": round(elapsed * 1000, 1),
                            "tenant": str(who.tenant_id) if who is not None else None,
                            "chat": _field(request, "chat_id", 64),
                            "request_id": _field(request, "request_id", 128),
                            "peer": context.peer(),
                            "trace_id": tracing.trace_id(span) or _trace_id(metadata),
                        }
                        log.info("%s %s %.1fms", method, code.name, elapsed * 1000, extra=fields)

        if handler.unary_unary and inspect.iscoroutinefunction(handler.unary_unary):
            inner_async = handler.unary_unary

            async def unary_unary_async(request: Any, context: Any) -> Any:
                received.inc()
                with call(context, request) as outcome:
                    response = await inner_async(request, context) if outcome.status is None else None
                if outcome.status is not None:
                    await context.abort(outcome.status.code, outcome.status.details, outcome.status.trailing_metadata)
                sent.inc()
                return response

            return grpc.unary_unary_rpc_method_handler(
                unary_unary_async, handler.request_deserializer, handler.response_serializer
            )
        if handler.unary_unary:
            inner_uu = handler.unary_unary

            def unary_unary(request: Any, context: grpc.ServicerContext) -> Any:
                received.inc()
                with call(context, request) as outcome:
                    response = inner_uu(request, context) if outcome.status is None else None
                outcome.abort(context)
                sent.inc()
                return response

            return grpc.unary_unary_rpc_method_handler(
                unary_unary, handler.request_deserializer, handler.response_serializer
            )
        if handler.unary_stream and inspect.iscoroutinefunction(handler.unary_stream):
            inner_writer = handler.unary_stream

            async def unary_stream_writer(request: Any, context: Any) -> None:
                # A handler that writes its answers (WatchChat): no generator of ours between
                # it and grpc, one less suspension per message on the event loop.
                received.inc()
                with call(context, request) as outcome:
                    if outcome.status is None:
                        await inner_writer(request, _CountedWrites(context, sent))
                if outcome.status is not None:
                    await context.abort(outcome.status.code, outcome.status.details, outcome.status.trailing_metadata)

            return grpc.unary_stream_rpc_method_handler(
                unary_stream_writer, handler.request_deserializer, handler.response_serializer
            )
        if handler.unary_stream:
            inner_us = handler.unary_stream

            def unary_stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                received.inc()
                with call(context, request) as outcome:
                    if outcome.status is None:
                        yield from counted(inner_us(request, context), sent)
                outcome.abort(context)

            return grpc.unary_stream_rpc_method_handler(
                unary_stream, handler.request_deserializer, handler.response_serializer
            )
        if handler.stream_unary:
            inner_su = handler.stream_unary

            def stream_unary(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
                with call(context) as outcome:
                    response = inner_su(counted(requests, received), context) if outcome.status is None else None
                outcome.abort(context)
                sent.inc()
                return response

            return grpc.stream_unary_rpc_method_handler(
                stream_unary, handler.request_deserializer, handler.response_serializer
            )
        inner_ss = handler.stream_stream

        def stream_stream(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
            with call(context) as outcome:
                if outcome.status is None:
                    yield from counted(inner_ss(counted(requests, received), context), sent)
            outcome.abort(context)

        return grpc.stream_stream_rpc_method_handler(
            stream_stream, handler.request_deserializer, handler.response_serializer
        )
