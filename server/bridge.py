"""The service's blocking handlers served by the asyncio gRPC server.

Handlers are blocking code (psycopg, boto3, hashing), so they run in a thread
pool as under the threaded server. What the asyncio server changes is that a
call written with async (WatchChat and the chat actions: SaveMessage, EditMessage, DeleteMessage,
RenameChat, CreateSnapshot) holds no thread at all while it waits.

grpc.aio can run plain handlers itself, but the context it gives them has no
is_active(), abort_with_status() or cancel(), which the service relies on
(transfers stop when their caller leaves; the interceptor answers with rich
statuses). So each blocking handler is wrapped here in an async one that
hands it a complete synchronous context. A streaming handler's generator runs
in one thread from its first item to its last, because the identity and the
deadline it reads are context variables of that thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Executor, Future
from typing import Any

import grpc

_DONE = object()
HANDOFF_POLL_SECONDS = 0.5  # how soon a blocked producer notices that its caller left


class SyncContext:
    """The threaded server's ServicerContext over an asyncio one, for a handler running in a pool thread."""

    def __init__(self, context: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._context = context
        self._loop = loop
        self._ended = threading.Event()
        self._callbacks: list[Callable[[], None]] = []
        # cancel()'s abort: the call's one (grpc.aio allows one), which the handler then ends with.
        self._aborting: Future[None] | None = None
        self._lock = threading.RLock()

    def end(self) -> None:
        """The call finished or its caller left: is_active() turns false and callbacks run."""
        if not self._ended.is_set():
            self._ended.set()
            for callback in self._callbacks:
                with contextlib.suppress(Exception):
                    callback()

    def is_active(self) -> bool:
        return not self._ended.is_set() and not self._context.done()

    def add_callback(self, callback: Callable[[], None]) -> bool:
        self._callbacks.append(callback)
        return True

    def cancel(self) -> None:
        """End the call with CANCELLED (the idle guard's way to drop a stalled transfer).

        The handler, still running, sees is_active() turn false first, so what
        it was waiting for failing under it reads as its caller gone (CallerGone).
        """
        with self._lock:
            self.end()
            abort = self._context.abort(grpc.StatusCode.CANCELLED, "cancelled")
            self._aborting = asyncio.run_coroutine_threadsafe(abort, self._loop)

    def _end_as_cancelled(self) -> None:
        """After cancel(), the handler's own abort ends it with cancel()'s: its error is the one grpc.aio
        expects the handler to raise, where a second abort would fail ("Abort already called!")."""
        with self._lock:
            aborting = self._aborting
        if aborting is not None:
            aborting.result()  # raises the abort's error
            raise CallerGone()  # the call had ended before the abort

    def abort(self, code: grpc.StatusCode, details: str = "") -> None:
        self._end_as_cancelled()
        asyncio.run_coroutine_threadsafe(self._context.abort(code, details), self._loop).result()

    def abort_with_status(self, status: Any) -> None:
        self._end_as_cancelled()
        coroutine = self._context.abort(status.code, status.details, tuple(status.trailing_metadata or ()))
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def invocation_metadata(self) -> Any:
        return self._context.invocation_metadata()

    def peer(self) -> str:
        peer: str = self._context.peer()
        return peer

    def peer_identities(self) -> Any:
        return self._context.peer_identities()

    def auth_context(self) -> Any:
        return self._context.auth_context()

    def time_remaining(self) -> float | None:
        remaining: float | None = self._context.time_remaining()
        return remaining

    def set_trailing_metadata(self, metadata: Any) -> None:
        self._context.set_trailing_metadata(metadata)

    def set_code(self, code: grpc.StatusCode) -> None:
        self._context.set_code(code)

    def set_details(self, details: str) -> None:
        self._context.set_details(details)


class CallerGone(grpc.RpcError):  # type: ignore[misc]
    """The request stream ended because its caller left (the threaded server raised an RpcError too)."""


def _requests(messages: AsyncIterator[Any], loop: asyncio.AbstractEventLoop, sync: SyncContext) -> Iterator[Any]:
    """A request stream read by a blocking handler: each message fetched on the event loop.

    The wait gives up once the caller is gone: a thread must never wait for a
    message that will not come.
    """

    async def following() -> Any:
        return await anext(messages, _DONE)

    while True:
        pending = asyncio.run_coroutine_threadsafe(following(), loop)
        while True:
            try:
                message = pending.result(timeout=HANDOFF_POLL_SECONDS)
                break
            except TimeoutError:
                if not sync.is_active():
                    pending.cancel()
                    raise CallerGone() from None
            except Exception:
                # The call was ended under the wait (the idle guard's cancel aborts it, and the read
                # fails with grpc.aio's AbortError): its caller is gone, no failure of ours.
                if not sync.is_active():
                    raise CallerGone() from None
                raise
        if message is _DONE:
            return
        yield message


async def _responses(
    produce: Callable[[], Iterator[Any]], sync: SyncContext, pool: Executor, loop: asyncio.AbstractEventLoop
) -> AsyncIterator[Any]:
    """A blocking handler's responses, produced in one pool thread and handed over one at a time."""
    handoff: asyncio.Queue[tuple[Any, BaseException | None]] = asyncio.Queue(maxsize=1)

    def offer(item: Any, error: BaseException | None = None) -> bool:
        put = asyncio.run_coroutine_threadsafe(handoff.put((item, error)), loop)
        while True:
            try:
                put.result(timeout=HANDOFF_POLL_SECONDS)
                return True
            except TimeoutError:
                if not sync.is_active():  # nobody takes it any more
                    put.cancel()
                    return False

    def run() -> None:
        try:
            with contextlib.closing(produce()) as generator:  # type: ignore[type-var]
                for item in generator:
                    if not offer(item):
                        return
            offer(_DONE)
        except BaseException as exc:  # handed to the event loop, raised there
            offer(None, exc)

    loop.run_in_executor(pool, run)  # run() hands every outcome over, so its future needs no watching
    try:
        while True:
            item, error = await handoff.get()
            if error is not None:
                raise error
            if item is _DONE:
                break
            yield item
    finally:
        sync.end()  # the producer sees it within HANDOFF_POLL_SECONDS and closes the generator


def bridge(handler: grpc.RpcMethodHandler | None, pool: Executor) -> grpc.RpcMethodHandler | None:
    """`handler` with each blocking behaviour run in `pool` under a SyncContext; async ones pass through."""
    if handler is None:
        return None
    options = {"request_deserializer": handler.request_deserializer, "response_serializer": handler.response_serializer}
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(_unary(handler.unary_unary, pool, False), **options)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(_unary(handler.stream_unary, pool, True), **options)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(_stream(handler.unary_stream, pool, False), **options)
    return grpc.stream_stream_rpc_method_handler(_stream(handler.stream_stream, pool, True), **options)


def _is_async(behaviour: Any) -> bool:
    return inspect.iscoroutinefunction(behaviour) or inspect.isasyncgenfunction(behaviour)


def _unary(behaviour: Any, pool: Executor, streaming_requests: bool) -> Any:
    if _is_async(behaviour):
        return behaviour

    async def unary(request: Any, context: Any) -> Any:
        loop = asyncio.get_running_loop()
        sync = SyncContext(context, loop)
        given = _requests(request, loop, sync) if streaming_requests else request
        try:
            return await loop.run_in_executor(pool, behaviour, given, sync)
        finally:
            sync.end()

    return unary


def _stream(behaviour: Any, pool: Executor, streaming_requests: bool) -> Any:
    if _is_async(behaviour):
        return behaviour

    async def stream(request: Any, context: Any) -> AsyncIterator[Any]:
        loop = asyncio.get_running_loop()
        sync = SyncContext(context, loop)
        given = _requests(request, loop, sync) if streaming_requests else request
        async for item in _responses(lambda: behaviour(given, sync), sync, pool, loop):
            yield item

    return stream
