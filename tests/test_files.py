"""The media vault against the real embedded S3 server and PostgreSQL."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import psycopg
import pytest
from PIL import Image

from generated.timemachine.v1 import resources_pb2 as pb
from generated.timemachine.v1 import service_pb2 as api
from service import vault as vault_module
from service.database import Database
from service.errors import Cancelled, ResourceExhausted
from service.files import Files, UploadHeader
from service.models import FileSource, Identity
from service.vault import Vault
from service.writes import WriteOptions
from tests.conftest import (
    Caller,
    Stack,
    download_when_a_slot_frees,
    incomplete_uploads,
    rows,
    rpc_error,
    serving,
    upload_stream,
)

MiB = 1024 * 1024


@pytest.mark.parametrize("size", [0, 1000, 40 * MiB], ids=["empty", "small", "40MiB"])
def test_round_trip_through_stream_and_presigned_url(caller: Caller, chat_id: str, size: int) -> None:
    data = os.urandom(size)
    uploaded = caller.upload(chat_id, "blob.bin", data, chunk_size=MiB)
    digest = hashlib.sha256(data).hexdigest()
    assert uploaded.file.size_bytes == size and uploaded.file.checksum_sha256 == digest
    assert uploaded.file.version == 1 and uploaded.file.status == pb.MEDIA_STATUS_ACTIVE
    assert uploaded.snapshot.trigger == pb.SNAPSHOT_TRIGGER_FILE_UPLOADED
    assert uploaded.snapshot.file_count == 1 and uploaded.snapshot.trigger_file_id == uploaded.file.id
    meta, body = caller.download(uploaded.file.id)
    assert meta.checksum_sha256 == digest and hashlib.sha256(body).hexdigest() == digest
    url = caller.stub.GetFileDownloadUrl(
        api.GetFileDownloadUrlRequest(file_id=uploaded.file.id, expires_in_seconds=60), metadata=caller.md
    )
    assert "versionId=" in url.url
    with urllib.request.urlopen(url.url, timeout=60) as reply:
        assert hashlib.sha256(reply.read()).hexdigest() == digest


def test_versions_are_linked_and_listed_newest_first(caller: Caller, chat_id: str) -> None:
    one = caller.upload(chat_id, "notes.txt", b"first", mime_type="text/plain")
    two = caller.upload(chat_id, "notes.txt", b"second", mime_type="text/plain", source=pb.FILE_SOURCE_AI_GENERATED)
    caller.upload(chat_id, "other.txt", b"x", mime_type="text/plain")
    assert two.file.version == 2 and two.file.previous_version_id == one.file.id
    assert two.snapshot.trigger == pb.SNAPSHOT_TRIGGER_FILE_GENERATED
    versions = caller.stub.ListFileVersions(
        api.ListFileVersionsRequest(chat_id=chat_id, name="notes.txt"), metadata=caller.md
    ).versions
    assert [v.id for v in versions] == [two.file.id, one.file.id]
    assert [v.status for v in versions] == [pb.MEDIA_STATUS_ACTIVE, pb.MEDIA_STATUS_ARCHIVED]
    assert versions[1].archived_at == versions[0].created_at
    current = caller.stub.ListFiles(api.ListFilesRequest(chat_id=chat_id), metadata=caller.md).files
    assert [(f.original_name, f.version_count) for f in current] == [("notes.txt", 2), ("other.txt", 1)]
    assert caller.download(one.file.id)[1] == b"first"  # old versions stay downloadable
    timeline = caller.stub.GetTimeline(api.GetTimelineRequest(chat_id=chat_id), metadata=caller.md)
    assert timeline.total_media_bytes == len(b"first") + len(b"second") + 1
    assert timeline.current_file_count == 2


def test_soft_delete_keeps_the_object_and_history(caller: Caller, chat_id: str) -> None:
    up = caller.upload(chat_id, "a.txt", b"keep me", mime_type="text/plain")
    deleted = caller.stub.DeleteFile(api.DeleteFileRequest(chat_id=chat_id, file_id=up.file.id), metadata=caller.md)
    assert deleted.snapshot.trigger == pb.SNAPSHOT_TRIGGER_FILE_DELETED and deleted.snapshot.file_count == 0
    assert list(caller.stub.ListFiles(api.ListFilesRequest(chat_id=chat_id), metadata=caller.md).files) == []
    meta, body = caller.download(up.file.id)
    assert meta.status == pb.MEDIA_STATUS_SOFT_DELETED and body == b"keep me"
    assert [f.original_name for f in caller.at(chat_id, version=1).files] == ["a.txt"]
    again = rpc_error(
        caller.stub.DeleteFile, api.DeleteFileRequest(chat_id=chat_id, file_id=up.file.id), metadata=caller.md
    )
    assert again.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert caller.verify(chat_id).ok


def test_single_file_restore_points_at_the_same_object(stack: Stack, caller: Caller, chat_id: str) -> None:
    one = caller.upload(chat_id, "doc.txt", b"version one", mime_type="text/plain")
    caller.upload(chat_id, "doc.txt", b"version two", mime_type="text/plain")
    result = caller.restore(chat_id, one.snapshot.id, pb.RESTORE_SCOPE_SINGLE_FILE, file_ids=[one.file.id])
    assert result.files_restored == 1 and result.messages_restored == 0
    (current,) = caller.stub.ListFiles(api.ListFilesRequest(chat_id=chat_id), metadata=caller.md).files
    assert current.version == 3 and current.checksum_sha256 == one.file.checksum_sha256
    assert caller.download(current.id)[1] == b"version one"
    keys = rows(
        stack,
        caller.tenant_id,
        "select id::text, s3_key, s3_version_id from tm_files where id = any(%s::uuid[])",
        [one.file.id, current.id],
    )
    assert len({(k, v) for _, k, v in keys}) == 1  # no copy: the same S3 object version
    objects = rows(stack, caller.tenant_id, "select count(*) from tm_objects")
    assert objects == [(2,)]
    error = rpc_error(caller.restore, chat_id, one.snapshot.id, pb.RESTORE_SCOPE_SINGLE_FILE, file_ids=[current.id])
    assert error.code() == grpc.StatusCode.NOT_FOUND  # not a file version of that snapshot


def test_files_only_restore_leaves_messages(caller: Caller, chat_id: str) -> None:
    caller.save(chat_id, "hello")
    a = caller.upload(chat_id, "a.txt", b"a1", mime_type="text/plain")
    caller.upload(chat_id, "a.txt", b"a2", mime_type="text/plain")
    b = caller.upload(chat_id, "b.txt", b"b1", mime_type="text/plain")
    caller.save(chat_id, "later message")
    result = caller.restore(chat_id, a.snapshot.id, pb.RESTORE_SCOPE_FILES_ONLY)
    assert result.files_restored == 2  # a.txt back to a1, b.txt leaves the view
    now = caller.chat(chat_id)
    assert [m.content for m in now.messages] == ["hello", "later message"]
    assert [(f.original_name, caller.download(f.id)[1]) for f in now.files] == [("a.txt", b"a1")]
    versions = caller.stub.ListFileVersions(
        api.ListFileVersionsRequest(chat_id=chat_id, name="b.txt"), metadata=caller.md
    ).versions
    assert [v.id for v in versions] == [b.file.id] and versions[0].status == pb.MEDIA_STATUS_SOFT_DELETED


def test_full_chat_restore_covers_files_and_checksum(caller: Caller, chat_id: str) -> None:
    caller.save(chat_id, "m1")
    target = caller.upload(chat_id, "pic.bin", b"\x00\x01\x02", mime_type="application/octet-stream")
    caller.upload(chat_id, "pic.bin", b"changed")
    caller.upload(chat_id, "new.bin", b"new")
    caller.rename(chat_id, "renamed")
    result = caller.restore(chat_id, target.snapshot.id, pb.RESTORE_SCOPE_FULL_CHAT)
    assert result.snapshot.checksum == target.snapshot.checksum
    assert result.files_restored == 2
    at_target = caller.at(chat_id, snapshot_id=target.snapshot.id)
    now = caller.chat(chat_id)
    assert [(f.original_name, f.checksum_sha256) for f in now.files] == [
        (f.original_name, f.checksum_sha256) for f in at_target.files
    ]
    report = caller.verify(chat_id)
    assert report.ok, report.problems
    assert report.files_checked == 3


def test_same_bytes_are_stored_once(stack: Stack, caller: Caller, chat_id: str) -> None:
    data = os.urandom(100_000)
    first = caller.upload(chat_id, "one.bin", data)
    second = caller.upload(chat_id, "two.bin", data)
    assert first.file.id != second.file.id
    stored = rows(stack, caller.tenant_id, "select s3_key, s3_version_id from tm_files order by created_at")
    assert len(stored) == 2 and stored[0] == stored[1]
    assert rows(stack, caller.tenant_id, "select count(*) from tm_objects") == [(1,)]
    vault = stack.stores.vault
    prefix = f"tenants/{caller.tenant_id}/objects/"
    listed = vault.client.list_object_versions(Bucket=vault.bucket, Prefix=prefix).get("Versions", [])
    assert len(listed) == 1  # the duplicate's object version was removed again


@pytest.mark.parametrize(
    "name",
    ["../../etc/passwd", "/absolute/path.txt", "C:\\Windows\\system32", "ünïcødé 名前 ✓.txt", "n" * 1000, "%2e%2e%2f"],
)
def test_hostile_names_go_nowhere(stack: Stack, caller: Caller, chat_id: str, name: str) -> None:
    up = caller.upload(chat_id, name, b"payload")
    assert up.file.original_name == name
    assert caller.download(up.file.id)[1] == b"payload"
    ((key,),) = rows(stack, caller.tenant_id, "select s3_key from tm_files where id = %s", up.file.id)
    assert key.startswith(f"tenants/{caller.tenant_id}/objects/")
    assert name not in key and ".." not in key


def test_declared_size_and_checksum_mismatches_record_nothing(stack: Stack, caller: Caller, chat_id: str) -> None:
    caller.save(chat_id, "before")
    data = os.urandom(12 * MiB)  # large enough to go multipart
    for header in ({"size_bytes": len(data) + 1}, {"size_bytes": 10}, {"checksum_sha256": "0" * 64}):
        error = rpc_error(caller.upload, chat_id, "big.bin", data, chunk_size=MiB, **header)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, header
    assert caller.chat(chat_id).current_version == 1
    assert rows(stack, caller.tenant_id, "select count(*) from tm_files") == [(0,)]
    assert incomplete_uploads(stack) == []
    good = caller.upload(
        chat_id, "big.bin", data, chunk_size=MiB, size_bytes=len(data), checksum_sha256=hashlib.sha256(data).hexdigest()
    )
    assert good.file.size_bytes == len(data)


def test_bad_upload_headers(caller: Caller, chat_id: str) -> None:
    empty = rpc_error(caller.stub.UploadFile, iter([]), metadata=caller.md)
    assert empty.code() == grpc.StatusCode.INVALID_ARGUMENT
    no_name = rpc_error(caller.upload, chat_id, "", b"x")
    assert no_name.code() == grpc.StatusCode.INVALID_ARGUMENT
    no_source = rpc_error(caller.upload, chat_id, "a", b"x", source=pb.FILE_SOURCE_UNSPECIFIED)
    assert no_source.code() == grpc.StatusCode.INVALID_ARGUMENT
    unknown_source = rpc_error(caller.upload, chat_id, "a", b"x", source=42)
    assert unknown_source.code() == grpc.StatusCode.INVALID_ARGUMENT
    control = rpc_error(caller.upload, chat_id, "bad\nname", b"x")
    assert control.code() == grpc.StatusCode.INVALID_ARGUMENT
    too_big = rpc_error(caller.upload, chat_id, "a", b"x", size_bytes=2**40)
    assert too_big.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert rpc_error(caller.chat, chat_id).code() == grpc.StatusCode.NOT_FOUND  # nothing registered


def test_upload_over_the_limit_is_resource_exhausted(stack: Stack, caller: Caller, chat_id: str) -> None:
    """The limit holds while streaming too (checked here on a vault with a 10 MiB limit)."""
    files = Files(stack.stores.db, stack.stores.vault, max_upload_bytes=10 * MiB)
    who = Identity(uuid.UUID(caller.tenant_id), uuid.UUID(caller.user_id))
    header = UploadHeader(chat_id, "", "huge.bin", "", FileSource.USER_UPLOAD, None, "", WriteOptions())
    with pytest.raises(ResourceExhausted):
        files.upload(who, header, iter([os.urandom(MiB)] * 11))
    assert incomplete_uploads(stack) == []
    assert rows(stack, caller.tenant_id, "select count(*) from tm_files") == [(0,)]


def test_an_upload_cancelled_after_its_last_chunk_stores_nothing(stack: Stack, caller: Caller, chat_id: str) -> None:
    """gRPC may end a cancelled request stream as if it were complete; the commit asks first."""
    files = Files(stack.stores.db, stack.stores.vault, max_upload_bytes=10 * MiB)
    who = Identity(uuid.UUID(caller.tenant_id), uuid.UUID(caller.user_id))
    header = UploadHeader(chat_id, "", "late.bin", "", FileSource.USER_UPLOAD, None, "", WriteOptions())
    with pytest.raises(Cancelled):
        files.upload(who, header, iter([os.urandom(MiB)] * 2), still_wanted=lambda: False)
    assert rows(stack, caller.tenant_id, "select count(*) from tm_files") == [(0,)]
    vault = stack.stores.vault
    listed = vault.client.list_object_versions(Bucket=vault.bucket, Prefix=f"tenants/{caller.tenant_id}/")
    assert listed.get("Versions", []) == []  # the stored object version was removed again
    assert rpc_error(caller.chat, chat_id).code() == grpc.StatusCode.NOT_FOUND  # no snapshot either


def test_cancelled_upload_leaves_no_row_and_no_multipart(stack: Stack, caller: Caller, chat_id: str) -> None:
    sent, release = threading.Event(), threading.Event()

    def stalls_after_20_mib() -> Iterator[api.UploadFileRequest]:
        yield from upload_stream(chat_id, "partial.bin", os.urandom(20 * MiB), chunk_size=MiB)
        sent.set()
        release.wait(30)  # the client hangs mid-upload, then gives up

    future = caller.stub.UploadFile.future(stalls_after_20_mib(), metadata=caller.md)
    assert sent.wait(60)
    deadline = time.monotonic() + 15
    while not incomplete_uploads(stack) and time.monotonic() < deadline:
        time.sleep(0.1)  # the server has started a multipart upload
    assert incomplete_uploads(stack)
    future.cancel()
    release.set()
    with pytest.raises(grpc.FutureCancelledError):
        future.result(timeout=60)
    deadline = time.monotonic() + 15
    while incomplete_uploads(stack) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert incomplete_uploads(stack) == []
    assert rows(stack, caller.tenant_id, "select count(*) from tm_files") == [(0,)]


def test_another_tenants_file_ids_are_not_found(caller: Caller, other: Caller, chat_id: str) -> None:
    up = caller.upload(chat_id, "secret.txt", b"secret", mime_type="text/plain")
    other.save(chat_id, "same chat id, other tenant")
    assert rpc_error(other.download, up.file.id).code() == grpc.StatusCode.NOT_FOUND
    calls: list[tuple[Any, Any]] = [
        (other.stub.GetFileDownloadUrl, api.GetFileDownloadUrlRequest(file_id=up.file.id)),
        (other.stub.DeleteFile, api.DeleteFileRequest(chat_id=chat_id, file_id=up.file.id)),
        (other.stub.ListFileVersions, api.ListFileVersionsRequest(chat_id=chat_id, name="secret.txt")),
    ]
    for call, request in calls:
        assert rpc_error(call, request, metadata=other.md).code() == grpc.StatusCode.NOT_FOUND, request
    assert list(other.stub.ListFiles(api.ListFilesRequest(chat_id=chat_id), metadata=other.md).files) == []
    snapshot = caller.chat(chat_id).snapshot.id
    error = rpc_error(other.restore, chat_id, snapshot, pb.RESTORE_SCOPE_SINGLE_FILE, file_ids=[up.file.id])
    assert error.code() == grpc.StatusCode.NOT_FOUND


def test_url_lifetime_bounds(caller: Caller, chat_id: str) -> None:
    up = caller.upload(chat_id, "a", b"x")
    for seconds in (-1, 7 * 24 * 3600 + 1):
        error = rpc_error(
            caller.stub.GetFileDownloadUrl,
            api.GetFileDownloadUrlRequest(file_id=up.file.id, expires_in_seconds=seconds),
            metadata=caller.md,
        )
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    week = caller.stub.GetFileDownloadUrl(
        api.GetFileDownloadUrlRequest(file_id=up.file.id, expires_in_seconds=7 * 24 * 3600), metadata=caller.md
    )
    assert week.expires_at.seconds - time.time() > 7 * 24 * 3600 - 60


def text_pdf(text: str) -> bytes:
    """A real one-page PDF with `text` as text (made with fpdf2)."""
    from fpdf import FPDF

    document = FPDF()
    document.add_page()
    document.set_font("helvetica", size=14)
    document.cell(text=text)
    return bytes(document.output())


def test_text_is_extracted_for_search(caller: Caller, chat_id: str) -> None:
    md = caller.upload(chat_id, "plan.md", b"# Plan\nBuy *llamas*", mime_type="text/markdown")
    assert "llamas" in md.file.extracted_text
    csv = caller.upload(chat_id, "t.csv", b"name,animal\nann,okapi\n", mime_type="text/csv")
    assert "okapi" in csv.file.extracted_text
    pdf = caller.upload(chat_id, "r.pdf", text_pdf("Quarterly zebra report"), mime_type="application/pdf")
    assert "zebra" in pdf.file.extracted_text
    broken = caller.upload(chat_id, "broken.pdf", b"%PDF-1.4 garbage", mime_type="application/pdf")
    assert broken.file.extracted_text == ""  # extraction failed, the upload did not
    binary = caller.upload(chat_id, "x.bin", b"\x00\x01")
    assert binary.file.extracted_text == ""


def test_thumbnails_for_images_never_fail_uploads(stack: Stack, caller: Caller, chat_id: str) -> None:
    out = io.BytesIO()
    Image.new("RGB", (800, 600), (200, 30, 30)).save(out, format="JPEG")
    photo = caller.upload(chat_id, "photo.jpg", out.getvalue(), mime_type="image/jpeg")
    assert photo.file.preview_generated
    ((key, version),) = rows(
        stack,
        caller.tenant_id,
        "select thumbnail_s3_key, thumbnail_version_id from tm_files where id = %s",
        photo.file.id,
    )
    vault = stack.stores.vault
    thumb = vault.client.get_object(Bucket=vault.bucket, Key=key, VersionId=version)["Body"].read()
    with Image.open(io.BytesIO(thumb)) as image:
        assert max(image.size) <= 256
    bad = caller.upload(chat_id, "bad.png", b"not really a png", mime_type="image/png")
    assert not bad.file.preview_generated


def test_an_image_bomb_gets_no_thumbnail_and_still_uploads(stack: Stack, caller: Caller, chat_id: str) -> None:
    """9,000 x 9,000 pixels in a small PNG would decode to ~243 MB; it is not decoded at all."""
    out = io.BytesIO()
    Image.new("1", (9000, 9000)).save(out, format="PNG")
    assert len(out.getvalue()) < 1024 * 1024
    bomb = caller.upload(chat_id, "bomb.png", out.getvalue(), mime_type="image/png")
    assert bomb.file.size_bytes == len(out.getvalue()) and not bomb.file.preview_generated
    assert rows(stack, caller.tenant_id, "select thumbnail_s3_key from tm_files where id = %s", bomb.file.id) == [
        (None,)
    ]


def test_multipart_parts_are_one_size_whatever_the_chunks(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 20 MiB chunk used to become one 20 MiB part: memory grew with the caller's chunk size."""
    sizes: list[int] = []
    send = vault_module.ObjectWriter._send_part

    def recording(self: vault_module.ObjectWriter, part: bytes) -> None:
        sizes.append(len(part))
        send(self, part)

    monkeypatch.setattr(vault_module.ObjectWriter, "_send_part", recording)
    vault = stack.stores.vault
    writer = vault.writer(f"tests/parts-{uuid.uuid4()}", "application/octet-stream")
    data = os.urandom(20 * 1024 * 1024)
    for _ in range(2):
        writer.write(data)
    writer.write(b"tail")
    stored = writer.finish()
    part = vault_module.PART_SIZE
    assert sizes == [part] * 5 + [4]  # 40 MiB in 8 MiB parts, then the tail
    body = vault.client.get_object(Bucket=vault.bucket, Key=stored.key, VersionId=stored.version_id)["Body"].read()
    assert body == data + data + b"tail"
    vault.delete_versions([stored])


