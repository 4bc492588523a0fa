"""The chat as it was at each version: edits, deletes and renames never rewrite the past."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from google.protobuf import struct_pb2, timestamp_pb2

from generated.timemachine.v1 import resources_pb2 as pb
from generated.timemachine.v1 import service_pb2 as api
from tests.conftest import Caller, contents, rpc_error


def test_each_version_shows_the_chat_as_it_was(caller: Caller, chat_id: str) -> None:
    first = caller.save(chat_id, "What is 2+2?")
    answer = caller.save(chat_id, "5", role=pb.MESSAGE_ROLE_ASSISTANT, model_id="gpt-x", tokens=1)
    edited = caller.edit(chat_id, answer.message.message_id, "4", edit_reason="arithmetic")
    caller.rename(chat_id, "Maths")
    deleted = caller.delete(chat_id, first.message.message_id)

    assert [first.snapshot.version, answer.snapshot.version, edited.snapshot.version] == [1, 2, 3]
    assert deleted.snapshot.version == 5
    assert contents(caller.at(chat_id, version=1).messages) == ["What is 2+2?"]
    assert contents(caller.at(chat_id, version=2).messages) == ["What is 2+2?", "5"]
    assert contents(caller.at(chat_id, version=3).messages) == ["What is 2+2?", "4"]
    assert caller.at(chat_id, version=3).title == ""
    assert caller.at(chat_id, version=4).title == "Maths"
    assert contents(caller.at(chat_id, version=5).messages) == ["4"]
    # Deleting today leaves every past snapshot intact.
    assert contents(caller.at(chat_id, snapshot_id=answer.snapshot.id).messages) == ["What is 2+2?", "5"]

    now = caller.chat(chat_id)
    assert now.title == "Maths" and now.current_version == 5
    assert contents(now.messages) == ["4"]
    assert now.messages[0].version == 2 and now.messages[0].is_active


def test_triggers_counts_and_lineage(caller: Caller, chat_id: str) -> None:
    user = caller.save(chat_id, "hi", tokens=2)
    bot = caller.save(chat_id, "hello", role=pb.MESSAGE_ROLE_ASSISTANT, tokens=3)
    edit = caller.edit(chat_id, user.message.message_id, "hi there")
    delete = caller.delete(chat_id, bot.message.message_id)
    rename = caller.rename(chat_id, "Greeting")
    manual = caller.stub.CreateSnapshot(
        api.CreateSnapshotRequest(chat_id=chat_id, description="before refactor"), metadata=caller.md
    )
    assert user.snapshot.trigger == pb.SNAPSHOT_TRIGGER_MESSAGE_SENT
    assert bot.snapshot.trigger == pb.SNAPSHOT_TRIGGER_MESSAGE_RECEIVED
    assert edit.snapshot.trigger == pb.SNAPSHOT_TRIGGER_MESSAGE_EDITED
    assert delete.snapshot.trigger == pb.SNAPSHOT_TRIGGER_MESSAGE_DELETED
    assert rename.snapshot.trigger == pb.SNAPSHOT_TRIGGER_CHAT_RENAMED
    assert manual.snapshot.trigger == pb.SNAPSHOT_TRIGGER_MANUAL_SNAPSHOT
    assert manual.snapshot.trigger_description == "before refactor"
    assert bot.snapshot.message_count == 2 and bot.snapshot.total_tokens == 5
    assert delete.snapshot.message_count == 1 and delete.snapshot.total_tokens == 2
    assert edit.snapshot.trigger_message_id == user.message.message_id
    assert bot.snapshot.previous_snapshot_id == user.snapshot.id
    assert user.snapshot.previous_snapshot_id == ""
    assert user.snapshot.user_id == caller.user_id
    assert len({s.checksum for s in (user.snapshot, bot.snapshot, edit.snapshot, delete.snapshot)}) == 4


def test_message_versions_newest_first_with_tombstone(caller: Caller, chat_id: str) -> None:
    meta = struct_pb2.Struct()
    meta.update({"k": "v"})
    saved = caller.save(chat_id, "v1", metadata=meta)
    message_id = saved.message.message_id
    caller.edit(chat_id, message_id, "v2", edit_reason="typo")
    caller.delete(chat_id, message_id)
    versions = caller.stub.ListMessageVersions(
        api.ListMessageVersionsRequest(chat_id=chat_id, message_id=message_id), metadata=caller.md
    ).versions
    assert [v.version for v in versions] == [3, 2, 1]
    assert [v.is_deleted for v in versions] == [True, False, False]
    assert [v.is_active for v in versions] == [True, False, False]
    assert versions[1].edit_reason == "typo" and versions[1].content == "v2"
    assert versions[2].superseded_at == versions[1].created_at
    assert versions[2].metadata["k"] == "v"
    assert versions[0].original_created_at == versions[2].created_at
    assert {v.message_id for v in versions} == {message_id}


def test_message_versions_in_pages(caller: Caller, other: Caller, chat_id: str) -> None:
    message_id = caller.save(chat_id, "draft 1").message.message_id
    for n in range(2, 8):
        caller.edit(chat_id, message_id, f"draft {n}")

    def page(token: str = "", size: int = 3, who: Caller = caller) -> api.ListMessageVersionsResponse:
        request = api.ListMessageVersionsRequest(
            chat_id=chat_id, message_id=message_id, page_size=size, page_token=token
        )
        reply: api.ListMessageVersionsResponse = who.stub.ListMessageVersions(request, metadata=who.md)
        return reply

    pages, token = [], ""
    while True:
        reply = page(token)
        pages.append([v.version for v in reply.versions])
        token = reply.next_page_token
        if not token:
            break
    assert pages == [[7, 6, 5], [4, 3, 2], [1]]
    everything = caller.stub.ListMessageVersions(
        api.ListMessageVersionsRequest(chat_id=chat_id, message_id=message_id), metadata=caller.md
    )
    assert [v.version for v in everything.versions] == list(range(7, 0, -1)) and not everything.next_page_token
    second = page().next_page_token
    for bad in (lambda: page("garbage"), lambda: page(second, who=other), lambda: page(size=-1)):
        assert rpc_error(bad).code() == grpc.StatusCode.INVALID_ARGUMENT
    assert rpc_error(lambda: page(who=other)).code() == grpc.StatusCode.NOT_FOUND


def test_caller_chosen_message_id_and_duplicates(caller: Caller, chat_id: str) -> None:
    message_id = "0b3f5a52-1d7e-4c38-9d7c-6f6b1c0b9a11"
    saved = caller.save(chat_id, "mine", message_id=message_id)
    assert saved.message.message_id == message_id
    error = rpc_error(caller.save, chat_id, "again", message_id=message_id)
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    assert caller.chat(chat_id).current_version == 1


def test_at_time_picks_the_latest_snapshot_at_or_before(caller: Caller, chat_id: str) -> None:
    first = caller.save(chat_id, "one")
    second = caller.save(chat_id, "two")
    stamp = timestamp_pb2.Timestamp()
    stamp.CopyFrom(second.snapshot.timestamp)
    assert caller.at(chat_id, at_time=stamp).snapshot.version == 2
    before = (
        first.snapshot.timestamp.ToDatetime(tzinfo=UTC)
        + (second.snapshot.timestamp.ToDatetime(tzinfo=UTC) - first.snapshot.timestamp.ToDatetime(tzinfo=UTC)) / 2
    )
    stamp.FromDatetime(before)
    assert caller.at(chat_id, at_time=stamp).snapshot.version == 1
    stamp.FromDatetime(datetime(2001, 1, 1, tzinfo=UTC))
    assert rpc_error(caller.at, chat_id, at_time=stamp).code() == grpc.StatusCode.NOT_FOUND
    assert rpc_error(caller.at, chat_id, version=3).code() == grpc.StatusCode.NOT_FOUND


def test_timeline_pages_oldest_first_and_counts_days(caller: Caller, chat_id: str) -> None:
    for i in range(7):
        caller.save(chat_id, f"m{i}", tokens=1)
    caller.rename(chat_id, "Seven")
    seen: list[int] = []
    token = ""
    while True:
        page = caller.stub.GetTimeline(
            api.GetTimelineRequest(chat_id=chat_id, page_size=3, page_token=token, time_zone="Asia/Tokyo"),
            metadata=caller.md,
        )
        seen += [s.version for s in page.snapshots]
        token = page.next_page_token
        if not token:
            break
    assert seen == list(range(1, 9))
    assert page.total_snapshots == 8 and page.current_version == 8
    assert page.chat_title == "Seven" and page.current_message_count == 7
    assert sum(page.snapshots_by_date.values()) == 8
    tokyo_day = page.newest_snapshot_time.ToDatetime(tzinfo=UTC) + timedelta(hours=9)
    assert page.snapshots_by_date[tokyo_day.strftime("%Y-%m-%d")] >= 1
    assert page.oldest_snapshot_time.ToDatetime() <= page.newest_snapshot_time.ToDatetime()


def test_snapshots_by_local_date(caller: Caller, chat_id: str) -> None:
    saved = caller.save(chat_id, "hello")
    moment = saved.snapshot.timestamp.ToDatetime(tzinfo=UTC)
    for zone, offset in (("UTC", 0), ("America/Los_Angeles", None), ("Pacific/Kiritimati", 14)):
        from zoneinfo import ZoneInfo

        local = moment.astimezone(ZoneInfo(zone))
        assert offset is None or local.utcoffset() == timedelta(hours=offset)
        day = local.strftime("%Y-%m-%d")
        found = caller.stub.ListSnapshotsByDate(
            api.ListSnapshotsByDateRequest(chat_id=chat_id, date=day, time_zone=zone), metadata=caller.md
        )
        assert [s.id for s in found.snapshots] == [saved.snapshot.id], zone
        other_day = (local - timedelta(days=1)).strftime("%Y-%m-%d")
        empty = caller.stub.ListSnapshotsByDate(
            api.ListSnapshotsByDateRequest(chat_id=chat_id, date=other_day, time_zone=zone), metadata=caller.md
        )
        assert list(empty.snapshots) == []


def test_page_token_from_another_chat_is_refused(caller: Caller, chat_id: str) -> None:
    other_chat = "9d0c8f2e-3b1a-4c5d-8e6f-7a8b9c0d1e2f"
    for c in (chat_id, other_chat):
        caller.save(c, "a")
        caller.save(c, "b")
    page = caller.stub.GetTimeline(api.GetTimelineRequest(chat_id=chat_id, page_size=1), metadata=caller.md)
    assert page.next_page_token
    error = rpc_error(
        caller.stub.GetTimeline,
        api.GetTimelineRequest(chat_id=other_chat, page_size=1, page_token=page.next_page_token),
        metadata=caller.md,
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_get_chat_pages_messages_in_chat_order_on_request(caller: Caller, chat_id: str) -> None:
    saved = [caller.save(chat_id, f"m{i}") for i in range(8)]
    caller.delete(chat_id, saved[3].message.message_id)
    whole = caller.chat(chat_id)
    assert contents(whole.messages) == ["m0", "m1", "m2", "m4", "m5", "m6", "m7"] and whole.next_page_token == ""
    pages, token = [], ""
    while True:
        reply = caller.stub.GetChat(
            api.GetChatRequest(chat_id=chat_id, page_size=3, page_token=token), metadata=caller.md
        )
        pages.append(contents(reply.messages))
        token = reply.next_page_token
        if not token:
            break
    assert pages == [["m0", "m1", "m2"], ["m4", "m5", "m6"], ["m7"]]
    bad = api.GetChatRequest(chat_id=chat_id, page_size=-1)
    assert rpc_error(caller.stub.GetChat, bad, metadata=caller.md).code() == grpc.StatusCode.INVALID_ARGUMENT


def test_the_chat_at_a_snapshot_in_pages(caller: Caller, chat_id: str) -> None:
    saved = [caller.save(chat_id, f"m{i}") for i in range(7)]
    caller.delete(chat_id, saved[1].message.message_id)
    point = caller.chat(chat_id).current_version  # m1 deleted, 6 messages in view
    caller.save(chat_id, "later")  # not part of that point
    caller.edit(chat_id, saved[0].message.message_id, "m0 edited later")
    pages, token = [], ""
    while True:
        reply = caller.at(chat_id, version=point, page_size=4, page_token=token)
        assert reply.snapshot.version == point
        pages.append(contents(reply.messages))
        token = reply.next_page_token
        if not token:
            break
    assert pages == [["m0", "m2", "m3", "m4"], ["m5", "m6"]]
    assert contents(caller.at(chat_id, version=point).messages) == ["m0", "m2", "m3", "m4", "m5", "m6"]
    first = caller.at(chat_id, version=point, page_size=4)
    # A token belongs to the point it was issued for.
    other_point = rpc_error(caller.at, chat_id, version=point - 1, page_token=first.next_page_token)
    assert other_point.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert rpc_error(caller.at, chat_id, version=point, page_size=-1).code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_chat_too_large_for_one_answer_comes_in_pages(caller: Caller, chat_id: str) -> None:
    """Five 1 MiB messages would pass a client's default 4 MiB: the answer pages itself."""
    big = "x" * (1024 * 1024 - 16)
    message_id = ""
    for i in range(5):
        message_id = caller.save(chat_id, f"{i}{big}").message.message_id
    for i in range(3):
        caller.edit(chat_id, message_id, f"edit {i}{big}")

    def now(token: str) -> Any:
        return caller.stub.GetChat(api.GetChatRequest(chat_id=chat_id, page_token=token), metadata=caller.md)

    def then(token: str) -> Any:
        request = api.GetChatAtSnapshotRequest(chat_id=chat_id, version=8, page_token=token)
        return caller.stub.GetChatAtSnapshot(request, metadata=caller.md)

    for read in (now, then):
        first = read("")
        assert first.next_page_token and 0 < len(first.messages) < 5
        seen, token = [m.content[0] for m in first.messages], first.next_page_token
        while token:
            page = read(token)
            seen += [m.content[0] for m in page.messages]
            token = page.next_page_token
        assert seen == ["0", "1", "2", "3", "e"]
    versions = caller.stub.ListMessageVersions(
        api.ListMessageVersionsRequest(chat_id=chat_id, message_id=message_id), metadata=caller.md
    )
    assert versions.next_page_token and 0 < len(versions.versions) < 4


