"""A schema ready to be distributed by tenant (Citus, docs/operations.md).

A distributed table's primary key, unique constraints and foreign keys must
include its distribution column, and a foreign key between two distributed
tables must join on it. Every tenant table is distributed by tenant_id, so
every such key must lead with tenant_id, and each foreign key must join
tenant_id to tenant_id: then each chat's statements stay on one shard.
"""

from __future__ import annotations

import psycopg

from tests.conftest import Stack

# Every key of every table with a tenant_id column, by its columns.
KEYS = """
SELECT c.conrelid::regclass::text AS table_name, c.conname, c.contype,
       array(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k (n, i)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i) AS columns,
       array(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k (n, i)
             JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i) AS referenced
FROM pg_constraint c
JOIN pg_class t ON t.oid = c.conrelid
JOIN pg_namespace s ON s.oid = t.relnamespace AND s.nspname = current_schema()
WHERE c.contype IN ('p', 'u', 'f')
  AND EXISTS (SELECT 1 FROM pg_attribute a
              WHERE a.attrelid = c.conrelid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
UNION ALL
SELECT t.relname::text, i.relname::text, 'i',
       array(SELECT a.attname::text FROM unnest(x.indkey::int2[]) WITH ORDINALITY k (n, i)
             JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.n ORDER BY k.i),
       '{}'::text[]
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_namespace s ON s.oid = t.relnamespace AND s.nspname = current_schema()
WHERE x.indisunique AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)
  AND EXISTS (SELECT 1 FROM pg_attribute a
              WHERE a.attrelid = x.indrelid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
"""


def test_every_key_of_a_tenant_table_leads_with_tenant_id(stack: Stack) -> None:
    with psycopg.connect(stack.runtime.database_url) as conn:
        keys = conn.execute(KEYS).fetchall()
    tables = {table for table, *_ in keys}
    # The check reads what it should: the history, the heads, the vault and the queue.
    assert {"tm_chats", "tm_snapshots", "tm_message_versions", "tm_messages", "tm_files", "tm_search_documents"} | {
        "tm_restores",
        "tm_file_deletions",
        "tm_file_heads",
        "tm_objects",
        "tm_export_bundles",
    } <= tables
    assert sum(1 for *_, kind, _, _ in keys if kind == "f") >= 20
    wrong = [
        f"{table}.{name} ({kind}): {columns} -> {referenced}"
        for table, name, kind, columns, referenced in keys
        if columns[0] != "tenant_id" or (kind == "f" and referenced[0] != "tenant_id")
    ]
    assert not wrong, "keys that do not lead with tenant_id:\n" + "\n".join(wrong)
