"""Write throughput and its CPU, side by side in one run (issue 10's figures).

Eight client threads, each on its own chat, in a process of their own
(bench/load.py), 4 s for each kind of load, five rounds interleaved (each
figure is the median of its rounds):
- SaveMessage over gRPC, against the same SQL issued raw with psycopg as
  the service role: `write_ratio_vs_raw_psycopg` (what the service adds);
  EditMessage beside it, each thread editing one message of its chat
  (`edit_message_per_s`, `server_cpu_ms_per_edit`, `pg_cpu_ms_per_edit`);
- PostgreSQL's CPU per SaveMessage (its processes' CPU from /proc) over its
  CPU per lean versioned write: `pg_cpu_per_write_over_lean` (what our rows
  cost the database);
- this process's CPU per SaveMessage over its CPU per call of a trivial
  unary echo served by grpcio: `server_cpu_per_write_over_echo`; and over
  the same echo served as our server serves a call (grpc.aio, the handler
  bridged to a pool thread): `server_cpu_per_write_over_bridged_echo`, what
  our code adds beyond the architecture;
- the same over SaveMessage served with nothing but the libraries we build
  on (bench/floor.py: grpc.aio and psycopg's asyncio pipeline, the same
  statement): `server_cpu_per_write_over_library_floor`, what our own code
  adds; and that floor's CPU over the echo's,
  `library_floor_cpu_per_write_over_echo`, the lowest
  `server_cpu_per_write_over_echo` these libraries allow. Its rate over the
  raw one, `library_floor_write_ratio_vs_raw_psycopg`, is the same bound for
  `write_ratio_vs_raw_psycopg`.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc

from bench.floor import FloorServer
from bench.load import ECHO
from bench.quiet import quiesce
from server.bootstrap import Runtime
from server.bridge import bridge
from service.async_database import loop_pool_size

THREADS = 8
SECONDS = float(os.environ.get("TM_BENCH_THROUGHPUT_SECONDS", "4"))
ROUNDS = 5  # interleaved; each figure is the median of its rounds (single runs moved by ±30 %)
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_of(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0  # the process ended
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def postgres_cpu(runtime: Runtime) -> float | None:
    """CPU seconds of the embedded PostgreSQL's processes so far (None: not ours to measure)."""
    if runtime.postgres is None:
        return None
    postmaster = int((runtime.postgres.pgdata / "postmaster.pid").read_text().split()[0])
    children = Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split()
    # Ended backends' CPU moves to the postmaster's cutime/cstime: count those too.
    fields = Path(f"/proc/{postmaster}/stat").read_text().rsplit(")", 1)[1].split()
    reaped = (int(fields[13]) + int(fields[14])) / TICKS
    return cpu_of(postmaster) + reaped + sum(cpu_of(int(child)) for child in children)


def server_cpu() -> float:
    times = os.times()
    return times.user + times.system


