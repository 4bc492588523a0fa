"""CompareSnapshots and WatchChat."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import uuid

import grpc
import pytest

from generated.timemachine.v1 import service_pb2 as api
from generated.timemachine.v1 import service_pb2_grpc
from service.errors import ResourceExhausted
from service.events import Watcher
from service.models import Identity, Snapshot
from tests.conftest import Caller, Stack, rpc_error, serving


def test_compare_reports_messages_files_and_title(caller: Caller, chat_id: str) -> None:
    keep = caller.save(chat_id, "stays")
    edit = caller.save(chat_id, "before edit")
    gone = caller.save(chat_id, "will be deleted")
    caller.upload(chat_id, "a.txt", b"one", mime_type="text/plain")
    caller.upload(chat_id, "old.txt", b"old", mime_type="text/plain")
    start = caller.chat(chat_id).snapshot
    caller.edit(chat_id, edit.message.message_id, "after edit")
    caller.delete(chat_id, gone.message.message_id)
    added = caller.save(chat_id, "new one")
    caller.upload(chat_id, "a.txt", b"two", mime_type="text/plain")
    old = next(f for f in caller.chat(chat_id).files if f.original_name == "old.txt")
    caller.stub.DeleteFile(api.DeleteFileRequest(chat_id=chat_id, file_id=old.id), metadata=caller.md)
    caller.upload(chat_id, "b.txt", b"new", mime_type="text/plain")
    caller.rename(chat_id, "Renamed")
    end = caller.chat(chat_id).snapshot
    diff = caller.stub.CompareSnapshots(
        api.CompareSnapshotsRequest(chat_id=chat_id, from_snapshot_id=start.id, to_snapshot_id=end.id),
        metadata=caller.md,
    )
    assert [m.message_id for m in diff.added_messages] == [added.message.message_id]
    assert [m.message_id for m in diff.removed_messages] == [gone.message.message_id]
    assert [(c.before.content, c.after.content) for c in diff.edited_messages] == [("before edit", "after edit")]
    assert keep.message.message_id not in {c.after.message_id for c in diff.edited_messages}
    assert [f.original_name for f in diff.added_files] == ["b.txt"]
    assert [f.original_name for f in diff.removed_files] == ["old.txt"]
    assert [(c.before.version, c.after.version) for c in diff.changed_files] == [(1, 2)]
    assert diff.title_changed and (diff.from_title, diff.to_title) == ("", "Renamed")
    same = caller.stub.CompareSnapshots(
        api.CompareSnapshotsRequest(chat_id=chat_id, from_snapshot_id=end.id, to_snapshot_id=end.id),
        metadata=caller.md,
    )
    assert not (same.added_messages or same.removed_messages or same.edited_messages or same.title_changed)


def test_compare_needs_snapshots_of_the_chat(caller: Caller, other: Caller, chat_id: str) -> None:
    snap = caller.save(chat_id, "x").snapshot.id
    bad = api.CompareSnapshotsRequest(chat_id=chat_id, from_snapshot_id="nope", to_snapshot_id=snap)
    assert rpc_error(caller.stub.CompareSnapshots, bad, metadata=caller.md).code() == grpc.StatusCode.INVALID_ARGUMENT
    theirs = api.CompareSnapshotsRequest(chat_id=chat_id, from_snapshot_id=snap, to_snapshot_id=snap)
    assert rpc_error(other.stub.CompareSnapshots, theirs, metadata=other.md).code() == grpc.StatusCode.NOT_FOUND


def test_watch_replays_then_streams_new_snapshots(caller: Caller, chat_id: str) -> None:
    caller.save(chat_id, "one")
    caller.save(chat_id, "two")
    stream = caller.stub.WatchChat(api.WatchChatRequest(chat_id=chat_id, after_version=1), metadata=caller.md)
    received: list[tuple[int, float]] = []
    done = threading.Event()

    def consume() -> None:
        try:
            for reply in stream:
                received.append((reply.snapshot.version, time.monotonic()))
                if len(received) == 3:
                    break
        except grpc.RpcError:
            pass
        done.set()

    threading.Thread(target=consume, daemon=True).start()
    deadline = time.monotonic() + 10
    while not received and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [v for v, _ in received] == [2]  # history after after_version first
    sent = time.monotonic()
    caller.save(chat_id, "three")
    caller.rename(chat_id, "live")
    assert done.wait(10)
    stream.cancel()
    assert [v for v, _ in received] == [2, 3, 4]
    assert received[1][1] - sent < 1.5  # pushed on commit, not found by the 2 s fallback poll


def test_watch_another_tenants_chat_is_not_found(caller: Caller, other: Caller, chat_id: str) -> None:
    caller.save(chat_id, "private")
    stream = other.stub.WatchChat(api.WatchChatRequest(chat_id=chat_id), metadata=other.md)
    assert rpc_error(next, stream).code() == grpc.StatusCode.NOT_FOUND
    negative = caller.stub.WatchChat(api.WatchChatRequest(chat_id=chat_id, after_version=-1), metadata=caller.md)
    assert rpc_error(next, negative).code() == grpc.StatusCode.INVALID_ARGUMENT


def test_open_watches_are_capped(stack: Stack, caller: Caller, chat_id: str) -> None:
    caller.save(chat_id, "one")
    watcher = Watcher(stack.stores.db, stack.app.events, max_watches=1)
    who = Identity(uuid.UUID(caller.tenant_id), None)

    async def run() -> None:
        first = watcher.watch(who, chat_id, 0)
        assert (await anext(first)).version == 1
        second = watcher.watch(who, chat_id, 0)
        with pytest.raises(ResourceExhausted):
            await anext(second)
        await first.aclose()  # a finished watch frees its slot
        third = watcher.watch(who, chat_id, 0)
        assert (await anext(third)).version == 1
        await third.aclose()

    asyncio.run_coroutine_threadsafe(run(), stack.app.loop).result(timeout=30)


def test_five_hundred_watchers_hear_every_event_in_order_while_calls_answer(
    stack: Stack, caller: Caller, chat_id: str
) -> None:
    caller.save(chat_id, "one")
    writes = 20
    slots = stack.app.product.watcher.slots
    before = slots.in_use

    async def watch_all() -> list[list[int]]:
        channels = [grpc.aio.insecure_channel(f"127.0.0.1:{stack.app.port}") for _ in range(5)]
        try:
            stubs = [service_pb2_grpc.TimeMachineServiceStub(channel) for channel in channels]

            async def follow(index: int) -> list[int]:
                request = api.WatchChatRequest(chat_id=chat_id, after_version=1)
                call = stubs[index % 5].WatchChat(request, metadata=caller.md, timeout=60)
                versions = []
                async for reply in call:
                    versions.append(reply.snapshot.version)
                    if len(versions) == writes:
                        call.cancel()
                        break
                return versions

            tasks = [asyncio.ensure_future(follow(i)) for i in range(500)]
            deadline = time.monotonic() + 30
            while slots.in_use < before + 500 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert slots.in_use >= before + 500  # every one is open at once
            loop = asyncio.get_running_loop()
            started = time.monotonic()
            for i in range(writes):
                await loop.run_in_executor(None, caller.save, chat_id, f"live {i}")
            chat = await loop.run_in_executor(None, caller.chat, chat_id)  # a short call answers meanwhile
            assert chat.snapshot.version == writes + 1 and time.monotonic() - started < 30
            return list(await asyncio.gather(*tasks))
        finally:
            for channel in channels:
                await channel.close()

    heard = asyncio.run(watch_all())
    assert all(versions == list(range(2, writes + 2)) for versions in heard)


def test_a_watcher_that_stops_reading_is_ended_and_no_one_waits_for_it(
    stack: Stack, caller: Caller, chat_id: str
) -> None:
    caller.save(chat_id, "one")
    events = stack.app.events
    buffer, events.buffer = events.buffer, 4
    try:
        # Its own connection with a fixed receive window: what it does not read stops the server's writes.
        channel = grpc.insecure_channel(f"127.0.0.1:{stack.app.port}", options=[("grpc.http2.bdp_probe", 0)])
        stub = service_pb2_grpc.TimeMachineServiceStub(channel)
        stalled = stub.WatchChat(api.WatchChatRequest(chat_id=chat_id, after_version=1), metadata=caller.md)
        reader = caller.stub.WatchChat(api.WatchChatRequest(chat_id=chat_id, after_version=1), metadata=caller.md)
        heard: list[int] = []
        done = threading.Event()

        def read() -> None:
            for reply in reader:
                heard.append(reply.snapshot.version)
                if reply.snapshot.version == 601:
                    break
            done.set()

        threading.Thread(target=read, daemon=True).start()
        started = time.monotonic()
        for i in range(600):
            caller.save(chat_id, f"m{i}")
        assert done.wait(30)
        assert heard == list(range(2, 602))
        assert time.monotonic() - started < 60
        with pytest.raises(grpc.RpcError) as ended:
            for _ in stalled:
                pass
        assert ended.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "resume with after_version=" in (ended.value.details() or "")
        reader.cancel()
        channel.close()
    finally:
        events.buffer = buffer


def test_chats_nobody_watches_take_no_memory(stack: Stack, caller: Caller, chat_id: str) -> None:
    """The listener kept a counter for every chat ever written, for ever."""
    events = stack.app.events
    for _ in range(200):
        caller.save(str(uuid.uuid4()), "written, never watched")
    caller.save(chat_id, "watched")
    stream = caller.stub.WatchChat(api.WatchChatRequest(chat_id=chat_id, after_version=0), metadata=caller.md)
    assert next(stream).snapshot.version == 1
    time.sleep(1.5)  # the listener has heard every notification by now
    assert events.followed() == 1
    caller.save(chat_id, "live")
    assert next(stream).snapshot.version == 2
    stream.cancel()
    deadline = time.monotonic() + 10
    while events.followed() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert events.followed() == 0


def test_a_watch_that_replayed_keeps_no_page_of_snapshots(caller: Caller, chat_id: str) -> None:
    """A watch replaying 150 snapshots read them in pages of 100 and kept the last page (50) for its life."""
    for i in range(150):
        caller.save(chat_id, f"message {i}")
    stream = caller.stub.WatchChat(api.WatchChatRequest(chat_id=chat_id, after_version=0), metadata=caller.md)
    try:
        assert [next(stream).snapshot.version for _ in range(150)] == list(range(1, 151))
        time.sleep(0.5)  # the watch goes on to wait for new snapshots
        gc.collect()
        chat = uuid.UUID(chat_id)
        held = [o for o in gc.get_objects() if isinstance(o, Snapshot) and o.chat_id == chat]
        assert len(held) <= 2  # the last one sent, in the watch and its handler
    finally:
        stream.cancel()


def test_a_compare_too_large_for_one_answer_comes_in_pages(caller: Caller, chat_id: str) -> None:
    big = "y" * (1024 * 1024 - 16)
    first = caller.save(chat_id, "start").snapshot.id
    last = ""
    for i in range(5):
        last = caller.save(chat_id, f"{i}{big}").snapshot.id
    request = api.CompareSnapshotsRequest(chat_id=chat_id, from_snapshot_id=first, to_snapshot_id=last)
    page = caller.stub.CompareSnapshots(request, metadata=caller.md)
    assert page.next_page_token and 0 < len(page.added_messages) < 5
    added = [m.content[0] for m in page.added_messages]
    while page.next_page_token:
        request.page_token = page.next_page_token
        page = caller.stub.CompareSnapshots(request, metadata=caller.md)
        added += [m.content[0] for m in page.added_messages]
    assert added == ["0", "1", "2", "3", "4"]


def test_a_watch_survives_its_replicas_restart_by_resuming_after_its_last_version(
    stack: Stack, caller: Caller, chat_id: str
) -> None:
    caller.save(chat_id, "one")
    with serving(stack) as first:
        stream = first.stub.WatchChat(api.WatchChatRequest(chat_id=chat_id), metadata=caller.md, timeout=30)
        assert next(stream).snapshot.version == 1
        caller.save(chat_id, "two")
        last = next(stream).snapshot.version
        assert last == 2
    # That replica is gone; the chat moves on while the watcher reconnects.
    with pytest.raises(grpc.RpcError):
        next(stream)
    caller.save(chat_id, "three")
    with serving(stack) as second:
        resumed = second.stub.WatchChat(
            api.WatchChatRequest(chat_id=chat_id, after_version=last), metadata=caller.md, timeout=30
        )
        assert next(resumed).snapshot.version == 3  # what it missed, from history
        caller.save(chat_id, "four")
        assert next(resumed).snapshot.version == 4  # then live, without a gap or a repeat
        resumed.cancel()
