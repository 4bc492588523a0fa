"""Exports opened with real readers: json, zipfile, pypdf, html.parser."""

from __future__ import annotations

import gc
import hashlib
import io
import json
import os
import threading
import time
import urllib.request
import uuid
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import replace
from html.parser import HTMLParser
from typing import Any

import grpc
import psycopg
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from pypdf import PdfReader

from generated.timemachine.v1 import resources_pb2 as pb
from generated.timemachine.v1 import service_pb2 as api
from generated.timemachine.v1 import service_pb2_grpc
from server.app import App, Stores
from service.config import Settings
from service.database import Database
from service.errors import ResourceExhausted
from service.export.bundles import MAX_ATTEMPTS, ExportWorker
from service.export.exporter import Exporter, ExportRequest
from service.models import Identity
from tests.bulk import load_bulk_chat
from tests.conftest import Caller, Stack, rpc_error

MiB = 1024 * 1024


def export(
    caller: Caller, chat_id: str, fmt: pb.ExportFormat.ValueType, **kw: Any
) -> tuple[api.ExportChatResponse, bytes]:
    replies = list(caller.stub.ExportChat(api.ExportChatRequest(chat_id=chat_id, format=fmt, **kw), metadata=caller.md))
    head, body, tail = replies[0], replies[1:-1], replies[-1]
    assert head.file_name and head.mime_type and not head.chunk
    assert all(0 < len(r.chunk) <= MiB for r in body)
    data = b"".join(r.chunk for r in body)
    assert tail.size_bytes == len(data) and tail.sha256 == hashlib.sha256(data).hexdigest()
    return head, data


def sample_chat(caller: Caller, chat_id: str) -> dict[str, Any]:
    caller.rename(chat_id, "Trip planning")
    question = caller.save(chat_id, "Where should we go? Ωμέγα Привет 東京")
    answer = caller.save(chat_id, "Lisbon!", role=pb.MESSAGE_ROLE_ASSISTANT, model_id="gpt-x")
    caller.edit(chat_id, answer.message.message_id, "Lisbon, in May.", edit_reason="more detail")
    doomed = caller.save(chat_id, "never mind this")
    caller.delete(chat_id, doomed.message.message_id)
    return {"question": question, "answer": answer, "doomed": doomed}


def test_json_is_the_reference_export(caller: Caller, chat_id: str) -> None:
    sample_chat(caller, chat_id)
    caller.upload(chat_id, "plan.txt", b"day one: tram 28", mime_type="text/plain")
    head, data = export(caller, chat_id, pb.EXPORT_FORMAT_JSON)
    assert head.mime_type == "application/json" and head.file_name.endswith(".json")
    doc = json.loads(data)
    assert doc["format_version"] == 1 and doc["chat"] == {"id": chat_id, "title": "Trip planning"}
    assert [m["content"] for m in doc["messages"]] == ["Where should we go? Ωμέγα Привет 東京", "Lisbon, in May."]
    assert [m["role"] for m in doc["messages"]] == ["user", "assistant"]
    assert doc["messages"][1]["model_id"] == "gpt-x" and doc["messages"][1]["version"] == 2
    assert "versions" not in doc["messages"][0]
    assert [(f["name"], f["size_bytes"]) for f in doc["files"]] == [("plan.txt", 16)]
    assert doc["files"][0]["sha256"] == hashlib.sha256(b"day one: tram 28").hexdigest()
    assert doc["snapshot"]["version"] == caller.chat(chat_id).current_version


def test_version_history_and_deleted_messages(caller: Caller, chat_id: str) -> None:
    sample = sample_chat(caller, chat_id)
    _, data = export(caller, chat_id, pb.EXPORT_FORMAT_JSON, include_version_history=True)
    doc = json.loads(data)
    by_id = {m["message_id"]: m for m in doc["messages"]}
    answer = by_id[sample["answer"].message.message_id]
    assert [v["content"] for v in answer["versions"]] == ["Lisbon!", "Lisbon, in May."]
    assert answer["versions"][1]["edit_reason"] == "more detail"
    doomed = by_id[sample["doomed"].message.message_id]
    assert doomed["deleted"] and doomed["content"] == "never mind this"
    assert doomed["versions"][-1]["deleted"]
    # From a snapshot on: only the changes since it.
    since = sample["answer"].snapshot.id
    _, data = export(caller, chat_id, pb.EXPORT_FORMAT_JSON, include_version_history=True, from_snapshot_id=since)
    doc = json.loads(data)
    by_id = {m["message_id"]: m for m in doc["messages"]}
    assert by_id[sample["question"].message.message_id]["versions"] == []
    assert [v["content"] for v in by_id[sample["answer"].message.message_id]["versions"]] == ["Lisbon, in May."]
    assert doc["range"]["from_snapshot_id"] == since


