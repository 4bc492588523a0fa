"""Load large chats, or many small ones, straight into the tables (tests and benchmarks)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg

FIXTURES = Path(__file__).parent / "fixtures"
TABLES = ("tm_search_documents", "tm_message_versions", "tm_messages", "tm_snapshots", "tm_files", "tm_file_heads")


def _run(database_url: str, fixture: str, tenant_id: UUID, params: dict[str, Any]) -> None:
    with psycopg.connect(database_url) as conn, conn.transaction():
        # The owner may be bound by FORCE ROW LEVEL SECURITY: act as the tenant.
        conn.execute("select set_config('app.current_tenant_id', %s, true)", (str(tenant_id),))
        for statement in (FIXTURES / fixture).read_text().split(";\n"):
            if "INSERT" in statement:
                conn.execute(statement, {"tenant_id": tenant_id, **params})


def analyze(database_url: str) -> None:
    """What autovacuum would do soon after a load."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        for table in TABLES:
            conn.execute(f"analyze {table}")


def load_bulk_chat(
    database_url: str,
    tenant_id: UUID,
    chat_id: UUID,
    messages: int,
    versions: int,
    *,
    files: int = 0,
    analyzed: bool = True,
) -> None:
    """A chat of `messages` x `versions` message versions and `files` files (analyzed unless asked not to)."""
    params = {"chat_id": chat_id, "messages": messages, "versions": versions, "files": files}
    _run(database_url, "bulk_history.sql", tenant_id, params)
    if analyzed:
        analyze(database_url)


def load_small_chats(database_url: str, tenant_id: UUID, chats: int, messages: int, seed: str) -> None:
    """`chats` chats of `messages` messages each in one tenant: a busy database's background."""
    _run(database_url, "small_chats.sql", tenant_id, {"chats": chats, "messages": messages, "seed": seed})
