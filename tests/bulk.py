"""Load a large chat straight into the tables, for search tests and benchmarks."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

import psycopg

SQL = (Path(__file__).parent / "fixtures" / "bulk_history.sql").read_text()


def load_bulk_chat(database_url: str, tenant_id: UUID, chat_id: UUID, messages: int, versions: int) -> None:
    with psycopg.connect(database_url) as conn, conn.transaction():
        # The owner may be bound by FORCE ROW LEVEL SECURITY: act as the tenant.
        conn.execute("select set_config('app.current_tenant_id', %s, true)", (str(tenant_id),))
        params = {"tenant_id": tenant_id, "chat_id": chat_id, "messages": messages, "versions": versions}
        for statement in SQL.split(";\n"):
            if "INSERT" in statement:
                conn.execute(statement, params)
    with psycopg.connect(database_url, autocommit=True) as conn:
        # What autovacuum would do soon after such a load.
        for table in ("tm_search_documents", "tm_message_versions", "tm_messages", "tm_snapshots"):
            conn.execute(f"analyze {table}")
