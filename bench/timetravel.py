"""Time travel at size: reads, compares and restores of large chats read right after they were written.

The database first holds thousands of small chats and is analyzed; then the
large chats are written into a new tenant and read at once, so the planner
knows nothing of them. Each figure is a median over interleaved samples, and
each has a ratio over the raw SQL that reads or writes the same rows, run
side by side through psycopg (rows as tuples, no gRPC, no objects).
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg

from generated.timemachine.v1 import resources_pb2 as pb
from generated.timemachine.v1 import service_pb2 as api
from generated.timemachine.v1 import service_pb2_grpc
from server.bootstrap import Runtime
from service.database import APP_ROLE
from service.queries import query
from tests.bulk import analyze, load_bulk_chat, load_small_chats

LARGE, LARGE_VERSIONS = 10_000, 3
RESTORED, RESTORED_VERSIONS = 1_000, 3
SAMPLES = 7

# The minimal SQL that writes the rows a FULL_CHAT restore writes: one new
# version per message, copied from the target state, its search document, and
# the message's head pointing at it (no snapshot, checksum or audit row).
RAW_RESTORE = """
WITH target AS (  -- each message's version at N, or a tombstone for one born after N
    SELECT v.*, v.first_cv > %(version)s AS born_after FROM (
        SELECT v.*, lead(v.chat_version) OVER w AS next_cv, first_value(v.chat_version) OVER w AS first_cv
        FROM tm_message_versions v
        WHERE v.tenant_id = %(tenant_id)s AND v.chat_id = %(chat_id)s
        WINDOW w AS (PARTITION BY v.position ORDER BY v.version)
    ) v WHERE (v.chat_version <= %(version)s AND (v.next_cv IS NULL OR v.next_cv > %(version)s))
           OR (v.first_cv > %(version)s AND v.next_cv IS NULL)
), version AS (
    INSERT INTO tm_message_versions (id, tenant_id, chat_id, message_id, snapshot_id, chat_version, version,
                                     position, role, content, is_deleted, created_at, original_created_at)
    SELECT gen_random_uuid(), tenant_id, chat_id, message_id, snapshot_id, chat_version, version + 100000,
           position, role, CASE WHEN born_after THEN '' ELSE content END, is_deleted OR born_after, now(),
           original_created_at
    FROM target
    RETURNING id, tenant_id, chat_id, message_id, position, version, content, is_deleted
), document AS (
    INSERT INTO tm_search_documents (tenant_id, chat_id, kind, ref_id, document)
    SELECT tenant_id, chat_id, 'message', id, tm_message_document(content) FROM version WHERE NOT is_deleted
)
INSERT INTO tm_messages (tenant_id, chat_id, message_id, position, current_version_id, version, is_deleted,
                         tokens, element_hash, original_created_at)
SELECT tenant_id, chat_id, message_id, position, id, version, is_deleted, 0, '', now() FROM version
ON CONFLICT (tenant_id, chat_id, message_id) DO UPDATE
SET current_version_id = excluded.current_version_id, version = excluded.version, is_deleted = excluded.is_deleted
"""


def _median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 1)


def _count_pages(page: Callable[[str], Any], field: str) -> int:
    """Items in `field` over every page: a 10,000-message chat passes one answer's 3 MiB budget."""
    token, count = "", 0
    while True:
        answer = page(token)
        count, token = count + len(getattr(answer, field)), answer.next_page_token
        if not token:
            return count


