"""Erasure for good: EraseChat, SetLegalHold and EraseTenant leave nothing of what they erase, and only that."""

from __future__ import annotations

import io
import uuid
from typing import Any

import grpc
import psycopg
import pytest
from PIL import Image

from generated.timemachine.v1 import resources_pb2 as pb
from generated.timemachine.v1 import service_pb2 as api
from service.export.exporter import Exporter
from tests.conftest import Caller, Stack, rpc_error
from tests.test_export import create, wait_for, worker


def _tables_with_chats(stack: Stack) -> list[str]:
    with psycopg.connect(stack.runtime.database_url) as conn:
        rows = conn.execute(
            "select table_name from information_schema.columns"
            " where column_name = 'chat_id' and table_name like 'tm\\_%' and table_schema = 'public'"
            " and table_name in (select tablename from pg_tables where schemaname = 'public')"
        ).fetchall()
    return sorted(name for (name,) in rows)


def _rows_of(stack: Stack, table: str, chat_id: str) -> int:
    with psycopg.connect(stack.runtime.database_url) as conn:  # as the owner: every tenant's rows
        found = conn.execute(f"select count(*) from {table} where chat_id = %s", (chat_id,)).fetchone()
    assert found is not None
    return int(found[0])


def _objects_of(stack: Stack, chat_id: str) -> set[tuple[str, str]]:
    with psycopg.connect(stack.runtime.database_url) as conn:
        rows = conn.execute(
            "select s3_key, s3_version_id from tm_files where chat_id = %s"
            " union select thumbnail_s3_key, thumbnail_version_id from tm_files"
            "  where chat_id = %s and thumbnail_s3_key is not null"
            " union select s3_key, s3_version_id from tm_export_bundles where chat_id = %s and s3_key is not null",
            (chat_id, chat_id, chat_id),
        ).fetchall()
    return {(key, version) for key, version in rows}


def _versions_in_vault(stack: Stack, tenant_id: str) -> set[tuple[str, str]]:
    vault = stack.stores.vault
    listed = vault.client.list_object_versions(Bucket=vault.bucket, Prefix=f"tenants/{tenant_id}/")
    return {(v["Key"], v["VersionId"]) for v in listed.get("Versions", [])}


def _erase(caller: Caller, chat_id: str, checksum: str) -> api.EraseChatResponse:
    return caller.stub.EraseChat(api.EraseChatRequest(chat_id=chat_id, confirm_checksum=checksum), metadata=caller.md)


def _hold(caller: Caller, chat_id: str, hold: bool, reason: str = "") -> api.SetLegalHoldResponse:
    request = api.SetLegalHoldRequest(chat_id=chat_id, legal_hold=hold, reason=reason)
    return caller.stub.SetLegalHold(request, metadata=caller.md)


def _ready_bundle(stack: Stack, caller: Caller, chat_id: str) -> None:
    """A background export of the chat, rendered into the vault by a worker run for it."""
    bundle = create(caller, chat_id, format=pb.EXPORT_FORMAT_ZIP, include_media=True)
    background = worker(stack, Exporter(stack.stores.db, stack.stores.vault))
    background.start()
    try:
        wait_for(caller, bundle.id, pb.EXPORT_STATUS_READY)
    finally:
        background.stop()


