"""Messages and their files: references from message versions to file versions, kept as they were."""

from __future__ import annotations

import base64
import io
import json
import re
import uuid
import zipfile
from typing import Any

import grpc
from PIL import Image
from pypdf import PdfReader

from generated.timemachine.v1 import resources_pb2 as pb
from generated.timemachine.v1 import service_pb2 as api
from tests.conftest import Caller, rpc_error, save_with_image
from tests.test_export import export

ATTACHMENT, RESULT = pb.REFERENCE_TYPE_ATTACHMENT, pb.REFERENCE_TYPE_RESULT


def _refs(message: Any) -> list[tuple[str, int, int, int]]:
    return [(a.file_name, a.file_version, a.reference_type, a.display_order) for a in message.attachments]


def test_references_keep_their_file_version_through_edits_deletes_restores_and_exports(
    caller: Caller, chat_id: str
) -> None:
    report = caller.upload(chat_id, "report.pdf", b"%PDF version one", mime_type="application/pdf").file
    caller.upload(chat_id, "chart.png", b"not really a png", mime_type="image/png")
    saved = caller.save(
        chat_id,
        "Here is the report",
        attachments=[
            pb.Attachment(file_id=report.id, reference_type=ATTACHMENT, display_order=1),
            pb.Attachment(file_name="chart.png", reference_type=RESULT, display_order=2),
        ],
    )
    assert _refs(saved.message) == [("report.pdf", 1, ATTACHMENT, 1), ("chart.png", 1, RESULT, 2)]
    assert saved.message.attachments[0].file_id == report.id and saved.message.attachments[0].size_bytes == 16
    message_id, first = saved.message.message_id, saved.snapshot
    # The file moves on: the reference still names version 1.
    second = caller.upload(chat_id, "report.pdf", b"%PDF version two", mime_type="application/pdf").file
    assert _refs(caller.chat(chat_id).messages[0]) == [("report.pdf", 1, ATTACHMENT, 1), ("chart.png", 1, RESULT, 2)]
    # An edit without references keeps them; one with references replaces them.
    kept = caller.edit(chat_id, message_id, "Here is the report, edited")
    assert _refs(kept.message) == _refs(saved.message)
    replaced = caller.edit(
        chat_id,
        message_id,
        "Only the new report now",
        attachments=[pb.Attachment(file_name="report.pdf", reference_type=ATTACHMENT, display_order=0)],
    )
    assert _refs(replaced.message) == [("report.pdf", 2, ATTACHMENT, 0)]
    # DeleteFile breaks nothing: the version stays readable through the reference.
    caller.stub.DeleteFile(api.DeleteFileRequest(chat_id=chat_id, file_id=second.id), metadata=caller.md)
    assert _refs(caller.chat(chat_id).messages[0]) == [("report.pdf", 2, ATTACHMENT, 0)]
    assert caller.download(second.id)[1] == b"%PDF version two"
    at_first = caller.at(chat_id, snapshot_id=first.id).messages[0]
    assert _refs(at_first) == [("report.pdf", 1, ATTACHMENT, 1), ("chart.png", 1, RESULT, 2)]
    assert caller.download(at_first.attachments[0].file_id)[1] == b"%PDF version one"
    # A restore brings the references back with the message.
    restored = caller.restore(chat_id, first.id, pb.RESTORE_SCOPE_SINGLE_MESSAGE, message_ids=[message_id])
    assert restored.success
    assert _refs(caller.chat(chat_id).messages[0]) == _refs(saved.message)
    # Exports link messages to their files; an import keeps them.
    _, data = export(caller, chat_id, pb.EXPORT_FORMAT_JSON, include_version_history=True)
    exported = json.loads(data)
    assert [(a["name"], a["version"]) for a in exported["messages"][0]["attachments"]] == [
        ("report.pdf", 1),
        ("chart.png", 1),
    ]
    line = "report.pdf (version 1, 16 B, attachment)"
    _, markdown = export(caller, chat_id, pb.EXPORT_FORMAT_MARKDOWN)
    assert line in markdown.decode()
    _, html = export(caller, chat_id, pb.EXPORT_FORMAT_HTML)
    assert f"<li>{line}</li>" in html.decode()
    _, pdf = export(caller, chat_id, pb.EXPORT_FORMAT_PDF)
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    assert f"File: {line}" in " ".join(text.split())
    copy = str(uuid.uuid4())
    body = [api.ImportChatRequest(chat_id=copy), api.ImportChatRequest(export_chunk=data)]
    caller.stub.ImportChat(iter(body), metadata=caller.md)
    assert _refs(caller.chat(copy).messages[0]) == _refs(saved.message)
    assert caller.verify(copy).ok and caller.verify(chat_id).ok


