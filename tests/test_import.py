"""ImportChat: a JSON export with history written again as the same history, all or nothing."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from generated.timemachine.v1 import resources_pb2 as pb
from generated.timemachine.v1 import service_pb2 as api
from tests.conftest import Caller, Stack, rows, rpc_error
from tests.test_export import export

KiB = 1024


def _history(caller: Caller, chat_id: str) -> dict[str, bytes]:
    """Every kind of action: saves, an edit, a delete, a rename, files, a file deletion, restores."""
    a = caller.save(chat_id, "Plan the **trip**", tokens=3)
    b = caller.save(chat_id, "Day 1: Lisbon", role=pb.MESSAGE_ROLE_ASSISTANT, tokens=5, model_id="m-1")
    caller.rename(chat_id, "Trip")
    media = {"notes.txt": b"first notes\n" * 100, "photo.bin": bytes(range(256)) * 40}
    caller.upload(chat_id, "notes.txt", media["notes.txt"], mime_type="text/plain")
    target = caller.upload(chat_id, "photo.bin", media["photo.bin"])
    media["notes v2"] = b"second notes\n" * 50
    caller.upload(chat_id, "notes.txt", media["notes v2"], mime_type="text/plain")
    caller.edit(chat_id, b.message.message_id, "Day 1: Lisbon, tram 28", edit_reason="detail")
    caller.delete(chat_id, a.message.message_id)
    caller.stub.DeleteFile(api.DeleteFileRequest(chat_id=chat_id, file_id=target.file.id), metadata=caller.md)
    caller.save(chat_id, 'Ελληνικά 🙂 and "quotes"\n\ttabs', metadata={"k": "v"})
    caller.restore(chat_id, target.snapshot.id, pb.RESTORE_SCOPE_FULL_CHAT, reason="back to the photo")
    caller.rename(chat_id, "Trip (restored)")
    return media


def _requests(chat_id: str, document: bytes, media: dict[str, bytes], request_id: str = "") -> Iterator[Any]:
    yield api.ImportChatRequest(chat_id=chat_id, request_id=request_id)
    for start in range(0, len(document), 3000):  # many small chunks: the export is joined again
        yield api.ImportChatRequest(export_chunk=document[start : start + 3000])
    for sha256, data in media.items():
        for start in range(0, len(data), 1500):
            yield api.ImportChatRequest(media=api.ImportMedia(sha256=sha256, chunk=data[start : start + 1500]))


def _import(caller: Caller, chat_id: str, document: bytes, media: dict[str, bytes] | None = None, **kw: str) -> Any:
    return caller.stub.ImportChat(_requests(chat_id, document, media or {}, **kw), metadata=caller.md)


def _full_export(caller: Caller, chat_id: str) -> bytes:
    _, data = export(caller, chat_id, pb.EXPORT_FORMAT_JSON, include_version_history=True)
    return data


def _timeline(caller: Caller, chat_id: str) -> list[pb.Snapshot]:
    reply = caller.stub.GetTimeline(api.GetTimelineRequest(chat_id=chat_id, page_size=1000), metadata=caller.md)
    return list(reply.snapshots)


def _state(caller: Caller, chat_id: str, version: int) -> tuple[Any, ...]:
    at = caller.at(chat_id, version=version)
    s = at.snapshot
    messages = [(m.message_id, m.role, m.content, m.version) for m in at.messages]
    files = sorted((f.original_name, f.checksum_sha256, f.version) for f in at.files)
    described = (s.checksum, s.trigger, s.title, s.timestamp.ToJsonString(), s.user_id, s.trigger_description)
    return (*described, s.message_count, s.total_tokens, messages, files)


def test_an_import_is_the_same_history_snapshot_by_snapshot(caller: Caller, other: Caller, chat_id: str) -> None:
    media = _history(caller, chat_id)
    document = _full_export(caller, chat_id)
    source = _timeline(caller, chat_id)
    # Into another tenant, which holds none of the bytes: they are sent in the call.
    sent = {hashlib.sha256(data).hexdigest(): data for data in media.values()}
    copy = str(uuid.uuid4())
    reply = _import(other, copy, document, sent, request_id="import-1")
    assert reply.snapshots_imported == len(source) == 12
    assert reply.media_received == 3 and reply.file_versions_imported == 5
    assert reply.message_versions_imported == 8  # 3 saves, 1 edit, 1 delete, restore: a back, new one gone
    assert reply.checksum == source[-1].checksum == reply.last_snapshot.checksum
    assert reply.last_snapshot.trigger == pb.SNAPSHOT_TRIGGER_CHAT_IMPORTED
    assert reply.last_snapshot.version == len(source) + 1
    for version in range(1, len(source) + 1):
        assert _state(other, copy, version) == _state(caller, chat_id, version), version
    imported = _timeline(other, copy)
    assert [(s.trigger, s.checksum, s.timestamp, s.user_id) for s in imported[:-1]] == [
        (s.trigger, s.checksum, s.timestamp, s.user_id) for s in source
    ]
    assert imported[-1].restored_from_snapshot_id == "" and imported[10].restored_from_snapshot_id == imported[4].id
    assert all(s.id not in {t.id for t in source} for s in imported)  # new row ids
    # The restore log, the file bytes and a full verification (bytes read back) came along.
    restores = other.stub.ListRestores(api.ListRestoresRequest(chat_id=copy), metadata=other.md).restores
    assert [(r.scope, r.reason, r.to_snapshot_id) for r in restores] == [
        (pb.RESTORE_SCOPE_FULL_CHAT, "back to the photo", imported[10].id)
    ]
    files = other.stub.ListFiles(api.ListFilesRequest(chat_id=copy), metadata=other.md).files
    assert {f.original_name: other.download(f.id)[1] for f in files} == {
        "notes.txt": media["notes.txt"],  # the restore brought version 1 back
        "photo.bin": media["photo.bin"],
    }
    verified = other.stub.VerifyChat(api.VerifyChatRequest(chat_id=copy, check_content=True), metadata=other.md)
    assert verified.ok and verified.snapshots_checked == len(source) + 1, verified.problems
    # Search finds the imported words; the chat goes on taking writes.
    current = other.chat(copy).messages
    found = other.stub.Search(api.SearchRequest(chat_id=copy, query="lisbon"), metadata=other.md)
    assert [h.message.message_id for h in found.message_hits] == [current[1].message_id]
    past = other.stub.Search(api.SearchRequest(chat_id=copy, query="tram", include_history=True), metadata=other.md)
    assert [(h.message.content, h.is_current) for h in past.message_hits] == [("Day 1: Lisbon, tram 28", False)]
    named = other.stub.Search(api.SearchRequest(chat_id=copy, query="photo"), metadata=other.md)
    assert [h.file.original_name for h in named.file_hits] == ["photo.bin"]
    assert other.save(copy, "after the import").snapshot.version == len(source) + 2
    # Exported again, the import is the same chat plus its CHAT_IMPORTED mark.
    again = json.loads(_full_export(other, copy))
    assert [s["checksum"] for s in again["history"]["snapshots"][: len(source)]] == [s.checksum for s in source]


def test_media_the_tenant_holds_need_not_be_sent_and_a_retry_answers_the_same(caller: Caller, chat_id: str) -> None:
    _history(caller, chat_id)
    document = _full_export(caller, chat_id)
    copy = str(uuid.uuid4())
    first = _import(caller, copy, document, request_id="same-key")
    assert first.media_received == 0 and first.file_versions_imported == 5
    retry = _import(caller, copy, document, request_id="same-key")
    assert retry.last_snapshot == first.last_snapshot and retry.snapshots_imported == first.snapshots_imported
    assert (retry.message_versions_imported, retry.file_versions_imported) == (8, 5)
    taken = rpc_error(_import, caller, copy, document, request_id="another-key")
    assert taken.code() is grpc.StatusCode.ALREADY_EXISTS
    assert rpc_error(_import, caller, chat_id, document).code() is grpc.StatusCode.ALREADY_EXISTS
    assert caller.verify(copy).ok


def _objects_of(stack: Stack, tenant_id: str) -> list[Any]:
    vault = stack.stores.vault
    listed = vault.client.list_object_versions(Bucket=vault.bucket, Prefix=f"tenants/{tenant_id}/")
    versions: list[Any] = listed.get("Versions", [])
    return versions


def _nothing_written(stack: Stack, caller: Caller, chat_id: str) -> None:
    for table in ("tm_chats", "tm_snapshots", "tm_message_versions", "tm_files", "tm_messages"):
        assert rows(stack, caller.tenant_id, f"select 1 from {table} where chat_id = %s", chat_id) == [], table
    assert rows(stack, caller.tenant_id, "select 1 from tm_objects") == []
    assert _objects_of(stack, caller.tenant_id) == []  # stored and discarded again, every version


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (lambda d: d["messages"][0]["versions"][0].update(content="changed by hand"), "checksum"),
        (lambda d: d["history"]["snapshots"].pop(3), "version"),
        (lambda d: d.pop("history"), "include_version_history"),
        (lambda d: d["history"]["snapshots"][2].update(trigger="bogus"), "not a known value"),
        (lambda d: d["files"][0].update(size_bytes=1), "size"),
        (lambda d: d.update(format_version=2), "format_version"),
    ],
)
def test_a_damaged_export_is_refused_and_nothing_is_written(
    stack: Stack, caller: Caller, other: Caller, chat_id: str, damage: Any, words: str
) -> None:
    media = _history(caller, chat_id)
    document = json.loads(_full_export(caller, chat_id))
    damage(document)
    sent = {hashlib.sha256(data).hexdigest(): data for data in media.values()}
    copy = str(uuid.uuid4())
    error = rpc_error(_import, other, copy, json.dumps(document).encode(), sent)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT and words in error.details(), error.details()
    _nothing_written(stack, other, copy)


def test_media_missing_or_wrong_leaves_no_object(stack: Stack, caller: Caller, other: Caller, chat_id: str) -> None:
    media = _history(caller, chat_id)
    document = _full_export(caller, chat_id)
    sent = {hashlib.sha256(data).hexdigest(): data for data in media.values()}
    first, second, third = sent
    copy = str(uuid.uuid4())
    # Two objects stored, the third never sent: the two are discarded again.
    missing = rpc_error(_import, other, copy, document, {first: sent[first], second: sent[second]})
    assert missing.code() is grpc.StatusCode.INVALID_ARGUMENT and third in missing.details()
    _nothing_written(stack, other, copy)
    wrong = dict(sent)
    wrong[third] = bytes(len(sent[third]))  # right size, wrong bytes
    refused = rpc_error(_import, other, copy, document, wrong)
    assert refused.code() is grpc.StatusCode.INVALID_ARGUMENT and "do not hash" in refused.details()
    _nothing_written(stack, other, copy)
    not_json = rpc_error(_import, other, copy, b"{not json", {})
    assert not_json.code() is grpc.StatusCode.INVALID_ARGUMENT and "export_chunk" in str(not_json.details())
    assert rpc_error(_import, other, "not-a-uuid", document).code() is grpc.StatusCode.INVALID_ARGUMENT
    # Then the same import whole succeeds.
    assert _import(other, copy, document, sent).media_received == 3
