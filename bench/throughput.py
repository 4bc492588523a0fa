"""Write throughput and its CPU, side by side in one run (issue 10's figures).

Eight client threads, each on its own chat, in a process of their own
(bench/load.py), 4 s for each kind of load, five rounds interleaved (each
figure is the median of its rounds). Our server serves from this process, each
baseline server from one of its own (bench/baselines.py), and each is charged
its own process's CPU:
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
  `write_ratio_vs_raw_psycopg`; ours over the floor's,
  `write_ratio_vs_library_floor`, is what our code costs in rate.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.baselines import Baseline
from bench.quiet import quiesce
from server.bootstrap import Runtime
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


def _load(kind: str, target: str, tenant: str, runtime: Runtime, server: Callable[[], float]) -> dict[str, Any]:
    """One load of `kind` at `target`; `server` reads the CPU of the process that serves it."""
    pg_before, server_before = postgres_cpu(runtime), server()
    reply = subprocess.run(
        [sys.executable, "-m", "bench.load", kind, target, str(THREADS), str(SECONDS), tenant],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    pg_after, server_after = postgres_cpu(runtime), server()
    result: dict[str, Any] = json.loads(reply.stdout)
    if not result["calls"]:  # every thread failed on its first call: say so rather than divide by zero
        raise RuntimeError(f"the {kind} load at {target} made no calls: {reply.stderr[-2000:]}")
    result["server_cpu"] = server_after - server_before
    result["pg_cpu"] = None if pg_before is None or pg_after is None else pg_after - pg_before
    return result


def measure(runtime: Runtime, address: str) -> dict[str, Any]:
    quiesced = quiesce(runtime)
    tenant = str(uuid.uuid4())
    # Each baseline server in a process of its own (bench/baselines.py says why).
    echo, bridged = Baseline("echo"), Baseline("bridged_echo")
    floor = Baseline("floor", runtime.database_url, str(loop_pool_size(runtime.settings.db_pool_max)))
    # name: (the load bench/load.py runs, its target, the CPU of the process serving it)
    kinds: dict[str, tuple[str, str, Callable[[], float]]] = {
        "save": ("save", address, server_cpu),
        "edit": ("edit", address, server_cpu),
        "raw": ("raw", runtime.database_url, server_cpu),  # no server: ours stays idle
        "lean": ("lean", runtime.database_url, server_cpu),
        "echo": ("echo", echo.address, lambda: cpu_of(echo.pid)),
        "aio_echo": ("echo", bridged.address, lambda: cpu_of(bridged.pid)),
        "floor": ("save", floor.address, lambda: cpu_of(floor.pid)),
    }
    rounds: list[dict[str, dict[str, Any]]] = []
    try:
        for _ in range(ROUNDS):
            rounds.append(
                {name: _load(kind, target, tenant, runtime, cpu) for name, (kind, target, cpu) in kinds.items()}
            )
    finally:
        for baseline in (echo, bridged, floor):
            baseline.stop()

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
    results["write_ratio_vs_library_floor"] = round(rate["save"] / rate["floor"], 2)
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
