"""SaveMessage latency as a chat grows, and the seed's per-snapshot algorithm against ours."""

from __future__ import annotations

import hashlib
import os
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from generated.timemachine.v1 import resources_pb2 as pb
from generated.timemachine.v1 import service_pb2 as api
from generated.timemachine.v1 import service_pb2_grpc
from server.bootstrap import Runtime
from service import queries
from service.history import History
from service.models import Identity, Role
from service.writes import WriteOptions

SEED_SQL = queries.parse((Path(__file__).parent / "seed_algorithm.sql").read_text())
SMALL, LARGE = 100, 10_000
WRITE_SAMPLES = int(os.environ.get("TM_BENCH_WRITE_SAMPLES", "300"))
SNAPSHOT_SAMPLES = int(os.environ.get("TM_BENCH_SNAPSHOT_SAMPLES", "60"))
CONTENT = "The quick brown fox jumps over the lazy dog. " * 6  # ~270 bytes, a typical chat turn


def p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def fill(history: History, who: Identity, chat: str, count: int) -> None:
    for i in range(count):
        role = Role.USER if i % 2 == 0 else Role.ASSISTANT
        new = history.new_message(
            chat_id=chat,
            message_id="",
            role=role,
            content=f"{i}: {CONTENT}",
            model_id="" if role is Role.USER else "bench-model",
            metadata={},
            tokens=60,
            options=WriteOptions(),
        )
        history.save_message(who, new)


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def seed_create_snapshot(runtime: Runtime, who: Identity, chat: str) -> None:
    """What the seed does per snapshot: recount and rehash the whole chat."""
    assert runtime.stores is not None
    params = {"tenant_id": who.tenant_id, "chat_id": uuid.UUID(chat)}
    with runtime.stores.db.transaction(who.tenant_id) as tx, tx.conn.cursor() as cur:
        cur.execute(SEED_SQL["seed_previous_snapshot"], params)
        cur.fetchone()
        cur.execute(SEED_SQL["seed_counts"], params)
        cur.fetchone()
        cur.execute(SEED_SQL["seed_checksum_rows"], params)
        digest = hashlib.sha256()
        for message_id, content, role, version in cur:
            digest.update(f"{message_id}:{content}:{role}:{version}|".encode())
        digest.hexdigest()


def measure(runtime: Runtime, stub: service_pb2_grpc.TimeMachineServiceStub) -> dict[str, Any]:
    assert runtime.stores is not None
    results: dict[str, Any] = {}
    who = Identity(uuid.uuid4(), uuid.uuid4())
    md = (("x-tenant-id", str(who.tenant_id)), ("x-user-id", str(who.user_id)))
    history = History(runtime.stores.db, runtime.settings.max_message_bytes)
    small, large = str(uuid.uuid4()), str(uuid.uuid4())
    started = time.perf_counter()
    fill(history, who, small, SMALL)
    fill(history, who, large, LARGE)
    results["setup_seconds"] = round(time.perf_counter() - started, 1)

    # 1. SaveMessage over gRPC, 100-message chat vs 10,000-message chat, interleaved.
    def save(chat: str) -> Callable[[], Any]:
        request = api.SaveMessageRequest(chat_id=chat, role=pb.MESSAGE_ROLE_USER, content=CONTENT, tokens=60)
        return lambda: stub.SaveMessage(request, metadata=md)

    for _ in range(20):  # warm up both paths
        save(small)()
        save(large)()
    at_small, at_large = [], []
    for _ in range(WRITE_SAMPLES):
        at_small.append(timed(save(small)))
        at_large.append(timed(save(large)))
    results["save_message_p50_ms_at_100"] = round(statistics.median(at_small), 3)
    results["save_message_p50_ms_at_10k"] = round(statistics.median(at_large), 3)
    results["save_message_p95_ms_at_10k"] = round(p(at_large, 0.95), 3)
    results["write_latency_growth_10k_over_100"] = round(statistics.median(at_large) / statistics.median(at_small), 3)

    # 2. One snapshot of the 10,000-message chat: the seed's algorithm vs ours.
    def ours() -> None:
        history.mark_chat(who, history.new_manual_snapshot(chat_id=large, description="bench", options=WriteOptions()))

    seed_ms, ours_ms = [], []
    for _ in range(SNAPSHOT_SAMPLES):
        seed_ms.append(timed(lambda: seed_create_snapshot(runtime, who, large)))
        ours_ms.append(timed(ours))
    results["seed_snapshot_p50_ms_at_10k"] = round(statistics.median(seed_ms), 3)
    results["our_snapshot_p50_ms_at_10k"] = round(statistics.median(ours_ms), 3)
    results["seed_algorithm_over_ours_at_10k"] = round(statistics.median(seed_ms) / statistics.median(ours_ms), 2)
    return results
