"""Every restore scope, undo, the audit log, and checksum equality."""

from __future__ import annotations

import uuid
from typing import Any

import grpc

from generated.timemachine.v1 import resources_pb2 as pb
from generated.timemachine.v1 import service_pb2 as api
from tests.conftest import Caller, contents, rpc_error


def _chat_with_history(caller: Caller, chat_id: str) -> dict[str, api.SaveMessageResponse]:
    """a, b, c saved; S = version 3; then b edited, c deleted, d added, renamed."""
    saved = {name: caller.save(chat_id, name, tokens=1) for name in "abc"}
    caller.edit(chat_id, saved["b"].message.message_id, "b-edited")
    caller.delete(chat_id, saved["c"].message.message_id)
    saved["d"] = caller.save(chat_id, "d", tokens=1)
    caller.rename(chat_id, "Later title")
    return saved


def test_full_chat_restore_reproduces_state_and_checksum(caller: Caller, chat_id: str) -> None:
    saved = _chat_with_history(caller, chat_id)
    target = saved["c"].snapshot
    head_before = caller.chat(chat_id).snapshot
    result = caller.restore(chat_id, target.id, pb.RESTORE_SCOPE_FULL_CHAT, reason="undo experiment")
    assert result.success and result.new_version == 8
    assert result.previous_snapshot_id == head_before.id
    assert result.messages_restored == 3  # b back, c back, d gone; a untouched
    now = caller.chat(chat_id)
    assert contents(now.messages) == ["a", "b", "c"]
    assert [m.message_id for m in now.messages] == [saved[n].message.message_id for n in "abc"]
    assert now.title == ""
    assert result.snapshot.checksum == target.checksum
    assert result.snapshot.trigger == pb.SNAPSHOT_TRIGGER_RESTORE_PERFORMED
    assert result.snapshot.restored_from_snapshot_id == target.id
    assert result.snapshot.message_count == 3 and result.snapshot.total_tokens == 3
    # d left the current view but stays in history.
    versions = caller.stub.ListMessageVersions(
        api.ListMessageVersionsRequest(chat_id=chat_id, message_id=saved["d"].message.message_id), metadata=caller.md
    ).versions
    assert [v.is_deleted for v in versions] == [True, False]
    assert caller.verify(chat_id).ok


def test_undo_restore_by_restoring_previous_snapshot(caller: Caller, chat_id: str) -> None:
    saved = _chat_with_history(caller, chat_id)
    before = caller.chat(chat_id)
    first = caller.restore(chat_id, saved["a"].snapshot.id, pb.RESTORE_SCOPE_FULL_CHAT)
    assert contents(caller.chat(chat_id).messages) == ["a"]
    undo = caller.restore(chat_id, first.previous_snapshot_id, pb.RESTORE_SCOPE_FULL_CHAT, reason="undo")
    after = caller.chat(chat_id)
    assert contents(after.messages) == contents(before.messages) == ["a", "b-edited", "d"]
    assert after.title == "Later title"
    assert undo.snapshot.checksum == before.snapshot.checksum
    assert caller.verify(chat_id).ok