def test_a_past_snapshot_exports_the_chat_as_it_was(caller: Caller, chat_id: str) -> None:
    sample = sample_chat(caller, chat_id)
    past = sample["answer"].snapshot
    _, data = export(caller, chat_id, pb.EXPORT_FORMAT_JSON, to_snapshot_id=past.id)
    doc = json.loads(data)
    assert [m["content"] for m in doc["messages"]] == ["Where should we go? Ωμέγα Привет 東京", "Lisbon!"]
    assert doc["snapshot"]["id"] == past.id and doc["snapshot"]["checksum"] == past.checksum
    _, markdown = export(caller, chat_id, pb.EXPORT_FORMAT_MARKDOWN, to_snapshot_id=past.id)
    assert "Lisbon!" in markdown.decode() and "in May" not in markdown.decode()


def test_markdown_reads_as_plain_text(caller: Caller, chat_id: str) -> None:
    sample_chat(caller, chat_id)
    head, data = export(caller, chat_id, pb.EXPORT_FORMAT_MARKDOWN, include_version_history=True)
    text = data.decode()
    assert head.mime_type.startswith("text/markdown")
    assert text.startswith("# Trip planning\n")
    assert "### 1. User" in text and "### 2. Assistant · gpt-x" in text
    assert "Lisbon, in May." in text and "> Lisbon!" in text
    assert "**deleted**" in text and "> never mind this" in text


class _Html(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_is_self_contained_and_escaped(caller: Caller, chat_id: str) -> None:
    caller.save(chat_id, "<script>alert('pwned')</script> & <img src=x onerror=alert(1)>")
    caller.upload(chat_id, "a.txt", b"x")
    _, data = export(caller, chat_id, pb.EXPORT_FORMAT_HTML)
    parser = _Html()
    parser.feed(data.decode())
    tags = [t for t, _ in parser.tags]
    assert "script" not in tags and "img" not in tags and "link" not in tags and "iframe" not in tags
    assert "<script>alert('pwned')</script> & <img src=x onerror=alert(1)>" in "".join(parser.text)
    for _, attrs in parser.tags:
        for name, value in attrs.items():
            assert not (value or "").startswith(("http:", "https:", "//")), (name, value)
            assert not name.startswith("on")
    assert "style" in tags and ("meta", {"charset": "utf-8"}) in parser.tags


def test_pdf_has_real_text_in_several_scripts(caller: Caller, chat_id: str) -> None:
    caller.rename(chat_id, "Polyglot")
    caller.save(chat_id, "Hello in English, Ελληνικά γράμματα, русский текст, 日本語のテキスト")
    head, data = export(caller, chat_id, pb.EXPORT_FORMAT_PDF)
    assert head.mime_type == "application/pdf" and data.startswith(b"%PDF")
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)
    assert "Polyglot" in text and "Hello in English" in text
    assert "Ελληνικά" in text and "русский" in text
    assert "日" in text and "本" in text and "語" in text


