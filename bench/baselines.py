"""The throughput section's baseline servers, each in a process of its own.

Served from the bench's own process beside our server, they were not idle
bystanders: with a second grpc.aio server on an event loop of its own in the
process (the floor, the bridged echo) and the threaded echo, our server's
CPU per save went from 0.79-0.96 ms to 1.04-1.23 ms and its rate from
870-1,070 to 710-840 saves a second (alternating runs, 2026-12-06). In
production each server has a process of its own; here each baseline does
too, and each is charged its own process's CPU.

    python -m bench.baselines KIND [DATABASE_URL CONNECTIONS]

KIND: `echo` (a trivial unary call served by threaded grpcio), `bridged_echo`
(the same served as our server serves a call: grpc.aio on an event loop
thread, the handler run in a pool thread through server/bridge.py), `floor`
(bench/floor.py's SaveMessage, which needs the database). The process prints
the address it serves on, one line, then serves until its standard input
closes.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from concurrent import futures
from pathlib import Path
from typing import IO, Any

import grpc

from bench.floor import FloorServer
from bench.load import ECHO
from server.bridge import bridge


def _echo_service(echo: grpc.RpcMethodHandler) -> grpc.GenericRpcHandler:
    assert ECHO == "/bench.Echo/Echo"
    return grpc.method_handlers_generic_handler("bench.Echo", {"Echo": echo})


_ECHO = grpc.unary_unary_rpc_method_handler(lambda request, context: request)


class _Echo:
    """The trivial call served by grpcio's threaded server: issue 10's `server_cpu_per_write_over_echo`."""

    def __init__(self) -> None:
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
        self.server.add_generic_rpc_handlers((_echo_service(_ECHO),))
        self.address = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"
        self.server.start()

    def stop(self) -> None:
        self.server.stop(grace=1)


class _BridgedEcho:
    """The echo served as our server serves every unary call: grpc.aio on an event loop thread, the
    handler run in a pool thread through server/bridge.py. Its CPU per call over the threaded echo's
    is what the architecture costs before any of our code runs."""

    def __init__(self) -> None:
        self.pool = futures.ThreadPoolExecutor(max_workers=32)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="bench-echo-loop", daemon=True)
        self.thread.start()
        self.server, port = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result()
        self.address = f"127.0.0.1:{port}"

    async def _start(self) -> tuple[Any, int]:
        server = grpc.aio.server(migration_thread_pool=self.pool)
        server.add_generic_rpc_handlers((_echo_service(bridge(_ECHO, self.pool)),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return server, port

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(1), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.pool.shutdown()


class Baseline:
    """A baseline server in a child process: its address, and its pid to charge it its CPU."""

    def __init__(self, kind: str, *args: str) -> None:
        self.kind = kind
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.baselines", kind, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        assert self.process.stdout is not None
        self.address = self.process.stdout.readline().strip()
        if not self.address:
            self.process.wait(timeout=10)
            raise RuntimeError(f"the {kind} baseline ended before serving (exit {self.process.returncode})")

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        stdin: IO[str] | None = self.process.stdin
        if stdin is not None:
            stdin.close()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def main(argv: list[str]) -> None:
    kind, args = argv[0], argv[1:]
    server: _Echo | _BridgedEcho | FloorServer
    if kind == "echo":
        server = _Echo()
    elif kind == "bridged_echo":
        server = _BridgedEcho()
    elif kind == "floor":
        database_url, connections = args
        server = FloorServer(database_url, int(connections))
    else:
        raise SystemExit(f"unknown baseline {kind!r}: echo, bridged_echo or floor")
    print(server.address, flush=True)
    try:
        sys.stdin.read()  # until the bench closes our standard input (or ends)
    finally:
        server.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