def test_single_message_restore_brings_back_deleted_and_edited(caller: Caller, chat_id: str) -> None:
    saved = _chat_with_history(caller, chat_id)
    target = saved["c"].snapshot.id
    ids = [saved["b"].message.message_id, saved["c"].message.message_id]
    result = caller.restore(chat_id, target, pb.RESTORE_SCOPE_SINGLE_MESSAGE, message_ids=ids)
    assert result.messages_restored == 2
    now = caller.chat(chat_id)
    assert contents(now.messages) == ["a", "b", "c", "d"]  # d untouched, c back in its place
    assert now.title == "Later title"
    # Restoring again changes nothing but still records a snapshot.
    again = caller.restore(chat_id, target, pb.RESTORE_SCOPE_SINGLE_MESSAGE, message_ids=ids)
    assert again.messages_restored == 0 and again.new_version == result.new_version + 1
    # A message that did not exist at the target: NOT_FOUND, nothing written.
    error = rpc_error(
        caller.restore, chat_id, target, pb.RESTORE_SCOPE_SINGLE_MESSAGE, message_ids=[saved["d"].message.message_id]
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert caller.chat(chat_id).current_version == again.new_version


def test_message_range_restore_leaves_outside_untouched(caller: Caller, chat_id: str) -> None:
    saved = {name: caller.save(chat_id, name) for name in "abcde"}
    target = saved["e"].snapshot.id
    for name in "abcde":
        caller.edit(chat_id, saved[name].message.message_id, name.upper())
    message_range = pb.MessageRange(
        first_message_id=saved["b"].message.message_id, last_message_id=saved["d"].message.message_id
    )
    result = caller.restore(chat_id, target, pb.RESTORE_SCOPE_MESSAGE_RANGE, message_range=message_range)
    assert result.messages_restored == 3
    assert contents(caller.chat(chat_id).messages) == ["A", "b", "c", "d", "E"]
    backwards = pb.MessageRange(
        first_message_id=saved["d"].message.message_id, last_message_id=saved["b"].message.message_id
    )
    error = rpc_error(caller.restore, chat_id, target, pb.RESTORE_SCOPE_MESSAGE_RANGE, message_range=backwards)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_files_only_and_single_file_leave_messages_alone(caller: Caller, chat_id: str) -> None:
    saved = _chat_with_history(caller, chat_id)
    before = caller.chat(chat_id)
    result = caller.restore(chat_id, saved["a"].snapshot.id, pb.RESTORE_SCOPE_FILES_ONLY)
    assert result.messages_restored == 0 and result.files_restored == 0
    assert contents(caller.chat(chat_id).messages) == contents(before.messages)
    assert result.snapshot.checksum == before.snapshot.checksum
    error = rpc_error(
        caller.restore,
        chat_id,
        saved["a"].snapshot.id,
        pb.RESTORE_SCOPE_SINGLE_FILE,
        file_ids=["3f2504e0-4f89-41d3-9a0c-0305e82c3301"],
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND


def test_restore_log_newest_first_with_details(caller: Caller, chat_id: str) -> None:
    saved = _chat_with_history(caller, chat_id)
    one = caller.restore(chat_id, saved["a"].snapshot.id, pb.RESTORE_SCOPE_FULL_CHAT, reason="first")
    two = caller.restore(
        chat_id,
        saved["c"].snapshot.id,
        pb.RESTORE_SCOPE_SINGLE_MESSAGE,
        message_ids=[saved["c"].message.message_id],
        reason="second",
    )
    log = caller.stub.ListRestores(api.ListRestoresRequest(chat_id=chat_id), metadata=caller.md).restores
    assert [r.reason for r in log] == ["second", "first"]
    assert log[0].to_snapshot_id == two.new_snapshot_id and log[0].from_snapshot_id == saved["c"].snapshot.id
    assert log[0].scope == pb.RESTORE_SCOPE_SINGLE_MESSAGE
    assert list(log[0].message_ids) == [saved["c"].message.message_id]
    assert log[0].messages_restored == two.messages_restored and log[0].user_id == caller.user_id
    assert log[1].previous_snapshot_id == one.previous_snapshot_id
    page = caller.stub.ListRestores(api.ListRestoresRequest(chat_id=chat_id, page_size=1), metadata=caller.md)
    rest = caller.stub.ListRestores(
        api.ListRestoresRequest(chat_id=chat_id, page_size=1, page_token=page.next_page_token), metadata=caller.md
    )
    assert [page.restores[0].id, rest.restores[0].id] == [log[0].id, log[1].id]
    assert rest.next_page_token == ""


def test_restore_target_of_another_chat_is_not_found(caller: Caller, chat_id: str) -> None:
    caller.save(chat_id, "here")
    elsewhere = caller.save("5b1f3c1e-2a4d-4e6f-8a9b-0c1d2e3f4a5b", "there")
    error = rpc_error(caller.restore, chat_id, elsewhere.snapshot.id, pb.RESTORE_SCOPE_FULL_CHAT)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert caller.chat(chat_id).current_version == 1


def _changes(reply: Any) -> bytes:
    """The diff fields CompareSnapshotsResponse and RestorePreview share, without the new rows' ids and times.

    A preview's rows are the restore's rows made in a transaction that was
    rolled back: the real restore makes the same with other ids and times.
    """
    diff = api.RestorePreview()
    for name in ("added_messages", "removed_messages", "edited_messages", "added_files", "removed_files"):
        getattr(diff, name).extend(getattr(reply, name))
    diff.changed_files.extend(reply.changed_files)
    diff.title_changed, diff.from_title, diff.to_title = reply.title_changed, reply.from_title, reply.to_title
    rows: list[Any] = [*diff.added_messages, *diff.removed_messages, *diff.added_files, *diff.removed_files]
    rows += [side for change in diff.edited_messages for side in (change.before, change.after)]
    rows += [side for change in diff.changed_files for side in (change.before, change.after)]
    for row in rows:
        for name in ("id", "snapshot_id", "created_at", "previous_version_id", "superseded_at", "archived_at"):
            if row.DESCRIPTOR.fields_by_name.get(name) is not None:
                row.ClearField(name)
    return diff.SerializeToString(deterministic=True)


def test_a_preview_says_what_the_restore_does_and_writes_nothing(caller: Caller, chat_id: str) -> None:
    saved = _chat_with_history(caller, chat_id)
    caller.upload(chat_id, "later.txt", b"a file the target never had")
    target = saved["c"].snapshot
    cases: list[dict[str, Any]] = [
        dict(scope=pb.RESTORE_SCOPE_FULL_CHAT),
        dict(scope=pb.RESTORE_SCOPE_SINGLE_MESSAGE, message_ids=[saved["c"].message.message_id]),
        dict(scope=pb.RESTORE_SCOPE_FILES_ONLY),
    ]
    for case in cases:
        before = caller.chat(chat_id).snapshot
        restores = caller.stub.ListRestores(api.ListRestoresRequest(chat_id=chat_id), metadata=caller.md).restores
        preview = caller.restore(chat_id, target.id, validate_only=True, request_id=f"key-{case['scope']}", **case)
        assert not preview.success and not preview.new_snapshot_id and not preview.HasField("snapshot")
        assert preview.HasField("preview") and preview.new_version == before.version + 1
        # Nothing written: same head, no snapshot, no restore-log entry.
        assert caller.chat(chat_id).snapshot == before
        assert (
            caller.stub.ListRestores(api.ListRestoresRequest(chat_id=chat_id), metadata=caller.md).restores == restores
        )
        # The real restore (with the same request_id: the preview did not take it) does just that.
        done = caller.restore(chat_id, target.id, request_id=f"key-{case['scope']}", **case)
        assert done.success and done.snapshot.checksum == preview.preview.resulting_checksum
        assert (done.messages_restored, done.files_restored) == (preview.messages_restored, preview.files_restored)
        compared = caller.stub.CompareSnapshots(
            api.CompareSnapshotsRequest(chat_id=chat_id, from_snapshot_id=before.id, to_snapshot_id=done.snapshot.id),
            metadata=caller.md,
        )
        assert _changes(preview.preview) == _changes(compared), case
    full = caller.restore(chat_id, saved["a"].snapshot.id, pb.RESTORE_SCOPE_FULL_CHAT, validate_only=True).preview
    assert [m.content for m in full.removed_messages] == ["b", "c"]
    assert full.resulting_checksum == saved["a"].snapshot.checksum  # a FULL_CHAT restore reproduces its target


def test_a_preview_refuses_what_the_restore_refuses(caller: Caller, other: Caller, chat_id: str) -> None:
    saved = _chat_with_history(caller, chat_id)
    target = saved["a"].snapshot.id
    bad = rpc_error(caller.restore, chat_id, target, pb.RESTORE_SCOPE_SINGLE_MESSAGE, validate_only=True)
    assert bad.code() is grpc.StatusCode.INVALID_ARGUMENT  # message_ids missing
    unknown = rpc_error(caller.restore, chat_id, str(uuid.uuid4()), pb.RESTORE_SCOPE_FULL_CHAT, validate_only=True)
    assert unknown.code() is grpc.StatusCode.NOT_FOUND
    foreign = rpc_error(other.restore, chat_id, target, pb.RESTORE_SCOPE_FULL_CHAT, validate_only=True)
    assert foreign.code() is grpc.StatusCode.NOT_FOUND
    stale = rpc_error(
        caller.restore, chat_id, target, pb.RESTORE_SCOPE_FULL_CHAT, validate_only=True, expected_version=1
    )
    assert stale.code() is grpc.StatusCode.ABORTED


def test_a_message_edited_back_to_its_text_is_not_restored_again(caller: Caller, chat_id: str) -> None:
    """Another version with the same fields is the same state: the restore writes nothing for it."""
    first = caller.save(chat_id, "same words", tokens=2)
    other = caller.save(chat_id, "other", tokens=1)
    message_id = first.message.message_id
    caller.edit(chat_id, message_id, "different words")
    caller.edit(chat_id, message_id, "same words")
    caller.edit(chat_id, other.message.message_id, "changed")
    result = caller.restore(chat_id, other.snapshot.id, pb.RESTORE_SCOPE_FULL_CHAT)
    assert result.messages_restored == 1  # only `other`; the first message's text is already the target's
    assert result.snapshot.checksum == other.snapshot.checksum
    versions = caller.stub.ListMessageVersions(
        api.ListMessageVersionsRequest(chat_id=chat_id, message_id=message_id), metadata=caller.md
    ).versions
    assert [v.content for v in versions] == ["same words", "different words", "same words"]