@pytest.mark.slow
def test_an_erased_chat_leaves_only_its_tombstone(stack: Stack, caller: Caller, other: Caller) -> None:
    chat, keeper = str(uuid.uuid4()), str(uuid.uuid4())
    shared = b"bytes two chats hold " * 100
    first = caller.save(chat, "zebracorn secret words", tokens=2)
    caller.edit(chat, first.message.message_id, "zebracorn edited words")
    caller.upload(chat, "own.txt", b"only this chat holds these bytes", mime_type="text/plain")
    caller.upload(chat, "shared.txt", shared, mime_type="text/plain")
    picture = caller.upload(chat, "p.png", _png(), mime_type="image/png")
    look = pb.Attachment(file_id=picture.file.id, reference_type=pb.REFERENCE_TYPE_INLINE)
    caller.save(chat, "look at this", attachments=[look])
    caller.stub.DeleteFile(api.DeleteFileRequest(chat_id=chat, file_id=picture.file.id), metadata=caller.md)
    caller.restore(chat, first.snapshot.id, pb.RESTORE_SCOPE_FULL_CHAT)
    caller.stub.LabelSnapshot(
        api.LabelSnapshotRequest(chat_id=chat, snapshot_id=first.snapshot.id, label="start"), metadata=caller.md
    )
    _ready_bundle(stack, caller, chat)
    caller.save(keeper, "keeper words")
    kept = caller.upload(keeper, "same.txt", shared, mime_type="text/plain")
    theirs = str(uuid.uuid4())
    other.save(theirs, "zebracorn of another tenant")
    objects = _objects_of(stack, chat)
    assert len(objects) >= 4  # own bytes, shared bytes, the picture and its thumbnail, the bundle
    tables = _tables_with_chats(stack)
    assert {"tm_snapshots", "tm_message_versions", "tm_files", "tm_search_documents", "tm_label_changes"} <= set(tables)
    checksum = caller.chat(chat).snapshot.checksum

    stale = rpc_error(_erase, caller, chat, "0" * 64)
    assert stale.code() is grpc.StatusCode.FAILED_PRECONDITION and "checksum" in stale.details()
    held = _hold(caller, chat, True, "litigation 42")
    assert held.legal_hold and held.reason == "litigation 42" and held.set_by == caller.user_id
    refused = rpc_error(_erase, caller, chat, checksum)
    assert refused.code() is grpc.StatusCode.FAILED_PRECONDITION and "legal hold" in refused.details()
    assert not _hold(caller, chat, False).legal_hold
    assert _rows_of(stack, "tm_snapshots", chat) > 0  # nothing was erased by the refusals

    erased = _erase(caller, chat, checksum)
    assert erased.erased_rows > 20 and erased.erased_objects == len(objects) - 1  # the shared bytes stay
    assert erased.erased_bytes > 0 and erased.erased_at.seconds > 0
    for table in tables:
        expected = 1 if table == "tm_erasures" else 0
        assert _rows_of(stack, table, chat) == expected, table
    # Of the chat's object versions only the shared bytes are left, which the keeper's file refers to.
    assert len(objects & _versions_in_vault(stack, caller.tenant_id)) == 1
    # The chat id says what happened, for reads and writes alike.
    for call in (lambda: caller.chat(chat), lambda: caller.save(chat, "again")):
        gone = rpc_error(call)
        assert gone.code() is grpc.StatusCode.NOT_FOUND and "was erased" in gone.details()
    found = caller.stub.Search(api.SearchRequest(query="zebracorn", include_history=True), metadata=caller.md)
    assert not found.message_hits
    listed = caller.stub.ListChats(
        api.ListChatsRequest(include_archived=True, include_deleted=True), metadata=caller.md
    )
    assert [c.chat_id for c in listed.chats] == [keeper]
    # Everything else is intact: the keeper's shared bytes, the other tenant's chat.
    assert caller.download(kept.file.id)[1] == shared
    verified = caller.stub.VerifyChat(api.VerifyChatRequest(chat_id=keeper, check_content=True), metadata=caller.md)
    assert verified.ok, verified.problems
    assert other.verify(theirs).ok and [m.content for m in other.chat(theirs).messages] == [
        "zebracorn of another tenant"
    ]


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_erase_tenant_skips_held_chats_reports_progress_and_resumes(
    stack: Stack, caller: Caller, other: Caller
) -> None:
    chats = [str(uuid.uuid4()) for _ in range(3)]
    for chat in chats:
        caller.save(chat, "offboarding")
    _hold(caller, chats[1], True, "audit")
    theirs = str(uuid.uuid4())
    other.save(theirs, "stays")
    wrong = rpc_error(
        lambda: list(
            caller.stub.EraseTenant(api.EraseTenantRequest(confirm_tenant_id=other.tenant_id), metadata=caller.md)
        )
    )
    assert wrong.code() is grpc.StatusCode.INVALID_ARGUMENT
    progress = list(
        caller.stub.EraseTenant(api.EraseTenantRequest(confirm_tenant_id=caller.tenant_id), metadata=caller.md)
    )
    assert progress[0].chats_total == 3 and progress[0].chats_held == 1 and not progress[0].done
    assert [p.chats_erased for p in progress] == [0, 1, 2, 2] and progress[-1].done
    assert {p.chat_id for p in progress[1:-1]} == {chats[0], chats[2]}
    again = list(
        caller.stub.EraseTenant(api.EraseTenantRequest(confirm_tenant_id=caller.tenant_id), metadata=caller.md)
    )
    assert [(p.chats_total, p.chats_erased, p.chats_held, p.done) for p in again] == [(1, 0, 1, False), (1, 0, 1, True)]
    assert [m.content for m in caller.chat(chats[1]).messages] == ["offboarding"]
    for chat in (chats[0], chats[2]):
        assert "was erased" in rpc_error(caller.chat, chat).details()
    assert other.verify(theirs).ok


def test_bad_input_and_other_tenants(caller: Caller, other: Caller, chat_id: str) -> None:
    checksum = caller.save(chat_id, "mine").snapshot.checksum
    erase, hold = api.EraseChatRequest, api.SetLegalHoldRequest
    cases: list[tuple[Caller, str, Any, grpc.StatusCode]] = [
        (caller, "EraseChat", erase(chat_id="nope", confirm_checksum=checksum), grpc.StatusCode.INVALID_ARGUMENT),
        (caller, "EraseChat", erase(chat_id=chat_id), grpc.StatusCode.INVALID_ARGUMENT),
        (other, "EraseChat", erase(chat_id=chat_id, confirm_checksum=checksum), grpc.StatusCode.NOT_FOUND),
        (caller, "SetLegalHold", hold(chat_id=chat_id, legal_hold=True), grpc.StatusCode.INVALID_ARGUMENT),
        (other, "SetLegalHold", hold(chat_id=chat_id, legal_hold=True, reason="x"), grpc.StatusCode.NOT_FOUND),
    ]
    for who, method, request, code in cases:
        assert rpc_error(getattr(who.stub, method), request, metadata=who.md).code() is code, request
    assert [m.content for m in caller.chat(chat_id).messages] == ["mine"]
