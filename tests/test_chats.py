"""The chat list and a chat's life: ListChats, ArchiveChat/UnarchiveChat, DeleteChat/UndeleteChat."""

from __future__ import annotations

import uuid

import grpc

from generated.timemachine.v1 import resources_pb2 as pb
from generated.timemachine.v1 import service_pb2 as api
from tests.conftest import Caller, rpc_error


def _list(caller: Caller, **kw: object) -> api.ListChatsResponse:
    return caller.stub.ListChats(api.ListChatsRequest(**kw), metadata=caller.md)  # type: ignore[arg-type]


def _ids(reply: api.ListChatsResponse) -> list[str]:
    return [c.chat_id for c in reply.chats]


def _new_chats(caller: Caller, titles: list[str]) -> list[str]:
    chats = []
    for title in titles:
        chat = str(uuid.uuid4())
        caller.save(chat, f"first words of {title}")
        caller.rename(chat, title)
        chats.append(chat)
    return chats


def test_the_list_is_newest_change_first_paged_and_filtered(caller: Caller, other: Caller) -> None:
    chats = _new_chats(caller, ["Trip to Lisbon", "Budget 100%", "budget_2026", "Recipes"])
    _new_chats(other, ["Trip to Lisbon"])  # another tenant's chat never shows
    caller.save(chats[0], "a later word")  # the first chat changed last
    listed = _list(caller)
    assert _ids(listed) == [chats[0], chats[3], chats[2], chats[1]] and not listed.next_page_token
    first = listed.chats[0]
    assert (first.title, first.current_version, first.message_count, first.file_count) == ("Trip to Lisbon", 3, 2, 0)
    assert not first.archived and not first.deleted and first.updated_at.seconds > 0
    pages, token = [], ""
    while True:
        page = _list(caller, page_size=3, page_token=token)
        pages.append(_ids(page))
        token = page.next_page_token
        if not token:
            break
    assert pages == [[chats[0], chats[3], chats[2]], [chats[1]]]
    # Title text anywhere, case-insensitive, its % and _ literal.
    assert _ids(_list(caller, title_query="BUDGET")) == [chats[2], chats[1]]
    assert _ids(_list(caller, title_query="100%")) == [chats[1]]
    assert _ids(_list(caller, title_query="t_2")) == [chats[2]]
    assert _ids(_list(caller, title_query="%")) == [chats[1]]
    # The user who wrote last.
    someone = Caller(caller.stub, caller.tenant_id, str(uuid.uuid4()))
    someone.save(chats[3], "from someone else")
    assert _ids(_list(caller, user_id=someone.user_id)) == [chats[3]]
    assert chats[3] not in _ids(_list(caller, user_id=caller.user_id))
    # A token belongs to its filters.
    token = _list(caller, page_size=1).next_page_token
    mismatch = rpc_error(_list, caller, page_size=1, page_token=token, title_query="trip")
    assert mismatch.code() is grpc.StatusCode.INVALID_ARGUMENT


def test_archive_hides_from_the_list_and_keeps_taking_writes(caller: Caller) -> None:
    chat, kept = _new_chats(caller, ["Old project", "Current"])
    archived = caller.stub.ArchiveChat(api.ArchiveChatRequest(chat_id=chat, request_id="arch-1"), metadata=caller.md)
    snapshot = archived.snapshot
    assert snapshot.trigger == pb.SNAPSHOT_TRIGGER_CHAT_ARCHIVED and snapshot.version == 3
    assert snapshot.checksum == caller.chat(chat).snapshot.checksum  # the content did not change
    assert _ids(_list(caller)) == [kept]
    shown = _list(caller, include_archived=True)
    assert _ids(shown) == [chat, kept] and shown.chats[0].archived
    again = caller.stub.ArchiveChat(api.ArchiveChatRequest(chat_id=chat, request_id="arch-1"), metadata=caller.md)
    assert again.snapshot == snapshot  # a retry: the first answer
    twice = rpc_error(caller.stub.ArchiveChat, api.ArchiveChatRequest(chat_id=chat), metadata=caller.md)
    assert twice.code() is grpc.StatusCode.FAILED_PRECONDITION and "archived already" in twice.details()
    assert caller.save(chat, "still writable").snapshot.version == 4
    back = caller.stub.UnarchiveChat(api.UnarchiveChatRequest(chat_id=chat), metadata=caller.md)
    assert back.snapshot.trigger == pb.SNAPSHOT_TRIGGER_CHAT_UNARCHIVED
    assert _ids(_list(caller)) == [chat, kept]


