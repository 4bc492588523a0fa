"""No tenant ever sees another's data: in queries and in PostgreSQL itself (RLS)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import grpc
import psycopg
import pytest
from psycopg import sql

from generated.timemachine.v1 import resources_pb2 as pb
from generated.timemachine.v1 import service_pb2 as api
from service.database import APP_ROLE
from tests.conftest import Caller, Stack, rpc_error

TABLES = [
    "tm_chats",
    "tm_snapshots",
    "tm_message_versions",
    "tm_messages",
    "tm_restores",
    "tm_objects",
    "tm_files",
    "tm_file_heads",
    "tm_file_deletions",
    "tm_export_bundles",
    "tm_label_changes",
    "tm_erasures",
    "tm_message_attachments",
    # Its bookkeeping columns only (tm_app retires documents); see the next test.
    "tm_search_documents",
]


def test_another_tenants_ids_are_not_found(caller: Caller, other: Caller, chat_id: str) -> None:
    saved = caller.save(chat_id, "secret")
    message_id, snapshot_id = saved.message.message_id, saved.snapshot.id
    calls: list[tuple[str, Callable[..., Any], Any]] = [
        ("GetChat", other.stub.GetChat, api.GetChatRequest(chat_id=chat_id)),
        ("EditMessage", other.stub.EditMessage, api.EditMessageRequest(chat_id=chat_id, message_id=message_id)),
        ("DeleteMessage", other.stub.DeleteMessage, api.DeleteMessageRequest(chat_id=chat_id, message_id=message_id)),
        (
            "ListMessageVersions",
            other.stub.ListMessageVersions,
            api.ListMessageVersionsRequest(chat_id=chat_id, message_id=message_id),
        ),
        ("GetTimeline", other.stub.GetTimeline, api.GetTimelineRequest(chat_id=chat_id)),
        (
            "GetChatAtSnapshot",
            other.stub.GetChatAtSnapshot,
            api.GetChatAtSnapshotRequest(chat_id=chat_id, snapshot_id=snapshot_id),
        ),
        (
            "ListSnapshotsByDate",
            other.stub.ListSnapshotsByDate,
            api.ListSnapshotsByDateRequest(chat_id=chat_id, date="2026-01-01"),
        ),
        ("ListRestores", other.stub.ListRestores, api.ListRestoresRequest(chat_id=chat_id)),
        ("VerifyChat", other.stub.VerifyChat, api.VerifyChatRequest(chat_id=chat_id)),
    ]
    for name, call, request in calls:
        assert rpc_error(call, request, metadata=other.md).code() == grpc.StatusCode.NOT_FOUND, name
    # A restore into the other tenant's own chat with our snapshot id: NOT_FOUND too.
    other.save(chat_id, "their own chat with the same id")
    error = rpc_error(other.restore, chat_id, snapshot_id, pb.RESTORE_SCOPE_FULL_CHAT)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    # Same chat id, two tenants, two separate chats.
    assert [m.content for m in caller.chat(chat_id).messages] == ["secret"]
    assert [m.content for m in other.chat(chat_id).messages] == ["their own chat with the same id"]


def _as_service_role(stack: Stack) -> psycopg.Connection[Any]:
    conn = psycopg.connect(stack.runtime.database_url, autocommit=True)
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(APP_ROLE)))
    return conn


@pytest.fixture
def every_kind_of_row(caller: Caller, chat_id: str) -> None:
    caller.save(chat_id, "row")
    up = caller.upload(chat_id, "f.txt", b"file", mime_type="text/plain")
    caller.save(
        chat_id,
        "see the file",
        attachments=[pb.Attachment(file_id=up.file.id, reference_type=pb.REFERENCE_TYPE_ATTACHMENT)],
    )
    caller.stub.DeleteFile(api.DeleteFileRequest(chat_id=chat_id, file_id=up.file.id), metadata=caller.md)
    caller.stub.CreateExport(api.CreateExportRequest(chat_id=chat_id, format=pb.EXPORT_FORMAT_JSON), metadata=caller.md)
    assert caller.restore(chat_id, caller.chat(chat_id).snapshot.id, pb.RESTORE_SCOPE_FULL_CHAT).success
    head = caller.chat(chat_id).snapshot.id
    label = api.LabelSnapshotRequest(chat_id=chat_id, snapshot_id=head, label="a label")
    caller.stub.LabelSnapshot(label, metadata=caller.md)
    erased = str(uuid.uuid4())  # a chat erased: its tombstone is a row of the tenant too
    checksum = caller.save(erased, "to be erased").snapshot.checksum
    caller.stub.EraseChat(api.EraseChatRequest(chat_id=erased, confirm_checksum=checksum), metadata=caller.md)


@pytest.mark.usefixtures("every_kind_of_row")
@pytest.mark.parametrize("table", TABLES)
def test_service_role_without_tenant_setting_sees_no_rows(stack: Stack, caller: Caller, table: str) -> None:
    with _as_service_role(stack) as conn:
        assert conn.execute("select current_user").fetchone() == (APP_ROLE,)
        count = conn.execute(sql.SQL("select count(*) from {}").format(sql.Identifier(table))).fetchone()
        assert count == (0,)
        with conn.transaction():
            conn.execute("select set_config('app.current_tenant_id', %s, true)", (caller.tenant_id,))
            mine = conn.execute(sql.SQL("select count(*) from {}").format(sql.Identifier(table))).fetchone()
            assert mine is not None and mine[0] >= 1
            tenants = conn.execute(sql.SQL("select count(distinct tenant_id) from {}").format(sql.Identifier(table)))
            assert tenants.fetchone() == (1,)


@pytest.mark.usefixtures("every_kind_of_row")
def test_search_documents_are_readable_only_through_the_search_function(stack: Stack, caller: Caller) -> None:
    with _as_service_role(stack) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
        conn.execute("select set_config('app.current_tenant_id', %s, true)", (caller.tenant_id,))
        conn.execute("select count(*) from tm_search_documents where document @@ 'row'")
    with _as_service_role(stack) as conn:  # no tenant: the function finds nothing either
        hits = conn.execute(
            "select count(*) from tm_search('message', NULL, to_tsquery('simple', 'row'), true, 100, 0)"
        )
        assert hits.fetchone() == (0,)
        with conn.transaction():
            conn.execute("select set_config('app.current_tenant_id', %s, true)", (caller.tenant_id,))
            mine = conn.execute(
                "select count(*) from tm_search('message', NULL, to_tsquery('simple', 'row'), true, 100, 0)"
            )
            assert mine.fetchone() == (1,)


def test_a_copied_document_comes_only_from_the_callers_tenant(
    stack: Stack, caller: Caller, other: Caller, chat_id: str
) -> None:
    """Restores copy a version's search document by id (tm_copied_document): never another tenant's."""
    theirs = other.save(chat_id, "theirsecret").message.id
    with _as_service_role(stack) as conn, conn.transaction():
        conn.execute("select set_config('app.current_tenant_id', %s, true)", (caller.tenant_id,))
        copied = conn.execute("select tm_copied_document(%s, 'mine')::text", (theirs,)).fetchone()
        assert copied == ("'mine':1",)
        conn.execute("select set_config('app.current_tenant_id', %s, true)", (other.tenant_id,))
        copied = conn.execute("select tm_copied_document(%s, 'mine')::text", (theirs,)).fetchone()
        assert copied == ("'theirsecret':1",)


def test_service_role_cannot_write_another_tenant_or_delete_history(stack: Stack, caller: Caller, chat_id: str) -> None:
    caller.save(chat_id, "row")
    with _as_service_role(stack) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
            conn.execute("select set_config('app.current_tenant_id', %s, true)", (caller.tenant_id,))
            conn.execute("delete from tm_message_versions")
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
            conn.execute("select set_config('app.current_tenant_id', %s, true)", (caller.tenant_id,))
            conn.execute("update tm_message_versions set content = 'rewritten'")
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
            conn.execute("select set_config('app.current_tenant_id', %s, true)", (caller.tenant_id,))
            conn.execute(
                "insert into tm_chats (tenant_id, chat_id, state_sum)"
                " values (gen_random_uuid(), gen_random_uuid(), '0')"
            )


def test_tenant_setting_is_transaction_local(stack: Stack, caller: Caller, chat_id: str) -> None:
    caller.save(chat_id, "row")
    with _as_service_role(stack) as conn:
        with conn.transaction():
            conn.execute("select set_config('app.current_tenant_id', %s, true)", (caller.tenant_id,))
            assert conn.execute("select count(*) from tm_chats").fetchone() == (1,)
        assert conn.execute("select count(*) from tm_chats").fetchone() == (0,)


def test_tenant_value_is_a_bound_parameter(stack: Stack) -> None:
    hostile = "x'; drop table tm_chats; --"
    with (
        _as_service_role(stack) as conn,
        pytest.raises(psycopg.errors.InvalidTextRepresentation),
        conn.transaction(),
    ):
        conn.execute("select set_config('app.current_tenant_id', %s, true)", (hostile,))
        conn.execute("select count(*) from tm_chats")
    with _as_service_role(stack) as conn:
        assert conn.execute("select to_regclass('tm_chats')").fetchone() == ("tm_chats",)


def test_row_level_security_is_on_everywhere_and_forced_where_the_service_reads(stack: Stack) -> None:
    with psycopg.connect(stack.runtime.database_url) as conn:
        rows = conn.execute(
            "select relname, relrowsecurity, relforcerowsecurity from pg_class"
            " where relkind = 'r' and relname like 'tm\\_%'"
            " and relname not in ('tm_schema_migrations', 'tm_leases', 'tm_deployment')"
        ).fetchall()
        # The deployment's own tables hold no tenant data; the service role may not delete from them.
        for table in ("tm_leases", "tm_deployment"):
            assert conn.execute(
                "select has_table_privilege(%s, %s, 'DELETE'), has_table_privilege(%s, %s, 'TRUNCATE')",
                (APP_ROLE, table, APP_ROLE, table),
            ).fetchone() == (False, False)
    flags = {name: (enabled, forced) for name, enabled, forced in rows}
    assert set(flags) == {*TABLES, "tm_search_documents"}
    assert all(enabled for enabled, _ in flags.values())
    # The two tables read across tenants by owner-run functions (search, export claims) are not forced.
    assert {name for name, (_, forced) in flags.items() if not forced} == {"tm_search_documents", "tm_export_bundles"}
