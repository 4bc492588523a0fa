"""Named versions: a label on a snapshot, movable and removable, usable wherever a snapshot is named."""

from __future__ import annotations

import json
import uuid

import grpc

from generated.timemachine.v1 import resources_pb2 as pb
from generated.timemachine.v1 import service_pb2 as api
from tests.conftest import Caller, rpc_error
from tests.test_export import export


def _label(caller: Caller, chat_id: str, snapshot_id: str, label: str, **kw: object) -> pb.Snapshot:
    request = api.LabelSnapshotRequest(chat_id=chat_id, snapshot_id=snapshot_id, label=label, **kw)  # type: ignore[arg-type]
    return caller.stub.LabelSnapshot(request, metadata=caller.md).snapshot


def _timeline(caller: Caller, chat_id: str) -> list[pb.Snapshot]:
    return list(caller.stub.GetTimeline(api.GetTimelineRequest(chat_id=chat_id), metadata=caller.md).snapshots)


def test_a_label_names_one_snapshot_moves_and_comes_off_with_its_history_kept(caller: Caller, chat_id: str) -> None:
    first = caller.save(chat_id, "draft one").snapshot
    second = caller.save(chat_id, "draft two").snapshot
    labeled = _label(caller, chat_id, first.id, "before the rewrite", request_id="l-1")
    assert labeled.trigger == pb.SNAPSHOT_TRIGGER_SNAPSHOT_LABELED and labeled.version == 3
    assert labeled.checksum == second.checksum  # a label is no change of content
    assert _label(caller, chat_id, first.id, "before the rewrite", request_id="l-1") == labeled  # a retry
    _label(caller, chat_id, first.id, "v1")
    timeline = _timeline(caller, chat_id)
    assert list(timeline[0].labels) == ["before the rewrite", "v1"] and not timeline[1].labels
    same = rpc_error(_label, caller, chat_id, first.id, "v1")
    assert same.code() is grpc.StatusCode.FAILED_PRECONDITION
    moved = _label(caller, chat_id, second.id, "v1")
    assert "moved from version 1 to version 2" in moved.trigger_description
    timeline = _timeline(caller, chat_id)
    assert list(timeline[0].labels) == ["before the rewrite"] and list(timeline[1].labels) == ["v1"]
    off = caller.stub.UnlabelSnapshot(api.UnlabelSnapshotRequest(chat_id=chat_id, label="v1"), metadata=caller.md)
    assert off.snapshot.trigger == pb.SNAPSHOT_TRIGGER_SNAPSHOT_LABELED and "taken off version 2" in (
        off.snapshot.trigger_description
    )
    assert not _timeline(caller, chat_id)[1].labels
    # Each change stays in the history: the SNAPSHOT_LABELED snapshots tell it.
    changes = [
        s.trigger_description for s in _timeline(caller, chat_id) if s.trigger == pb.SNAPSHOT_TRIGGER_SNAPSHOT_LABELED
    ]
    assert changes == [
        "label 'before the rewrite' put on version 1",
        "label 'v1' put on version 1",
        "label 'v1' moved from version 1 to version 2",
        "label 'v1' taken off version 2",
    ]
    gone = rpc_error(caller.at, chat_id, label="v1")
    assert gone.code() is grpc.StatusCode.NOT_FOUND and "names no snapshot" in gone.details()


def test_a_label_names_a_snapshot_wherever_a_snapshot_is_named(caller: Caller, chat_id: str) -> None:
    first = caller.save(chat_id, "one").snapshot
    caller.save(chat_id, "two")
    _label(caller, chat_id, first.id, "start")
    at = caller.at(chat_id, label="start")
    assert at.snapshot.id == first.id and [m.content for m in at.messages] == ["one"]
    assert list(at.snapshot.labels) == ["start"]
    head = caller.chat(chat_id).snapshot.id
    compared = caller.stub.CompareSnapshots(
        api.CompareSnapshotsRequest(chat_id=chat_id, from_label="start", to_snapshot_id=head), metadata=caller.md
    )
    assert [m.content for m in compared.added_messages] == ["two"]
    _, data = export(caller, chat_id, pb.EXPORT_FORMAT_JSON, label="start")
    assert json.loads(data)["snapshot"]["id"] == first.id
    preview = caller.stub.Restore(
        api.RestoreRequest(chat_id=chat_id, target_label="start", scope=pb.RESTORE_SCOPE_FULL_CHAT, validate_only=True),
        metadata=caller.md,
    )
    assert preview.preview.resulting_checksum == first.checksum
    restored = caller.stub.Restore(
        api.RestoreRequest(chat_id=chat_id, target_label="start", scope=pb.RESTORE_SCOPE_FULL_CHAT), metadata=caller.md
    )
    assert restored.snapshot.restored_from_snapshot_id == first.id
    assert [m.content for m in caller.chat(chat_id).messages] == ["one"]


def test_bad_labels_and_other_tenants(caller: Caller, other: Caller, chat_id: str) -> None:
    first = caller.save(chat_id, "one").snapshot
    for label in ("", " padded", "tab\there", "x" * 200):
        error = rpc_error(_label, caller, chat_id, first.id, label)
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT, label
    assert rpc_error(_label, caller, chat_id, str(uuid.uuid4()), "x").code() is grpc.StatusCode.NOT_FOUND
    assert rpc_error(_label, other, chat_id, first.id, "x").code() is grpc.StatusCode.NOT_FOUND
    other_chat = str(uuid.uuid4())
    foreign = other.save(other_chat, "theirs").snapshot
    assert rpc_error(_label, caller, chat_id, foreign.id, "x").code() is grpc.StatusCode.NOT_FOUND
    _label(caller, chat_id, first.id, "mine")
    assert rpc_error(other.at, chat_id, label="mine").code() is grpc.StatusCode.NOT_FOUND
    both = rpc_error(
        caller.stub.CompareSnapshots,
        api.CompareSnapshotsRequest(chat_id=chat_id, from_snapshot_id=first.id, from_label="mine", to_label="mine"),
        metadata=caller.md,
    )
    assert both.code() is grpc.StatusCode.INVALID_ARGUMENT and "from_label" in str(both.details())
    unknown = caller.stub.UnlabelSnapshot
    assert rpc_error(
        unknown, api.UnlabelSnapshotRequest(chat_id=chat_id, label="never"), metadata=caller.md
    ).code() is (grpc.StatusCode.NOT_FOUND)
    assert caller.chat(chat_id).snapshot.version == 2  # only the one label was written