def test_bad_references_are_refused_naming_the_field(caller: Caller, other: Caller, chat_id: str) -> None:
    mine = caller.upload(chat_id, "a.txt", b"a").file
    elsewhere = str(uuid.uuid4())
    foreign_chat = caller.upload(elsewhere, "b.txt", b"b").file
    foreign_tenant = other.upload(str(uuid.uuid4()), "c.txt", b"c").file
    gone = caller.upload(chat_id, "gone.txt", b"g").file
    caller.stub.DeleteFile(api.DeleteFileRequest(chat_id=chat_id, file_id=gone.id), metadata=caller.md)
    before = caller.chat(chat_id).snapshot.version
    cases = [
        ([pb.Attachment(file_id=foreign_chat.id, reference_type=ATTACHMENT)], "attachments[0].file_id"),
        ([pb.Attachment(file_id=foreign_tenant.id, reference_type=ATTACHMENT)], "attachments[0].file_id"),
        ([pb.Attachment(file_id=str(uuid.uuid4()), reference_type=ATTACHMENT)], "attachments[0].file_id"),
        ([pb.Attachment(file_id="nope", reference_type=ATTACHMENT)], "attachments[0].file_id"),
        ([pb.Attachment(file_name="never.txt", reference_type=ATTACHMENT)], "attachments[0].file_name"),
        ([pb.Attachment(file_name="gone.txt", reference_type=ATTACHMENT)], "attachments[0].file_name"),
        ([pb.Attachment(file_id=mine.id)], "attachments[0].reference_type"),
        ([pb.Attachment(file_id=mine.id, file_name="a.txt", reference_type=ATTACHMENT)], "attachments[0]"),
        (
            [pb.Attachment(file_id=mine.id, reference_type=ATTACHMENT)] * 2,
            "attachments[1].display_order",
        ),
    ]
    for refs, field in cases:
        error = rpc_error(caller.save, chat_id, "x", attachments=refs)
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT and field in str(error.details()), (field, error)
    assert caller.chat(chat_id).snapshot.version == before  # nothing was written


def test_html_shows_referenced_images_as_their_thumbnails(caller: Caller, chat_id: str) -> None:
    save_with_image(caller, chat_id, "photo.png", (400, 300), "look")
    _, html = export(caller, chat_id, pb.EXPORT_FORMAT_HTML)
    found = re.search(
        r'<li><img class="thumb" src="data:image/png;base64,([A-Za-z0-9+/=]+)" alt="photo.png">', html.decode()
    )
    assert found is not None
    thumbnail = Image.open(io.BytesIO(base64.b64decode(found.group(1))))
    assert thumbnail.format == "PNG" and max(thumbnail.size) < 400  # the thumbnail, not the image


def test_a_zip_links_each_reference_to_its_media_entry(caller: Caller, chat_id: str) -> None:
    notes = caller.upload(chat_id, "notes.txt", b"the notes", mime_type="text/plain").file
    caller.save(chat_id, "attached", attachments=[pb.Attachment(file_id=notes.id, reference_type=ATTACHMENT)])
    _, data = export(caller, chat_id, pb.EXPORT_FORMAT_ZIP, include_media=True)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        chat = json.loads(archive.read("chat.json"))
        (ref,) = chat["messages"][0]["attachments"]
        assert ref["file_id"] == notes.id and archive.read(ref["path"]) == b"the notes"