def _load(kind: str, target: str, tenant: str, runtime: Runtime) -> dict[str, Any]:
    pg_before, server_before = postgres_cpu(runtime), server_cpu()
    reply = subprocess.run(
        [sys.executable, "-m", "bench.load", kind, target, str(THREADS), str(SECONDS), tenant],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    pg_after, server_after = postgres_cpu(runtime), server_cpu()
    result: dict[str, Any] = json.loads(reply.stdout)
    if not result["calls"]:  # every thread failed on its first call: say so rather than divide by zero
        raise RuntimeError(f"the {kind} load at {target} made no calls: {reply.stderr[-2000:]}")
    result["server_cpu"] = server_after - server_before
    result["pg_cpu"] = None if pg_before is None or pg_after is None else pg_after - pg_before
    return result


def _echo_service(echo: grpc.RpcMethodHandler) -> grpc.GenericRpcHandler:
    assert ECHO == "/bench.Echo/Echo"
    return grpc.method_handlers_generic_handler("bench.Echo", {"Echo": echo})


_ECHO = grpc.unary_unary_rpc_method_handler(lambda request, context: request)


def _echo_server() -> tuple[grpc.Server, str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
    server.add_generic_rpc_handlers((_echo_service(_ECHO),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


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


def measure(runtime: Runtime, address: str) -> dict[str, Any]:
    quiesced = quiesce(runtime)
    tenant = str(uuid.uuid4())
    echo_server, echo_address = _echo_server()
    bridged = _BridgedEcho()
    floor = FloorServer(runtime.database_url, loop_pool_size(runtime.settings.db_pool_max))
    # name: (the load bench/load.py runs, its target)
    kinds = {
        "save": ("save", address),
        "edit": ("edit", address),
        "raw": ("raw", runtime.database_url),
        "lean": ("lean", runtime.database_url),
        "echo": ("echo", echo_address),
        "aio_echo": ("echo", bridged.address),
        "floor": ("save", floor.address),
    }
    rounds: list[dict[str, dict[str, Any]]] = []
    try:
        for _ in range(ROUNDS):
            rounds.append({name: _load(kind, target, tenant, runtime) for name, (kind, target) in kinds.items()})
    finally:
        echo_server.stop(grace=1)
        bridged.stop()
        floor.stop()

    def median(figure: Callable[[dict[str, Any]], float], kind: str) -> float:
        return statistics.median(figure(run[kind]) for run in rounds)

    rate = {kind: median(lambda r: r["calls"] / r["seconds"], kind) for kind in kinds}
    results: dict[str, Any] = {
        "throughput_threads": THREADS,
        "throughput_quiesce_seconds": quiesced,
        "save_message_per_s": round(rate["save"]),
        "raw_psycopg_writes_per_s": round(rate["raw"]),
        "lean_writes_per_s": round(rate["lean"]),
        "write_ratio_vs_raw_psycopg": round(rate["save"] / rate["raw"], 2),
    }
    per_call = {kind: median(lambda r: r["server_cpu"] / r["calls"], kind) for kind in kinds}
    results["server_cpu_ms_per_save"] = round(per_call["save"] * 1000, 3)
    # EditMessage, recorded beside (no goal): one round trip too since 2026-12-06.
    results["edit_message_per_s"] = round(rate["edit"])
    results["server_cpu_ms_per_edit"] = round(per_call["edit"] * 1000, 3)
    results["server_cpu_ms_per_echo"] = round(per_call["echo"] * 1000, 3)
    results["server_cpu_per_write_over_echo"] = round(per_call["save"] / per_call["echo"], 2)
    # The same figure against an echo served the way our server serves (see _BridgedEcho).
    results["server_cpu_ms_per_bridged_echo"] = round(per_call["aio_echo"] * 1000, 3)
    results["server_cpu_per_write_over_bridged_echo"] = round(per_call["save"] / per_call["aio_echo"], 2)
    # Both against what grpc.aio and psycopg cost for the same write with none of our code (bench/floor.py).
    results["library_floor_writes_per_s"] = round(rate["floor"])
    results["library_floor_write_ratio_vs_raw_psycopg"] = round(rate["floor"] / rate["raw"], 2)
    results["server_cpu_ms_per_library_floor_write"] = round(per_call["floor"] * 1000, 3)
    results["library_floor_cpu_per_write_over_echo"] = round(per_call["floor"] / per_call["echo"], 2)
    results["server_cpu_per_write_over_library_floor"] = round(per_call["save"] / per_call["floor"], 2)
    if rounds[0]["save"]["pg_cpu"] is not None:
        pg = {kind: median(lambda r: r["pg_cpu"] / r["calls"], kind) for kind in ("save", "edit", "raw", "lean")}
        results["pg_cpu_ms_per_edit"] = round(pg["edit"] * 1000, 3)
        results["pg_cpu_ms_per_save"] = round(pg["save"] * 1000, 3)
        results["pg_cpu_ms_per_raw_write"] = round(pg["raw"] * 1000, 3)
        results["pg_cpu_ms_per_lean_write"] = round(pg["lean"] * 1000, 3)
        results["pg_cpu_per_write_over_lean"] = round(pg["save"] / pg["lean"], 2)
    return results
