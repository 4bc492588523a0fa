"""Live following at scale: thousands of open watches on one replica (issue 15's figures).

100 chats x 20 watchers, held by a client process of their own
(bench/watch_load.py) over 20 connections, so this process's RSS is the
server's. Then 200 writes/s spread over the chats for WRITE_SECONDS, from a
third process (its threads would otherwise take this one's GIL); ROUNDS rounds
of saves without and with the watches open, interleaved, medians reported:
- `watchers_per_replica`: watches open at once (goal at least 2,000);
- `watch_event_p99_ms`: commit (the snapshot's time) to arrival, at every
  watcher, 99th percentile (goal at most 250);
- `save_p50_ratio_with_watchers`: SaveMessage p50 while they are open over
  its p50 before they opened, same load (goal at most 1.5);
- `server_rss_kib_per_watcher`: this process's RSS growth per open watch
  (goal at most 50);
- recorded: `server_objects_per_watcher`, the objects the garbage collector
  tracks per open watch, and `server_full_gc_ms_with_watchers`, a full
  collection's CPU while they are open (it pauses every call on the
  replica; start-up's objects are frozen out of it, server/app.py).
"""

from __future__ import annotations

import gc
import json
import statistics
import subprocess
import sys
import threading
import time
import uuid
from concurrent import futures
from pathlib import Path
from typing import Any

from bench.quiet import quiesce
from bench.throughput import cpu_of, postgres_cpu, server_cpu
from generated.timemachine.v1 import resources_pb2 as pb
from generated.timemachine.v1 import service_pb2 as api
from generated.timemachine.v1 import service_pb2_grpc
from server.bootstrap import Runtime

CHATS = 100
PER_CHAT = 20
CONNECTIONS = 20
WRITES_PER_SECOND = 200
WRITE_SECONDS = 10
ROUNDS = 3


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _paced_saves(stub: service_pb2_grpc.TimeMachineServiceStub, md: Any, chats: list[str]) -> list[float]:
    """WRITES_PER_SECOND saves for WRITE_SECONDS over the chats; the latency of each."""
    latencies: list[float] = []
    lock = threading.Lock()
    count = WRITES_PER_SECOND * WRITE_SECONDS
    start = time.monotonic()

    def save(i: int) -> None:
        delay = start + i / WRITES_PER_SECOND - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        began = time.perf_counter()
        request = api.SaveMessageRequest(chat_id=chats[i % len(chats)], role=pb.MESSAGE_ROLE_USER, content=f"m{i}")
        stub.SaveMessage(request, metadata=md)
        with lock:
            latencies.append(time.perf_counter() - began)

    with futures.ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(save, range(count)))
    return latencies


def _saves_elsewhere(port: int, md: Any, chats: list[str]) -> list[float]:
    """_paced_saves from a process of its own: in this one, its threads would take the GIL from the server."""
    script = (
        "import json, sys, grpc\n"
        "from bench.watchers import _paced_saves\n"
        "from generated.timemachine.v1 import service_pb2_grpc\n"
        "port, md, chats = json.loads(sys.argv[1])\n"
        "stub = service_pb2_grpc.TimeMachineServiceStub(grpc.insecure_channel(f'127.0.0.1:{port}'))\n"
        "print(json.dumps(_paced_saves(stub, tuple(map(tuple, md)), chats)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps([port, md, chats])], capture_output=True, text=True, check=True
    )
    latencies: list[float] = json.loads(done.stdout)
    return latencies


