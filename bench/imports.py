"""ImportChat of a 10,000-message chat against raw COPY of the same rows, side by side.

The export is made here, in the JSON export's format with its history
section (one snapshot per message, realistic text, checksums computed as the
service computes them), so the benchmark needs no 10,000 calls to set up.
The baseline COPYs the rows ImportChat writes (chat, snapshots, message
versions, heads) as the schema's owner and adds the search documents with one
INSERT … SELECT: the database work of an import with nothing around it. The
import is timed from the first request message to the answer, so it includes
streaming and parsing the JSON and replaying the history's checksums.
"""

from __future__ import annotations

import json
import random
import statistics
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from generated.timemachine.v1 import service_pb2 as api
from generated.timemachine.v1 import service_pb2_grpc
from server.bootstrap import Runtime
from service import checksum, import_plan

MESSAGES = 10_000
SAMPLES = 3
CHUNK = 1024 * 1024
TEXT = (
    "the plan for day one is a walk along the river then lunch near the market and a tram ride "
    "up the hill where the view over the old town is best at sunset bring water and a jacket"
)
WORDS = tuple(TEXT.split())


def export_document(messages: int, seed: int = 7) -> dict[str, Any]:
    """A full-history JSON export of a chat of `messages` messages, each saved once."""
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    state = checksum.StateSum()
    user = str(uuid.UUID(int=rng.getrandbits(128)))
    snapshots, entries = [], []
    tokens = 0
    for n in range(1, messages + 1):
        message_id = uuid.UUID(int=rng.getrandbits(128))
        role = "user" if n % 2 else "assistant"
        content = " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 60)))
        when = (start + timedelta(seconds=n)).isoformat()
        state.add(checksum.message_element(message_id, n, role, content))
        tokens += 10
        snapshots.append(
            {
                "id": str(uuid.UUID(int=rng.getrandbits(128))),
                "version": n,
                "created_at": when,
                "trigger": "message_sent" if role == "user" else "message_received",
                "trigger_message_id": str(message_id),
                "trigger_file_id": None,
                "trigger_description": "",
                "user_id": user,
                "request_id": None,
                "title": "",
                "checksum": state.hex,
                "message_count": n,
                "file_count": 0,
                "total_tokens": tokens,
                "restored_from_version": None,
            }
        )
        version = {"version": 1, "chat_version": n, "role": role, "content": content, "model_id": None}
        version |= {"tokens": 10, "deleted": False, "edit_reason": None, "created_at": when, "metadata": {}}
        entries.append(
            {
                "message_id": str(message_id),
                "position": n,
                "role": role,
                "content": content,
                "original_created_at": when,
                "versions": [version | {"edited_by": None}],
            }
        )
    return {
        "format_version": 1,
        "chat": {"id": str(uuid.uuid4()), "title": ""},
        "snapshot": {"version": messages, "checksum": state.hex},
        "include_version_history": True,
        "files": [],
        "messages": entries,
        "history": {"snapshots": snapshots, "file_deletions": [], "restores": []},
    }


def _requests(chat_id: str, body: bytes) -> Iterator[api.ImportChatRequest]:
    yield api.ImportChatRequest(chat_id=chat_id)
    for start in range(0, len(body), CHUNK):
        yield api.ImportChatRequest(export_chunk=body[start : start + CHUNK])


SNAPSHOT_COLUMNS = "id version created_at message_count file_count total_tokens trigger trigger_message_id"
SNAPSHOT_COLUMNS += " previous_snapshot_id checksum title user_id"
VERSION_COLUMNS = "id message_id snapshot_id chat_version version position role content model_id tokens"
VERSION_COLUMNS += " is_deleted edit_reason created_at original_created_at"
HEAD_COLUMNS = "message_id position current_version_id version is_deleted tokens element_hash original_created_at"


def _copy_rows(
    cur: psycopg.Cursor[Any], table: str, tenant: uuid.UUID, chat: uuid.UUID, columns: str, rows: list[dict[str, Any]]
) -> None:
    names = columns.split()
    with cur.copy(f"COPY {table} (tenant_id, chat_id, {', '.join(names)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row((tenant, chat, *(row[name] for name in names)))


def _copy(url: str, tenant: uuid.UUID, plan: import_plan.ImportPlan) -> None:
    """The same rows by COPY, as the owner (no row security), and their search documents."""
    chat = uuid.uuid4()
    last = plan.last
    with psycopg.connect(url) as conn, conn.transaction(), conn.cursor() as cur:
        cur.execute(
            "INSERT INTO tm_chats (tenant_id, chat_id, head_version, head_snapshot_id, message_count, total_tokens,"
            " state_sum, next_position) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (tenant, chat, last["version"], last["id"], last["message_count"], last["total_tokens"],
             last["checksum"], plan.next_position),
        )  # fmt: skip
        _copy_rows(cur, "tm_snapshots", tenant, chat, SNAPSHOT_COLUMNS, plan.snapshots)
        _copy_rows(cur, "tm_message_versions", tenant, chat, VERSION_COLUMNS, plan.message_versions)
        _copy_rows(cur, "tm_messages", tenant, chat, HEAD_COLUMNS, plan.message_heads)
        cur.execute(
            "INSERT INTO tm_search_documents (tenant_id, chat_id, kind, ref_id, document)"
            " SELECT tenant_id, chat_id, 'message', id, tm_message_document(content) FROM tm_message_versions"
            " WHERE tenant_id = %s AND chat_id = %s",
            (tenant, chat),
        )


def measure(runtime: Runtime, stub: service_pb2_grpc.TimeMachineServiceStub) -> dict[str, Any]:
    tenant = uuid.uuid4()
    md = (("x-tenant-id", str(tenant)), ("x-user-id", str(uuid.uuid4())))
    document = export_document(MESSAGES)
    body = json.dumps(document, ensure_ascii=False).encode()
    imports: list[float] = []
    copies: list[float] = []
    for _ in range(SAMPLES):  # interleaved: the machine's noise falls on both alike
        started = time.perf_counter()
        reply = stub.ImportChat(_requests(str(uuid.uuid4()), body), metadata=md)
        imports.append(time.perf_counter() - started)
        assert reply.snapshots_imported == MESSAGES
        plan = import_plan.plan(document)  # fresh ids; not timed: COPY needs rows made by someone
        started = time.perf_counter()
        _copy(runtime.database_url, tenant, plan)
        copies.append(time.perf_counter() - started)
    imported, copied = statistics.median(imports), statistics.median(copies)
    return {
        "import_messages": MESSAGES,
        "import_export_mib": round(len(body) / 2**20, 1),
        "import_seconds": round(imported, 3),
        "import_messages_per_s": round(MESSAGES / imported),
        "import_copy_seconds": round(copied, 3),
        "import_ratio_vs_copy": round(copied / imported, 3),
    }