def test_a_token_without_a_page_size_goes_on_as_much_as_fits(caller: Caller, chat_id: str) -> None:
    """The pages after a too-large first answer are as large as fit too (they were pages of 100)."""
    big = "x" * (1024 * 1024 - 16)
    for i in range(4):
        caller.save(chat_id, f"big {i} {big}")
    small = api.SaveMessageRequest(chat_id=chat_id, role=pb.MESSAGE_ROLE_USER, content="small")
    for _ in range(250):
        caller.stub.SaveMessage(small, metadata=caller.md)
    first = caller.stub.GetChat(api.GetChatRequest(chat_id=chat_id), metadata=caller.md)
    assert first.next_page_token and len(first.messages) < 4
    rest = caller.stub.GetChat(
        api.GetChatRequest(chat_id=chat_id, page_token=first.next_page_token), metadata=caller.md
    )
    assert rest.next_page_token == "" and len(first.messages) + len(rest.messages) == 254
    assert [m.content for m in rest.messages][-250:] == ["small"] * 250
    # CompareSnapshots pages its changes the same way.
    start = caller.at(chat_id, version=1).snapshot.id

    def compare(token: str) -> Any:
        request = api.CompareSnapshotsRequest(
            chat_id=chat_id, from_snapshot_id=start, to_snapshot_id=first.snapshot.id, page_token=token
        )
        return caller.stub.CompareSnapshots(request, metadata=caller.md)

    changes = compare("")
    assert changes.next_page_token and len(changes.added_messages) < 3
    more = compare(changes.next_page_token)
    assert more.next_page_token == "" and len(changes.added_messages) + len(more.added_messages) == 253