def test_zip_has_documents_media_and_manifest(caller: Caller, chat_id: str) -> None:
    sample_chat(caller, chat_id)
    first = b"first file " * 1000
    uploads = {
        "notes/../../etc/passwd": first,
        "passwd": b"second, same safe name",
        "CON?.txt": bytes(range(256)) * 10,
    }
    for name, body in uploads.items():
        caller.upload(chat_id, name, body)
    head, data = export(caller, chat_id, pb.EXPORT_FORMAT_ZIP, include_media=True)
    assert head.mime_type == "application/zip"
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        names = archive.namelist()
        assert names[:3] == ["chat.json", "chat.md", "chat.html"] and names[-1] == "manifest.json"
        media = [n for n in names if n.startswith("media/")]
        assert len(media) == 3 and len(set(n.lower() for n in media)) == 3
        assert all(".." not in n.split("/") and "?" not in n for n in media)
        doc = json.loads(archive.read("chat.json"))
        by_name = {f["name"]: f["path"] for f in doc["files"]}
        for name, body in uploads.items():
            assert archive.read(by_name[name]) == body
        manifest = json.loads(archive.read("manifest.json"))
        listed = {e["path"]: e["sha256"] for e in manifest["entries"]}
        assert set(listed) == set(names) - {"manifest.json"}
        for path, digest in listed.items():
            assert hashlib.sha256(archive.read(path)).hexdigest() == digest
    _, without = export(caller, chat_id, pb.EXPORT_FORMAT_ZIP)
    with zipfile.ZipFile(io.BytesIO(without)) as archive:
        assert not any(n.startswith("media/") for n in archive.namelist())


def test_recorded_crc32_goes_in_the_header_and_old_objects_still_export(
    stack: Stack, caller: Caller, chat_id: str
) -> None:
    caller.save(chat_id, "two files")
    recorded, legacy = os.urandom(3 * MiB + 17), os.urandom(MiB // 2)
    caller.upload(chat_id, "recorded.bin", recorded)
    caller.upload(chat_id, "legacy.bin", legacy)
    with psycopg.connect(stack.runtime.database_url) as conn, conn.transaction():
        conn.execute("select set_config('app.current_tenant_id', %s, true)", (caller.tenant_id,))
        crcs: dict[str, int] = dict(
            conn.execute("select sha256, crc32 from tm_objects where tenant_id = %s", (caller.tenant_id,))
        )
        assert crcs == {hashlib.sha256(b).hexdigest(): zlib.crc32(b) for b in (recorded, legacy)}
        # As if stored before migration 005 recorded CRCs.
        conn.execute("update tm_objects set crc32 = null where sha256 = %s", (hashlib.sha256(legacy).hexdigest(),))
    _, data = export(caller, chat_id, pb.EXPORT_FORMAT_ZIP, include_media=True)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        assert archive.read("media/recorded.bin") == recorded and archive.read("media/legacy.bin") == legacy
        assert not archive.getinfo("media/recorded.bin").flag_bits & 0x08  # CRC and size up front
        assert archive.getinfo("media/legacy.bin").flag_bits & 0x08  # computed on the way, in a descriptor


def test_a_stored_object_of_the_wrong_size_is_data_loss_not_retry(stack: Stack, caller: Caller, chat_id: str) -> None:
    """A permanent fault: it used to be UNAVAILABLE with RetryInfo, so clients retried forever."""
    up = caller.upload(chat_id, "data.bin", os.urandom(64 * 1024))
    with psycopg.connect(stack.runtime.database_url) as conn, conn.transaction():
        conn.execute("select set_config('app.current_tenant_id', %s, true)", (caller.tenant_id,))
        conn.execute("update tm_files set size_bytes = size_bytes + 1 where id = %s", (up.file.id,))
    stream = caller.stub.ExportChat(
        api.ExportChatRequest(chat_id=chat_id, format=pb.EXPORT_FORMAT_ZIP, include_media=True), metadata=caller.md
    )
    error = rpc_error(list, stream)
    assert error.code() == grpc.StatusCode.DATA_LOSS, error.details()
    status = rpc_status.from_call(error)
    retry = error_details_pb2.RetryInfo()
    assert status is None or not any(d.Unpack(retry) for d in status.details)


def test_a_large_chat_exports_in_every_text_format(stack: Stack, caller: Caller, chat_id: str) -> None:
    """5,000 messages with 2 versions each: several chunks, every message in order, PDF text on its pages."""
    load_bulk_chat(stack.runtime.database_url, uuid.UUID(caller.tenant_id), uuid.UUID(chat_id), 5000, 2)
    _, data = export(caller, chat_id, pb.EXPORT_FORMAT_JSON, include_version_history=True)
    assert len(data) > 2 * MiB  # several chunks
    doc = json.loads(data)
    assert len(doc["messages"]) == 5000
    assert [m["content"].rsplit(" ", 1)[-1] for m in doc["messages"][:3]] == ["5001", "5002", "5003"]
    first = doc["messages"][0]["versions"]
    assert [(v["version"], v["content"].rsplit(" ", 1)[-1]) for v in first] == [(1, "1"), (2, "5001")]
    assert all(len(m["versions"]) == 2 for m in doc["messages"])
    _, markdown = export(caller, chat_id, pb.EXPORT_FORMAT_MARKDOWN)
    assert markdown.decode().count("text number") == 5000
    _, pdf = export(caller, chat_id, pb.EXPORT_FORMAT_PDF)
    pages = PdfReader(io.BytesIO(pdf)).pages
    assert len(pages) > 50
    assert "text number 10000" in pages[-1].extract_text()


def helper_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(("lookahead", "prefetch", "digest"))]


