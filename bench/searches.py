"""Search latency over gRPC on a chat of 50,000 message versions."""

from __future__ import annotations

import statistics
import time
import uuid
from typing import Any

from generated.timemachine.v1 import service_pb2 as api
from generated.timemachine.v1 import service_pb2_grpc
from server.bootstrap import Runtime
from tests.bulk import load_bulk_chat

MESSAGES, VERSIONS = 10_000, 5
SAMPLES = 200


def measure(runtime: Runtime, stub: service_pb2_grpc.TimeMachineServiceStub) -> dict[str, Any]:
    tenant, chat = uuid.uuid4(), uuid.uuid4()
    load_bulk_chat(runtime.database_url, tenant, chat, MESSAGES, VERSIONS)
    md = (("x-tenant-id", str(tenant)),)

    def run(query: str, history: bool, chat_id: str = str(chat)) -> float:
        request = api.SearchRequest(chat_id=chat_id, query=query, include_history=history, page_size=20)
        start = time.perf_counter()
        reply = stub.Search(request, metadata=md)
        elapsed = (time.perf_counter() - start) * 1000
        assert reply.message_hits or query == "nothingmatches"
        return elapsed

    # Typical queries: one or two words that match a few dozen versions.
    queries = [f"w{(i * 37) % 5000}" for i in range(SAMPLES)]
    for q in queries[:20]:
        run(q, True)
    selective = [run(q, i % 2 == 0) for i, q in enumerate(queries)]
    tenant_wide = [run(q, True, chat_id="") for q in queries[:50]]
    # The worst case: a word in every one of the 50,000 versions, ranked in full.
    everywhere = [run("common", True) for _ in range(10)]
    return {
        "search_versions_in_chat": MESSAGES * VERSIONS,
        "search_p50_ms": round(statistics.median(selective), 2),
        "search_tenant_wide_p50_ms": round(statistics.median(tenant_wide), 2),
        "search_word_in_every_version_p50_ms": round(statistics.median(everywhere), 2),
    }
