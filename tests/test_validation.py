"""Bad input gets INVALID_ARGUMENT with field violations, and changes nothing."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from generated.timemachine.v1 import resources_pb2 as pb
from generated.timemachine.v1 import service_pb2 as api
from tests.conftest import Caller, rpc_error

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