def _timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def measure(runtime: Runtime, stub: service_pb2_grpc.TimeMachineServiceStub) -> dict[str, Any]:
    url = runtime.database_url
    background = uuid.uuid4()
    load_small_chats(url, background, chats=3000, messages=10, seed=background.hex)
    analyze(url)
    tenant, large, restored = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    load_bulk_chat(url, tenant, large, LARGE, LARGE_VERSIONS, analyzed=False)
    load_bulk_chat(url, tenant, restored, RESTORED, RESTORED_VERSIONS, analyzed=False)
    md = (("x-tenant-id", str(tenant)), ("x-user-id", str(uuid.uuid4())))
    head = LARGE * LARGE_VERSIONS
    middle = head - LARGE // 2  # half the messages at their last version, half one before

    def snapshot_id(chat: uuid.UUID, version: int) -> str:
        request = api.GetChatAtSnapshotRequest(chat_id=str(chat), version=version, page_size=1)
        snapshot_id: str = stub.GetChatAtSnapshot(request, metadata=md).snapshot.id
        return snapshot_id

    first, last = snapshot_id(large, 1), snapshot_id(large, head)
    tenth, restored_head = snapshot_id(restored, 10), snapshot_id(restored, RESTORED * RESTORED_VERSIONS)

    def get_chat() -> None:
        def page(token: str) -> Any:
            return stub.GetChat(api.GetChatRequest(chat_id=str(large), page_token=token), metadata=md)

        assert _count_pages(page, "messages") == LARGE

    def chat_at() -> None:
        def page(token: str) -> Any:
            request = api.GetChatAtSnapshotRequest(chat_id=str(large), version=middle, page_token=token)
            return stub.GetChatAtSnapshot(request, metadata=md)

        assert _count_pages(page, "messages") == LARGE

    def compare() -> None:
        def page(token: str) -> Any:
            request = api.CompareSnapshotsRequest(
                chat_id=str(large), from_snapshot_id=first, to_snapshot_id=last, page_token=token
            )
            return stub.CompareSnapshots(request, metadata=md)

        assert _count_pages(page, "added_messages") == LARGE - 1

    def restore() -> None:
        for target in (tenth, restored_head):
            request = api.RestoreRequest(
                chat_id=str(restored), target_snapshot_id=target, scope=pb.RESTORE_SCOPE_FULL_CHAT
            )
            stub.Restore(request, metadata=md)

    conn = psycopg.connect(url, autocommit=True)
    conn.execute(f"set role {APP_ROLE}")
    conn.execute("select set_config('app.current_tenant_id', %s, false)", (str(tenant),))
    at = {"tenant_id": tenant, "chat_id": large, "after_position": 0, "limit": None, "with_deleted": False}

    def raw(name: str, params: dict[str, Any]) -> Callable[[], object]:
        return lambda: conn.execute(query(name), params).fetchall()

    def raw_restore() -> None:
        for version in (10, RESTORED * RESTORED_VERSIONS):  # each rolled back: the raw side writes no history
            with conn.transaction():
                conn.execute(RAW_RESTORE, {"tenant_id": tenant, "chat_id": restored, "version": version})
                raise psycopg.Rollback()

    pairs: dict[str, tuple[Callable[[], object], Callable[[], object]]] = {
        "get_chat_10k": (get_chat, raw("message_entries_at_version", {**at, "version": head})),
        "chat_at_snapshot_10k": (chat_at, raw("message_entries_at_version", {**at, "version": middle})),
        "compare_10k": (
            compare,
            raw(
                "message_changes",
                {"tenant_id": tenant, "chat_id": large, "from_version": 1, "to_version": head}
                | {"after_position": 0, "limit": None},
            ),
        ),
        "restore_full_1000": (restore, raw_restore),
    }
    samples: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in pairs}
    for _ in range(SAMPLES):  # interleaved, so both sides see the same machine
        for name, (service, baseline) in pairs.items():
            samples[name][0].append(_timed(service))
            samples[name][1].append(_timed(baseline))
    conn.close()
    results: dict[str, Any] = {"time_travel_chat_messages": LARGE, "time_travel_versions_per_message": LARGE_VERSIONS}
    for name, (ours, raws) in samples.items():
        per = 2 if name == "restore_full_1000" else 1  # there and back: two restores a sample
        results[f"{name}_ms"] = round(_median_ms(ours) / per, 1)
        results[f"{name}_raw_sql_ms"] = round(_median_ms(raws) / per, 1)
        results[f"{name}_ratio_vs_raw_sql"] = round(statistics.median(ours) / statistics.median(raws), 2)
    return results