def test_a_deleted_chat_leaves_the_list_refuses_writes_and_comes_back(caller: Caller, chat_id: str) -> None:
    saved = caller.save(chat_id, "keep me")
    stale = rpc_error(
        caller.stub.DeleteChat, api.DeleteChatRequest(chat_id=chat_id, expected_version=7), metadata=caller.md
    )
    assert stale.code() is grpc.StatusCode.ABORTED
    deleted = caller.stub.DeleteChat(api.DeleteChatRequest(chat_id=chat_id, expected_version=1), metadata=caller.md)
    assert deleted.snapshot.trigger == pb.SNAPSHOT_TRIGGER_CHAT_DELETED
    assert chat_id not in _ids(_list(caller))
    assert (
        _ids(_list(caller, include_deleted=True)) == [chat_id] and _list(caller, include_deleted=True).chats[0].deleted
    )
    for refused in (
        lambda: caller.save(chat_id, "no"),
        lambda: caller.edit(chat_id, saved.message.message_id, "no"),
        lambda: caller.rename(chat_id, "no"),
        lambda: caller.upload(chat_id, "a.txt", b"no"),
        lambda: caller.restore(chat_id, saved.snapshot.id, pb.RESTORE_SCOPE_FULL_CHAT),
        lambda: caller.stub.ArchiveChat(api.ArchiveChatRequest(chat_id=chat_id), metadata=caller.md),
    ):
        error = rpc_error(refused)
        assert error.code() is grpc.StatusCode.FAILED_PRECONDITION and "deleted" in error.details()
    # Every version stays readable.
    assert [m.content for m in caller.chat(chat_id).messages] == ["keep me"]
    assert caller.verify(chat_id).ok
    back = caller.stub.UndeleteChat(api.UndeleteChatRequest(chat_id=chat_id), metadata=caller.md)
    assert back.snapshot.trigger == pb.SNAPSHOT_TRIGGER_CHAT_UNDELETED and back.snapshot.version == 3
    assert caller.save(chat_id, "welcome back").snapshot.version == 4
    assert _ids(_list(caller)) == [chat_id]
    timeline = caller.stub.GetTimeline(api.GetTimelineRequest(chat_id=chat_id), metadata=caller.md).snapshots
    assert [s.trigger for s in timeline][1:3] == [pb.SNAPSHOT_TRIGGER_CHAT_DELETED, pb.SNAPSHOT_TRIGGER_CHAT_UNDELETED]


def test_bad_input_and_other_tenants_chats(caller: Caller, other: Caller, chat_id: str) -> None:
    caller.save(chat_id, "mine")
    # Another tenant's chat is no chat of theirs.
    for call, request in (
        (other.stub.ArchiveChat, api.ArchiveChatRequest(chat_id=chat_id)),
        (other.stub.DeleteChat, api.DeleteChatRequest(chat_id=chat_id)),
        (other.stub.UndeleteChat, api.UndeleteChatRequest(chat_id=chat_id)),
        (other.stub.UnarchiveChat, api.UnarchiveChatRequest(chat_id=str(uuid.uuid4()))),
    ):
        assert rpc_error(call, request, metadata=other.md).code() is grpc.StatusCode.NOT_FOUND
    assert _ids(_list(other)) == []
    for listing in (
        api.ListChatsRequest(page_size=-1),
        api.ListChatsRequest(page_token="!!"),
        api.ListChatsRequest(user_id="not-a-uuid"),
        api.ListChatsRequest(title_query="x" * 5000),
    ):
        assert rpc_error(caller.stub.ListChats, listing, metadata=caller.md).code() is grpc.StatusCode.INVALID_ARGUMENT
    bad = rpc_error(caller.stub.ArchiveChat, api.ArchiveChatRequest(chat_id="nope"), metadata=caller.md)
    assert bad.code() is grpc.StatusCode.INVALID_ARGUMENT
    # Nothing changed for the owner.
    assert caller.chat(chat_id).snapshot.version == 1
