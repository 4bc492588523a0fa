"""Bad input gets INVALID_ARGUMENT with field violations, and changes nothing."""

from __future__ import annotations

import base64
import math
import urllib.request
import uuid
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from generated.timemachine.v1 import resources_pb2 as pb
from generated.timemachine.v1 import service_pb2 as api
from service import paging, validation
from tests.conftest import Caller, rpc_error, upload_stream


def _struct(**fields: float) -> struct_pb2.Struct:
    value = struct_pb2.Struct()
    value.update(fields)
    return value


def _token(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


CHAT = "6f9619ff-8b86-4d01-b42d-00cf4fc964ff"
MSG = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
USER = pb.MESSAGE_ROLE_USER


def violations(error: grpc.RpcError) -> dict[str, str]:
    status = rpc_status.from_call(error)
    assert status is not None, "no google.rpc.Status details"
    found: dict[str, str] = {}
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            found.update({v.field: v.description for v in bad.field_violations})
    return found


CASES: list[tuple[str, str, Any, str]] = [
    ("chat id not a uuid", "SaveMessage", api.SaveMessageRequest(chat_id="abc", role=USER, content="x"), "chat_id"),
    ("chat id missing", "SaveMessage", api.SaveMessageRequest(role=USER, content="x"), "chat_id"),
    (
        "message id not a uuid",
        "SaveMessage",
        api.SaveMessageRequest(chat_id=CHAT, message_id="1", role=USER),
        "message_id",
    ),
    ("role unspecified", "SaveMessage", api.SaveMessageRequest(chat_id=CHAT, content="x"), "role"),
    ("role out of range", "SaveMessage", api.SaveMessageRequest(chat_id=CHAT, role=99, content="x"), "role"),  # type: ignore[arg-type]
    ("nul in content", "SaveMessage", api.SaveMessageRequest(chat_id=CHAT, role=USER, content="a\x00b"), "content"),
    (
        "content too large",
        "SaveMessage",
        api.SaveMessageRequest(chat_id=CHAT, role=USER, content="x" * (1024 * 1024 + 1)),
        "content",
    ),
    ("negative tokens", "SaveMessage", api.SaveMessageRequest(chat_id=CHAT, role=USER, tokens=-1), "tokens"),
    ("nul in model id", "SaveMessage", api.SaveMessageRequest(chat_id=CHAT, role=USER, model_id="m\x00"), "model_id"),
    (
        "negative expected version",
        "SaveMessage",
        api.SaveMessageRequest(chat_id=CHAT, role=USER, expected_version=-1),
        "expected_version",
    ),
    (
        "long request id",
        "SaveMessage",
        api.SaveMessageRequest(chat_id=CHAT, role=USER, request_id="r" * 201),
        "request_id",
    ),
    ("edit without message id", "EditMessage", api.EditMessageRequest(chat_id=CHAT, content="x"), "message_id"),
    ("delete bad message id", "DeleteMessage", api.DeleteMessageRequest(chat_id=CHAT, message_id="zz"), "message_id"),
    ("empty title", "RenameChat", api.RenameChatRequest(chat_id=CHAT, title="  "), "title"),
    ("title too long", "RenameChat", api.RenameChatRequest(chat_id=CHAT, title="t" * 1001), "title"),
    ("description nul", "CreateSnapshot", api.CreateSnapshotRequest(chat_id=CHAT, description="\x00"), "description"),
    ("restore no scope", "Restore", api.RestoreRequest(chat_id=CHAT, target_snapshot_id=MSG), "scope"),
    (
        "restore bad target",
        "Restore",
        api.RestoreRequest(chat_id=CHAT, target_snapshot_id="x", scope=pb.RESTORE_SCOPE_FULL_CHAT),
        "target_snapshot_id",
    ),
    (
        "restore single without ids",
        "Restore",
        api.RestoreRequest(chat_id=CHAT, target_snapshot_id=MSG, scope=pb.RESTORE_SCOPE_SINGLE_MESSAGE),
        "message_ids",
    ),
    (
        "restore bad id in list",
        "Restore",
        api.RestoreRequest(
            chat_id=CHAT, target_snapshot_id=MSG, scope=pb.RESTORE_SCOPE_SINGLE_MESSAGE, message_ids=["x"]
        ),
        "message_ids[0]",
    ),
    (
        "restore range missing",
        "Restore",
        api.RestoreRequest(chat_id=CHAT, target_snapshot_id=MSG, scope=pb.RESTORE_SCOPE_MESSAGE_RANGE),
        "message_range",
    ),
    ("timeline bad zone", "GetTimeline", api.GetTimelineRequest(chat_id=CHAT, time_zone="Mars/Olympus"), "time_zone"),
    (
        "timeline server-local zone",
        "GetTimeline",
        api.GetTimelineRequest(chat_id=CHAT, time_zone="localtime"),
        "time_zone",
    ),
    ("timeline negative page", "GetTimeline", api.GetTimelineRequest(chat_id=CHAT, page_size=-1), "page_size"),
    (
        "timeline garbage token",
        "GetTimeline",
        api.GetTimelineRequest(chat_id=CHAT, page_token="!!notatoken"),
        "page_token",
    ),
    (
        "by date bad date",
        "ListSnapshotsByDate",
        api.ListSnapshotsByDateRequest(chat_id=CHAT, date="2024-02-30"),
        "date",
    ),
    ("by date bad format", "ListSnapshotsByDate", api.ListSnapshotsByDateRequest(chat_id=CHAT, date="24-1-1"), "date"),
    ("at snapshot no point", "GetChatAtSnapshot", api.GetChatAtSnapshotRequest(chat_id=CHAT), "point"),
    ("at snapshot version 0", "GetChatAtSnapshot", api.GetChatAtSnapshotRequest(chat_id=CHAT, version=0), "version"),
    (
        "versions bad message",
        "ListMessageVersions",
        api.ListMessageVersionsRequest(chat_id=CHAT, message_id="q"),
        "message_id",
    ),
    ("verify bad chat", "VerifyChat", api.VerifyChatRequest(chat_id="not-a-chat"), "chat_id"),
    # Each of these was INTERNAL with a stack trace in the log before.
    ("uuid with a trailing newline", "GetChat", api.GetChatRequest(chat_id=CHAT + "\n"), "chat_id"),
    (
        "date with a trailing newline",
        "ListSnapshotsByDate",
        api.ListSnapshotsByDateRequest(chat_id=CHAT, date="2026-01-01\n"),
        "date",
    ),
    (
        "NaN in metadata",
        "SaveMessage",
        api.SaveMessageRequest(chat_id=CHAT, role=USER, metadata=_struct(x=math.nan)),
        "metadata",
    ),
    (
        "Infinity in metadata",
        "SaveMessage",
        api.SaveMessageRequest(chat_id=CHAT, role=USER, metadata=_struct(x=math.inf)),
        "metadata",
    ),
    (
        "at_time past year 9999",
        "GetChatAtSnapshot",
        api.GetChatAtSnapshotRequest(chat_id=CHAT, at_time=Timestamp(seconds=2**40)),
        "at_time",
    ),
    (
        "at_time before year 1",
        "GetChatAtSnapshot",
        api.GetChatAtSnapshotRequest(chat_id=CHAT, at_time=Timestamp(seconds=-(2**40))),
        "at_time",
    ),
    (
        "page token of deeply nested JSON",
        "GetTimeline",
        api.GetTimelineRequest(chat_id=CHAT, page_token=_token("[" * 100_000 + "]" * 100_000)),
        "page_token",
    ),
]


@pytest.mark.parametrize(("name", "rpc", "request_message", "field"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_invalid_argument_and_changes_nothing(
    caller: Caller, name: str, rpc: str, request_message: Any, field: str
) -> None:
    caller.save(CHAT, "existing")
    error = rpc_error(getattr(caller.stub, rpc), request_message, metadata=caller.md)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert field in violations(error), violations(error)
    details = error.details() or ""
    assert "Traceback" not in details and "SELECT" not in details.upper().split(":")[0]
    assert caller.chat(CHAT).current_version == 1


def test_every_bad_field_is_reported_at_once(caller: Caller) -> None:
    error = rpc_error(
        caller.stub.SaveMessage,
        api.SaveMessageRequest(chat_id="x", role=pb.MESSAGE_ROLE_UNSPECIFIED, tokens=-5),
        metadata=caller.md,
    )
    assert {"chat_id", "role", "tokens"} <= set(violations(error))


@pytest.mark.parametrize(
    ("metadata", "why"),
    [
        ((), "no tenant"),
        ((("x-tenant-id", "tenant-1"),), "tenant not a uuid"),
        ((("x-tenant-id", "6f9619ff-8b86-4d01-b42d-00cf4fc964ff"),), "write without user"),
        ((("x-tenant-id", "6f9619ff-8b86-4d01-b42d-00cf4fc964ff"), ("x-user-id", "bob")), "user not a uuid"),
    ],
)
def test_missing_or_malformed_identity_is_unauthenticated(caller: Caller, metadata: Any, why: str) -> None:
    error = rpc_error(
        caller.stub.SaveMessage, api.SaveMessageRequest(chat_id=CHAT, role=USER, content="x"), metadata=metadata
    )
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED, why


def test_reads_need_no_user(caller: Caller) -> None:
    caller.save(CHAT, "hello")
    reply = caller.stub.GetChat(api.GetChatRequest(chat_id=CHAT), metadata=(("x-tenant-id", caller.tenant_id),))
    assert [m.content for m in reply.messages] == ["hello"]


def test_a_forged_search_offset_is_refused(caller: Caller) -> None:
    """Page tokens carry no secret: one made by hand with a huge offset must not reach the database."""
    caller.save(CHAT, "needle")
    scope = ("search", uuid.UUID(caller.tenant_id), uuid.UUID(CHAT), "needle", "all", False, 20)
    forged = paging.encode([2**31, 0], scope)
    request = api.SearchRequest(chat_id=CHAT, query="needle", page_token=forged)
    error = rpc_error(caller.stub.Search, request, metadata=caller.md)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert "page_token" in violations(error)


def test_a_time_zone_only_python_knows_is_invalid_argument(caller: Caller, monkeypatch: pytest.MonkeyPatch) -> None:
    """Python's and PostgreSQL's tz databases can differ; the database's refusal is the caller's error."""
    zones = validation._zones() | {"Mars/Olympus_Mons"}
    monkeypatch.setattr(validation, "_zones", lambda: zones)
    caller.save(CHAT, "hello")
    for call, request in (
        (caller.stub.GetTimeline, api.GetTimelineRequest(chat_id=CHAT, time_zone="Mars/Olympus_Mons")),
        (
            caller.stub.ListSnapshotsByDate,
            api.ListSnapshotsByDateRequest(chat_id=CHAT, date="2026-01-01", time_zone="Mars/Olympus_Mons"),
        ),
    ):
        error = rpc_error(call, request, metadata=caller.md)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
        assert "time_zone" in violations(error)


@pytest.mark.parametrize("mime_type", ["text/plain\r\nX-Evil: 1", "text/html\n", "no-slash", "a/b c", "text/plain; x"])
def test_a_bad_mime_type_is_refused_before_any_bytes(caller: Caller, mime_type: str) -> None:
    """It used to fail only after every byte had arrived, as UNAVAILABLE with a retry delay."""
    chunks_sent = 0

    def stream() -> Any:
        nonlocal chunks_sent
        for message in upload_stream(CHAT, "a.txt", b"x" * (3 * 256 * 1024), mime_type=mime_type):
            if message.chunk:
                chunks_sent += 1
            yield message

    error = rpc_error(caller.stub.UploadFile, stream(), metadata=caller.md)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert "mime_type" in violations(error)


def test_active_content_downloads_as_an_attachment(caller: Caller) -> None:
    """A caller's text/html must not run on the bucket's origin; plain text still shows inline."""
    page = caller.upload(CHAT, "page.html", b"<script>alert(1)</script>", mime_type="text/html")
    text = caller.upload(CHAT, "notes.txt", b"hello", mime_type="text/plain; charset=utf-8")
    for upload, attached in ((page, True), (text, False)):
        reply = caller.stub.GetFileDownloadUrl(
            api.GetFileDownloadUrlRequest(file_id=upload.file.id, expires_in_seconds=60), metadata=caller.md
        )
        with urllib.request.urlopen(reply.url, timeout=10) as response:
            disposition = response.headers.get("Content-Disposition") or ""
            content_type = response.headers.get("Content-Type") or ""
            body = response.read()
        assert ("attachment" in disposition) is attached, disposition
        assert ("html" in content_type) is False, content_type
        assert body in (b"<script>alert(1)</script>", b"hello")