def test_every_read_shows_a_version_with_the_same_fields(caller: Caller, chat_id: str) -> None:
    """Chat reads load versions their own way (text ids, microsecond times); each field must match the others."""
    metadata = struct_pb2.Struct()
    metadata.update({"source": "api", "score": 0.5})
    first = caller.save(chat_id, "draft", model_id="gpt-x", tokens=3, metadata=metadata)
    edited = caller.edit(chat_id, first.message.message_id, "final", edit_reason="typo")
    caller.save(chat_id, "answer", role=pb.MESSAGE_ROLE_ASSISTANT)
    versions = caller.stub.ListMessageVersions(
        api.ListMessageVersionsRequest(chat_id=chat_id, message_id=first.message.message_id), metadata=caller.md
    ).versions
    newest, oldest = versions
    assert newest == edited.message and oldest.superseded_at == newest.created_at
    assert newest.edited_by and newest.edit_reason == "typo" and oldest.metadata == metadata

    assert caller.chat(chat_id).messages[0] == newest
    # At version 1 the first version was current; read today it carries when it was superseded.
    (then,) = caller.at(chat_id, version=1).messages
    assert then == oldest and then.HasField("superseded_at") and not then.is_active
    change = caller.stub.CompareSnapshots(
        api.CompareSnapshotsRequest(
            chat_id=chat_id, from_snapshot_id=first.snapshot.id, to_snapshot_id=edited.snapshot.id
        ),
        metadata=caller.md,
    ).edited_messages[0]
    assert (change.before, change.after) == (oldest, newest)