def _open_watchers(port: int, tenant: str, heads: dict[str, int]) -> tuple[subprocess.Popen[str], int]:
    """The watch client process, once every watch it holds has heard its chat's head."""
    client = subprocess.Popen(
        [sys.executable, "-m", "bench.watch_load", f"127.0.0.1:{port}", tenant, json.dumps(heads), str(PER_CHAT),
         str(CONNECTIONS)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert client.stdout is not None
    ready = client.stdout.readline().split()
    assert ready and ready[0] == "READY", ready
    return client, int(ready[1])


def _close_watchers(client: subprocess.Popen[str]) -> dict[str, Any]:
    assert client.stdout is not None and client.stdin is not None
    try:
        client.stdin.close()
        report: dict[str, Any] = json.loads(client.stdout.readline())
    finally:
        client.wait(timeout=60)
    return report


def _heads(stub: service_pb2_grpc.TimeMachineServiceStub, md: Any, chats: list[str]) -> dict[str, int]:
    return {chat: stub.GetChat(api.GetChatRequest(chat_id=chat, page_size=1), metadata=md).snapshot.version
            for chat in chats}  # fmt: skip


def measure(port: int, stub: service_pb2_grpc.TimeMachineServiceStub, runtime: Runtime) -> dict[str, Any]:
    quiesced = quiesce(runtime)
    tenant = str(uuid.uuid4())
    md = (("x-tenant-id", tenant), ("x-user-id", str(uuid.uuid4())))
    chats = [str(uuid.uuid4()) for _ in range(CHATS)]
    for chat in chats:
        stub.SaveMessage(api.SaveMessageRequest(chat_id=chat, role=pb.MESSAGE_ROLE_USER, content="first"), metadata=md)
    p50s: dict[str, list[float]] = {"without": [], "with": []}
    cpu: dict[str, list[dict[str, float]]] = {"without": [], "with": []}
    reports: list[dict[str, Any]] = []
    rss_per_watcher: list[float] = []
    objects_per_watcher: list[float] = []
    full_gc_ms: list[float] = []
    for _ in range(ROUNDS):  # interleaved: single runs of this figure moved between 1.1 and 20
        server, pg = server_cpu(), postgres_cpu(runtime) or 0.0
        p50s["without"].append(statistics.median(_saves_elsewhere(port, md, chats)))
        cpu["without"].append({"server": server_cpu() - server, "postgres": (postgres_cpu(runtime) or 0.0) - pg})
        before = _rss_kib()
        gc.collect()  # the objects this process tracks, garbage gone (the server runs in this process)
        objects = len(gc.get_objects())
        client, opened = _open_watchers(port, tenant, _heads(stub, md, chats))
        try:
            time.sleep(1)  # let allocations settle
            rss_per_watcher.append((_rss_kib() - before) / opened)
            server, pg, watch = server_cpu(), postgres_cpu(runtime) or 0.0, cpu_of(client.pid)
            p50s["with"].append(statistics.median(_saves_elsewhere(port, md, chats)))
            cpu["with"].append({"server": server_cpu() - server, "postgres": (postgres_cpu(runtime) or 0.0) - pg,
                                "watch_client": cpu_of(client.pid) - watch})  # fmt: skip
            time.sleep(1)  # the last deliveries
            began = time.thread_time()  # after the saves were timed: the collection pauses them all
            gc.collect()
            full_gc_ms.append((time.thread_time() - began) * 1000)
            objects_per_watcher.append((len(gc.get_objects()) - objects) / opened)
        finally:
            reports.append(_close_watchers(client))
    p50_without, p50_with = statistics.median(p50s["without"]), statistics.median(p50s["with"])
    ms = [round(x * 1000, 2) for x in p50s["with"]]

    def cpu_seconds(phase: str, process: str) -> float:
        return round(statistics.median(c[process] for c in cpu[phase]), 2)

    return {
        "watchers_per_replica": opened,
        "watch_quiesce_seconds": quiesced,
        "watch_deliveries": statistics.median(r["deliveries"] for r in reports),
        "watch_event_p50_ms": statistics.median(r["p50_ms"] for r in reports),
        "watch_event_p99_ms": statistics.median(r["p99_ms"] for r in reports),
        "save_p50_ms_without_watchers": round(p50_without * 1000, 2),
        "save_p50_ms_with_watchers": round(p50_with * 1000, 2),
        "save_p50_ms_with_watchers_rounds": ms,
        "save_p50_ratio_with_watchers": round(p50_with / p50_without, 2),
        "server_rss_kib_per_watcher": round(statistics.median(rss_per_watcher), 1),
        "server_objects_per_watcher": round(statistics.median(objects_per_watcher), 1),
        "server_full_gc_ms_with_watchers": round(statistics.median(full_gc_ms), 1),
        "watch_cpu_seconds": {
            phase: {p: cpu_seconds(phase, p) for p in cpu[phase][0]} for phase in ("without", "with")
        },
    }