def test_verify_finds_a_missing_vault_object(stack: Stack, caller: Caller, chat_id: str) -> None:
    up = caller.upload(chat_id, "gone.bin", os.urandom(1000))
    assert caller.verify(chat_id).ok
    ((key, version),) = rows(
        stack, caller.tenant_id, "select s3_key, s3_version_id from tm_files where id = %s", up.file.id
    )
    vault = stack.stores.vault
    vault.client.delete_object(Bucket=vault.bucket, Key=key, VersionId=version)  # simulate loss behind our back
    report = caller.verify(chat_id)
    assert not report.ok and report.files_checked == 1
    assert any(p.file_id == up.file.id for p in report.problems)


def test_verify_hashes_content_only_when_asked(stack: Stack, caller: Caller, chat_id: str) -> None:
    """The default checks existence and size (cheap); check_content reads and hashes every byte."""
    up = caller.upload(chat_id, "swapped.bin", b"a" * 1000)
    vault = stack.stores.vault
    other = vault.put(f"tests/swapped-{uuid.uuid4()}", b"b" * 1000, "application/octet-stream")
    with psycopg.connect(stack.runtime.database_url) as conn, conn.transaction():
        # Bytes replaced behind our back, same size: only a content check can tell.
        conn.execute(
            "update tm_files set s3_key = %s, s3_version_id = %s where id = %s",
            (other.key, other.version_id, up.file.id),
        )
    assert caller.verify(chat_id).ok
    full = caller.stub.VerifyChat(api.VerifyChatRequest(chat_id=chat_id, check_content=True), metadata=caller.md)
    assert not full.ok and any(p.file_id == up.file.id and "sha256" in p.detail for p in full.problems)