def test_many_media_files_stream_in_order_and_a_cancel_leaves_no_threads(caller: Caller, chat_id: str) -> None:
    caller.save(chat_id, "an album")
    album = {f"photo-{i}.jpg": os.urandom(1500 * 1024 if i % 4 == 0 else 20_000 + i) for i in range(12)}
    for name, body in album.items():
        caller.upload(chat_id, name, body)
    _, data = export(caller, chat_id, pb.EXPORT_FORMAT_ZIP, include_media=True)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        media = [n for n in archive.namelist() if n.startswith("media/")]
        assert media == sorted(media) and len(media) == 12  # the archive keeps the files' order
        assert all(archive.read(f"media/{name}") == body for name, body in album.items())
    before = helper_threads()
    stream = caller.stub.ExportChat(
        api.ExportChatRequest(chat_id=chat_id, format=pb.EXPORT_FORMAT_ZIP, include_media=True), metadata=caller.md
    )
    next(stream), next(stream), next(stream)  # the header and the first chunks, then the caller goes
    stream.cancel()
    deadline = time.monotonic() + 10
    while helper_threads() != before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert helper_threads() == before


def test_a_pdf_of_more_text_than_the_limit_is_refused(stack: Stack, caller: Caller, chat_id: str) -> None:
    for n in range(3):
        caller.save(chat_id, f"message {n} " + "words " * 100)
    small = Exporter(stack.stores.db, stack.stores.vault, pdf_max_text_bytes=1000)
    who = Identity(uuid.UUID(caller.tenant_id), uuid.UUID(caller.user_id))
    request = ExportRequest(chat_id, "pdf", False, False, "", "")
    with pytest.raises(ResourceExhausted, match="export HTML, Markdown or JSON instead"):
        small.render(small.plan(who, request))
    html = small.render(small.plan(who, ExportRequest(chat_id, "html", False, False, "", "")))
    assert b"message 2" in b"".join(html)  # other formats have no such limit
    roomy = Exporter(stack.stores.db, stack.stores.vault, pdf_max_text_bytes=10_000)
    assert b"".join(roomy.render(roomy.plan(who, request))).startswith(b"%PDF")