def test_a_cancelled_content_check_gives_its_slot_back(
    stack: Stack, caller: Caller, chat_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """VerifyChat holds a transfer slot, and lets it go when its caller leaves."""
    caller.upload(chat_id, "big.bin", os.urandom(16 * 1024 * 1024))
    vault = stack.stores.vault
    read = vault.read

    def slow_read(key: str, version_id: str) -> Iterator[bytes]:  # the real bytes, at a slow link's pace
        for chunk in read(key, version_id):
            time.sleep(0.2)
            yield chunk

    monkeypatch.setattr(vault, "read", slow_read)
    small = caller.upload(chat_id, "small.bin", b"small").file.id
    with serving(stack, grpc_workers=2) as served:  # one transfer slot
        request = api.VerifyChatRequest(chat_id=chat_id, check_content=True)
        running = served.stub.VerifyChat.future(request, metadata=caller.md)
        time.sleep(0.3)
        with pytest.raises(grpc.RpcError) as busy:
            list(served.stub.DownloadFile(api.DownloadFileRequest(file_id=small), metadata=caller.md))
        assert busy.value.code() == grpc.StatusCode.UNAVAILABLE  # the verification holds the slot
        running.cancel()
        assert download_when_a_slot_frees(served.stub, small, caller.md, within=5) == b"small"


def test_vault_turns_versioning_on_at_start(stack: Stack) -> None:
    client = stack.stores.vault.client
    bucket = f"tm-check-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    Vault(client, bucket).open(wait_seconds=10)
    assert client.get_bucket_versioning(Bucket=bucket).get("Status") == "Enabled"
    Vault(client, f"tm-new-{uuid.uuid4().hex[:12]}").open(wait_seconds=10)  # a missing bucket is created, versioned


def test_file_listings_page_and_leave_text_out_unless_asked(caller: Caller, chat_id: str) -> None:
    """ListFiles and ListFileVersions page (AIP-158), and carry extracted_text only in the FULL view."""
    text = "🙂" * 100_000  # the most extracted text a file keeps: 400 KB of UTF-8
    for i in range(10):
        caller.upload(chat_id, f"notes-{i}.txt", text.encode(), mime_type="text/plain")
    basic = caller.stub.ListFiles(api.ListFilesRequest(chat_id=chat_id), metadata=caller.md)
    assert [f.original_name for f in basic.files] == [f"notes-{i}.txt" for i in range(10)]
    assert all(f.extracted_text == "" for f in basic.files) and basic.next_page_token == ""
    # FULL: ten 400 KB texts would pass a client's 4 MiB limit; a page stops before 3 MiB.
    names: list[str] = []
    token = ""
    pages = 0
    while True:
        page = caller.stub.ListFiles(
            api.ListFilesRequest(chat_id=chat_id, view=pb.FILE_VIEW_FULL, page_token=token), metadata=caller.md
        )
        assert page.ByteSize() < 3.5 * 1024 * 1024
        assert all(f.extracted_text == text for f in page.files)
        names += [f.original_name for f in page.files]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert names == [f"notes-{i}.txt" for i in range(10)] and pages >= 2
    small = caller.stub.ListFiles(api.ListFilesRequest(chat_id=chat_id, page_size=4), metadata=caller.md)
    assert len(small.files) == 4 and small.next_page_token
    # A token is bound to its request.
    error = rpc_error(
        caller.stub.ListFiles,
        api.ListFilesRequest(chat_id=chat_id, view=pb.FILE_VIEW_FULL, page_token=small.next_page_token),
        metadata=caller.md,
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    bad_view = rpc_error(caller.stub.ListFiles, api.ListFilesRequest(chat_id=chat_id, view=7), metadata=caller.md)  # type: ignore[arg-type]
    assert bad_view.code() == grpc.StatusCode.INVALID_ARGUMENT
    for i in range(4):
        caller.upload(chat_id, "notes-0.txt", f"version {i}".encode(), mime_type="text/plain")
    versions: list[int] = []
    token = ""
    while True:
        page = caller.stub.ListFileVersions(
            api.ListFileVersionsRequest(chat_id=chat_id, name="notes-0.txt", page_size=2, page_token=token),
            metadata=caller.md,
        )
        versions += [v.version for v in page.versions]
        token = page.next_page_token
        if not token:
            break
    assert versions == [5, 4, 3, 2, 1]


def test_a_commit_lost_in_flight_never_deletes_what_it_committed(
    stack: Stack, caller: Caller, chat_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database commits, then the connection fails before it says so.

    The upload used to delete the object version its committed row names, so
    the file could not be read and every later upload of the same bytes was
    deduplicated onto nothing.
    """
    data = os.urandom(100_000)
    armed = threading.Event()
    commit = Database.commit

    def lost_after_commit(conn: psycopg.Connection[Any]) -> None:
        commit(conn)
        if armed.is_set():
            armed.clear()
            raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(Database, "commit", staticmethod(lost_after_commit))
    armed.set()
    first = caller.upload(chat_id, "kept.bin", data)  # committed: answered as such
    monkeypatch.undo()
    assert not armed.is_set(), "the fault was never injected"
    assert caller.download(first.file.id)[1] == data
    again = caller.upload(chat_id, "again.bin", data)  # deduplicated onto the kept object
    assert caller.download(again.file.id)[1] == data
    assert caller.verify(chat_id).ok