@pytest.mark.parametrize("kind", ["zip", "json"])
def test_an_export_closed_unread_frees_what_it_holds(stack: Stack, caller: Caller, chat_id: str, kind: str) -> None:
    """Its caller left before the first chunk, or the vault refused the bundle's upload: the stream is
    closed unread. Before, its spooled files stayed open until the garbage collector found them (a
    ResourceWarning each, which failed a fault test's run)."""
    caller.save(chat_id, "hello " * 100)
    caller.upload(chat_id, "a.bin", b"x" * 1000)
    exporter = Exporter(stack.stores.db, stack.stores.vault)
    who = Identity(uuid.UUID(caller.tenant_id), uuid.UUID(caller.user_id))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        stream = exporter.render(exporter.plan(who, ExportRequest(chat_id, kind, True, False, "", "")))
        stream.close()
        del stream
        gc.collect()
    assert not [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


def test_bad_export_requests(caller: Caller, other: Caller, chat_id: str) -> None:
    sample = sample_chat(caller, chat_id)
    no_format = rpc_error(list, caller.stub.ExportChat(api.ExportChatRequest(chat_id=chat_id), metadata=caller.md))
    assert no_format.code() == grpc.StatusCode.INVALID_ARGUMENT
    backwards = api.ExportChatRequest(
        chat_id=chat_id,
        format=pb.EXPORT_FORMAT_JSON,
        from_snapshot_id=caller.chat(chat_id).snapshot.id,
        to_snapshot_id=sample["question"].snapshot.id,
    )
    assert rpc_error(list, caller.stub.ExportChat(backwards, metadata=caller.md)).code() == (
        grpc.StatusCode.INVALID_ARGUMENT
    )
    theirs = api.ExportChatRequest(chat_id=chat_id, format=pb.EXPORT_FORMAT_JSON)
    assert rpc_error(list, other.stub.ExportChat(theirs, metadata=other.md)).code() == grpc.StatusCode.NOT_FOUND


# -- background bundles -----------------------------------------------------------


@pytest.fixture
def exporter(stack: Stack) -> Exporter:
    return Exporter(stack.stores.db, stack.stores.vault)


def worker(stack: Stack, exporter: Exporter, lease: int = 60) -> ExportWorker:
    return ExportWorker(stack.stores.db, stack.stores.vault, exporter, lease_seconds=lease, poll_seconds=0.1)


def create(caller: Caller, chat_id: str, **kw: Any) -> pb.ExportBundle:
    request = api.CreateExportRequest(chat_id=chat_id, **kw)
    return caller.stub.CreateExport(request, metadata=caller.md).bundle


def get(caller: Caller, bundle_id: str) -> pb.ExportBundle:
    return caller.stub.GetExport(api.GetExportRequest(bundle_id=bundle_id), metadata=caller.md).bundle


def wait_for(caller: Caller, bundle_id: str, status: int, timeout: float = 60) -> pb.ExportBundle:
    deadline = time.monotonic() + timeout
    while (bundle := get(caller, bundle_id)).status != status:
        assert time.monotonic() < deadline, f"bundle stuck in {pb.ExportStatus.Name(bundle.status)}"
        time.sleep(0.1)
    return bundle


def download(caller: Caller, bundle_id: str) -> Iterator[api.DownloadExportResponse]:
    return caller.stub.DownloadExport(api.DownloadExportRequest(bundle_id=bundle_id), metadata=caller.md)


def test_background_export_end_to_end(stack: Stack, exporter: Exporter, caller: Caller, chat_id: str) -> None:
    sample_chat(caller, chat_id)
    caller.upload(chat_id, "map.bin", b"\x01" * 5000)
    bundle = create(caller, chat_id, format=pb.EXPORT_FORMAT_ZIP, include_media=True)
    assert bundle.status == pb.EXPORT_STATUS_PENDING and not bundle.download_url
    assert bundle.expires_at.seconds - bundle.created_at.seconds == 7 * 24 * 3600
    caller.save(chat_id, "written after the export was requested")
    background = worker(stack, exporter)
    background.start()
    try:
        ready = wait_for(caller, bundle.id, pb.EXPORT_STATUS_READY)
    finally:
        background.stop()
    assert ready.size_bytes > 0 and ready.completed_at.seconds and ready.download_url
    with urllib.request.urlopen(ready.download_url, timeout=30) as reply:
        via_url = reply.read()
    assert hashlib.sha256(via_url).hexdigest() == ready.sha256
    replies = list(download(caller, bundle.id))
    body = b"".join(r.chunk for r in replies[1:-1])
    assert (
        replies[0].file_name == ready.file_name
        and replies[-1].sha256 == ready.sha256 == hashlib.sha256(body).hexdigest()
    )
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        contents = [m["content"] for m in json.loads(archive.read("chat.json"))["messages"]]
    assert "written after the export was requested" not in contents  # pinned to the head at CreateExport
    assert get(caller, bundle.id).download_count == 1


def test_a_killed_workers_bundle_is_finished_by_another(
    stack: Stack, exporter: Exporter, caller: Caller, chat_id: str
) -> None:
    sample_chat(caller, chat_id)
    bundle = create(caller, chat_id, format=pb.EXPORT_FORMAT_JSON)
    doomed = worker(stack, exporter, lease=1)
    claimed = doomed.claim()
    assert claimed is not None and str(claimed[0]) == bundle.id
    assert get(caller, bundle.id).status == pb.EXPORT_STATUS_PROCESSING
    # The doomed worker dies here without a word. Another one takes over once the lease runs out.
    survivor = worker(stack, exporter, lease=1)
    survivor.start()
    try:
        ready = wait_for(caller, bundle.id, pb.EXPORT_STATUS_READY, timeout=30)
    finally:
        survivor.stop()
    # If the first worker comes back, its late result does not replace the finished one.
    doomed.render(*claimed)
    assert get(caller, bundle.id).sha256 == ready.sha256
    replies = list(download(caller, bundle.id))
    assert json.loads(b"".join(r.chunk for r in replies[1:-1]))["chat"]["title"] == "Trip planning"


def test_expired_bundles_are_not_served(stack: Stack, exporter: Exporter, caller: Caller, chat_id: str) -> None:
    caller.save(chat_id, "short-lived")
    bundle = create(caller, chat_id, format=pb.EXPORT_FORMAT_MARKDOWN, expires_in_seconds=2)
    assert worker(stack, exporter).run_once()
    assert get(caller, bundle.id).status == pb.EXPORT_STATUS_READY
    time.sleep(2.2)
    expired = get(caller, bundle.id)
    assert expired.status == pb.EXPORT_STATUS_EXPIRED and expired.download_url == ""
    assert rpc_error(list, download(caller, bundle.id)).code() == grpc.StatusCode.FAILED_PRECONDITION


def test_failing_bundle_ends_failed_with_a_message(
    stack: Stack, exporter: Exporter, caller: Caller, chat_id: str
) -> None:
    caller.upload(chat_id, "lost.bin", b"soon gone")
    bundle = create(caller, chat_id, format=pb.EXPORT_FORMAT_ZIP, include_media=True)
    vault = stack.stores.vault
    row = vault.client.list_object_versions(Bucket=vault.bucket, Prefix=f"tenants/{caller.tenant_id}/objects/")
    for version in row.get("Versions", []):  # simulate a vault that lost the object
        vault.client.delete_object(Bucket=vault.bucket, Key=version["Key"], VersionId=version["VersionId"])
    failing = worker(stack, exporter)
    for _ in range(3):
        assert failing.run_once()
    failed = get(caller, bundle.id)
    assert failed.status == pb.EXPORT_STATUS_FAILED and "missing" in failed.error_message
    assert rpc_error(list, download(caller, bundle.id)).code() == grpc.StatusCode.FAILED_PRECONDITION


def test_a_bundle_too_large_for_a_pdf_fails_at_once(stack: Stack, caller: Caller, chat_id: str) -> None:
    caller.save(chat_id, "words " * 500)
    bundle = create(caller, chat_id, format=pb.EXPORT_FORMAT_PDF)
    small = Exporter(stack.stores.db, stack.stores.vault, pdf_max_text_bytes=1000)
    busy = worker(stack, small)
    assert busy.run_once()
    failed = get(caller, bundle.id)  # after one attempt, not queued again: it would fail the same way
    assert failed.status == pb.EXPORT_STATUS_FAILED and "HTML, Markdown or JSON" in failed.error_message


def test_another_tenants_bundles_are_not_found(stack: Stack, caller: Caller, other: Caller, chat_id: str) -> None:
    caller.save(chat_id, "mine")
    bundle = create(caller, chat_id, format=pb.EXPORT_FORMAT_JSON)
    assert rpc_error(get, other, bundle.id).code() == grpc.StatusCode.NOT_FOUND
    assert rpc_error(list, download(other, bundle.id)).code() == grpc.StatusCode.NOT_FOUND
    assert rpc_error(create, other, chat_id, format=pb.EXPORT_FORMAT_JSON).code() == grpc.StatusCode.NOT_FOUND
    assert rpc_error(get, caller, "nope").code() == grpc.StatusCode.INVALID_ARGUMENT


def only_queued(stack: Stack, tenant_id: str) -> None:
    """The queue is shared by every tenant: end other tests' leftover bundles, so claims here are ours."""
    with psycopg.connect(stack.runtime.database_url) as conn, conn.transaction():
        conn.execute(
            "update tm_export_bundles set status = 'failed', lease_expires_at = null"
            " where status in ('pending', 'processing') and tenant_id <> %s",
            (tenant_id,),
        )


def test_a_bundle_that_kills_its_workers_fails_instead_of_crash_looping(
    stack: Stack, exporter: Exporter, caller: Caller, chat_id: str
) -> None:
    """Each claim counts; after the last attempt the bundle fails rather than taking down every replica."""
    only_queued(stack, caller.tenant_id)
    sample_chat(caller, chat_id)
    bundle = create(caller, chat_id, format=pb.EXPORT_FORMAT_JSON)
    for _ in range(MAX_ATTEMPTS):  # each worker dies (out of memory, say) right after claiming
        claimed = worker(stack, exporter, lease=1).claim()
        assert claimed is not None and str(claimed[0]) == bundle.id
        time.sleep(1.2)
    assert worker(stack, exporter, lease=1).claim() is None  # before: claimed a fourth time, and so on
    failed = get(caller, bundle.id)
    assert failed.status == pb.EXPORT_STATUS_FAILED and "died" in failed.error_message


def test_a_long_render_keeps_its_lease(
    stack: Stack, exporter: Exporter, caller: Caller, chat_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lease used to be renewed only while uploading: a render longer than it was claimed again."""
    only_queued(stack, caller.tenant_id)
    sample_chat(caller, chat_id)
    bundle = create(caller, chat_id, format=pb.EXPORT_FORMAT_JSON)
    render = exporter.render

    def slow_render(plan: Any, *rest: Any) -> Any:
        time.sleep(3)  # three leases long
        return render(plan, *rest)

    monkeypatch.setattr(exporter, "render", slow_render)
    first = worker(stack, exporter, lease=1)
    first.start()
    try:
        deadline = time.monotonic() + 10
        while get(caller, bundle.id).status != pb.EXPORT_STATUS_PROCESSING:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(2)  # past the first lease
        assert worker(stack, exporter, lease=1).claim() is None
        ready = wait_for(caller, bundle.id, pb.EXPORT_STATUS_READY, timeout=30)
    finally:
        first.stop()
    assert ready.status == pb.EXPORT_STATUS_READY


def test_a_tenant_cannot_fill_the_export_queue(stack: Stack, caller: Caller, chat_id: str) -> None:
    caller.save(chat_id, "queued")
    bundles = [create(caller, chat_id, format=pb.EXPORT_FORMAT_JSON) for _ in range(20)]
    try:
        error = rpc_error(
            caller.stub.CreateExport,
            api.CreateExportRequest(chat_id=chat_id, format=pb.EXPORT_FORMAT_JSON),
            metadata=caller.md,
        )
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "ExportChat" in (error.details() or "")
    finally:  # leave no queue behind for other tests' workers
        with psycopg.connect(stack.runtime.database_url) as conn, conn.transaction():
            conn.execute(
                "update tm_export_bundles set status = 'failed' where id = any(%s)", ([b.id for b in bundles],)
            )


def test_a_cancelled_export_stops_rendering_and_gives_its_connection_back(
    stack: Stack, caller: Caller, chat_id: str
) -> None:
    """It used to render to the end, holding a pool connection, after its caller had left."""
    load_bulk_chat(stack.runtime.database_url, uuid.UUID(caller.tenant_id), uuid.UUID(chat_id), 5000, 2)
    db = Database(stack.runtime.database_url, min_size=1, max_size=1)  # one connection: a render holds it
    db.open()
    settings = replace(Settings.from_env(), grpc_address="127.0.0.1:0", export_workers=0, sweeper_interval_seconds=0)
    app = App(settings, Stores(db=db, vault=stack.stores.vault))
    app.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{app.port}")
    stub = service_pb2_grpc.TimeMachineServiceStub(channel)
    try:
        request = api.ExportChatRequest(chat_id=chat_id, format=pb.EXPORT_FORMAT_PDF, include_version_history=True)
        export = stub.ExportChat(request, metadata=caller.md)
        time.sleep(1.0)  # rendering: 10,000 versions into a PDF takes many seconds here
        export.cancel()
        started = time.monotonic()
        reply = stub.GetTimeline(api.GetTimelineRequest(chat_id=chat_id, page_size=1), metadata=caller.md)
        assert reply.current_version == 10_000 and time.monotonic() - started < 3
    finally:
        channel.close()
        app.stop(grace=1)
        db.close()
