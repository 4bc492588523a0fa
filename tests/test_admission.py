"""Transfers take at most half the worker threads; short calls always find one."""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator

import grpc
import psycopg
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from generated.timemachine.v1 import resources_pb2 as pb
from generated.timemachine.v1 import service_pb2 as api
from generated.timemachine.v1 import service_pb2_grpc
from tests.conftest import (
    Caller,
    Stack,
    download_when_a_slot_frees,
    incomplete_uploads,
    rows,
    serving,
    upload_stream,
    when_a_slot_frees,
)

MiB = 1024 * 1024


@pytest.fixture
def small_server(stack: Stack) -> Iterator[service_pb2_grpc.TimeMachineServiceStub]:
    """4 worker threads: 2 for transfers, 1 for watches, the rest for short calls."""
    with serving(stack, grpc_workers=4) as served:
        yield served.stub


def test_transfers_over_the_cap_are_told_to_retry_and_short_calls_still_answer(
    caller: Caller, chat_id: str, small_server: service_pb2_grpc.TimeMachineServiceStub
) -> None:
    file_id = caller.upload(chat_id, "big.bin", os.urandom(24 * MiB)).file.id
    request = api.DownloadFileRequest(file_id=file_id)
    # Two slow readers: each stream is open, its server thread blocked on flow control.
    slow = [small_server.DownloadFile(request, metadata=caller.md) for _ in range(2)]
    for stream in slow:
        next(stream)
    third = small_server.DownloadFile(request, metadata=caller.md)
    with pytest.raises(grpc.RpcError) as refused:
        next(third)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    status = rpc_status.from_call(refused.value)
    assert status is not None and any(d.Is(error_details_pb2.RetryInfo.DESCRIPTOR) for d in status.details)
    started = time.monotonic()
    saved = small_server.SaveMessage(
        api.SaveMessageRequest(chat_id=chat_id, content="still here", role=pb.MESSAGE_ROLE_USER), metadata=caller.md
    )
    assert saved.snapshot.version > 0 and time.monotonic() - started < 5
    slow[0].cancel()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the cancelled stream gives its slot back
        try:
            received = sum(len(r.chunk) for r in small_server.DownloadFile(request, metadata=caller.md))
            break
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE
            time.sleep(0.2)
    assert received == 24 * MiB
    slow[1].cancel()


@pytest.fixture
def impatient_server(stack: Stack) -> Iterator[service_pb2_grpc.TimeMachineServiceStub]:
    with serving(stack, stream_idle_seconds=1) as served:
        yield served.stub


def test_an_upload_that_stops_sending_is_cancelled_and_leaves_nothing(
    stack: Stack, caller: Caller, chat_id: str, impatient_server: service_pb2_grpc.TimeMachineServiceStub
) -> None:
    """The client stays connected (it would answer pings) but sends nothing more."""
    release = threading.Event()

    def stalls() -> Iterator[api.UploadFileRequest]:
        yield from upload_stream(chat_id, "stalled.bin", os.urandom(10 * MiB), chunk_size=MiB)
        release.wait(30)

    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as ended:
        impatient_server.UploadFile(stalls(), metadata=caller.md)
    release.set()
    assert ended.value.code() == grpc.StatusCode.CANCELLED and time.monotonic() - started < 15
    deadline = time.monotonic() + 10
    while incomplete_uploads(stack) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert incomplete_uploads(stack) == []
    assert rows(stack, caller.tenant_id, "select count(*) from tm_files") == [(0,)]

    # A slow but steady upload (each gap under the limit) is not cut off.
    def steady() -> Iterator[api.UploadFileRequest]:
        for message in upload_stream(chat_id, "steady.bin", os.urandom(3 * MiB), chunk_size=MiB):
            time.sleep(0.5)
            yield message

    assert impatient_server.UploadFile(steady(), metadata=caller.md).file.size_bytes == 3 * MiB


def test_upload_streams_that_never_send_are_cancelled_and_free_their_slots(
    stack: Stack, caller: Caller, chat_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Opened and silent from the start: before, the idle limit began only after the first message."""
    release = threading.Event()

    def silent() -> Iterator[api.UploadFileRequest]:
        release.wait(30)
        yield from ()

    with serving(stack, grpc_workers=4, stream_idle_seconds=1) as served:
        calls = [served.stub.UploadFile.future(silent(), metadata=caller.md) for _ in range(2)]  # both slots
        started = time.monotonic()
        for call in calls:
            with pytest.raises(grpc.RpcError) as ended:
                call.result(timeout=20)
            assert ended.value.code() == grpc.StatusCode.CANCELLED
        assert time.monotonic() - started < 10
        # Cut off by us, not failed: no internal error logged (the guard's abort once reached the
        # handler as an error of its own, logged as a bug of ours).
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
        # The slots are free again (each within moments of its caller hearing CANCELLED): a real upload
        # goes through.
        uploaded = when_a_slot_frees(
            lambda: served.stub.UploadFile(upload_stream(chat_id, "after.bin", b"ok"), metadata=caller.md), within=5
        )
        assert uploaded.file.size_bytes == 2
    release.set()


def test_a_download_whose_client_never_reads_is_cancelled(stack: Stack, caller: Caller, chat_id: str) -> None:
    """Not even the header is taken: the first messages are paced like the rest."""
    file_id = caller.upload(chat_id, "never-read.bin", os.urandom(8 * MiB)).file.id
    with serving(stack, grpc_workers=4, stream_idle_seconds=1) as served:
        streams = [
            served.stub.DownloadFile(api.DownloadFileRequest(file_id=file_id), metadata=caller.md) for _ in range(2)
        ]
        time.sleep(0.5)  # both calls start and hold the two transfer slots, unread
        assert len(download_when_a_slot_frees(served.stub, file_id, caller.md, within=15)) == 8 * MiB
        for stream in streams:
            stream.cancel()


def test_downloads_nobody_reads_are_cancelled_and_free_their_slots(stack: Stack, caller: Caller, chat_id: str) -> None:
    # Larger than what the transport may buffer for a reader that stopped: with 24 MiB,
    # about one run in ten delivered the whole file into buffers and nothing was cut off.
    file_id = caller.upload(chat_id, "unread.bin", os.urandom(64 * MiB), chunk_size=MiB).file.id
    request = api.DownloadFileRequest(file_id=file_id)
    with serving(stack, grpc_workers=4, stream_idle_seconds=1) as served:
        server = served.stub
        unread = [server.DownloadFile(request, metadata=caller.md) for _ in range(2)]
        for stream in unread:
            next(stream)  # the header, then the reader stops reading
        # Both slots were taken; they come back once the idle readers are cut off.
        assert len(download_when_a_slot_frees(server, file_id, caller.md, within=15)) == 64 * MiB
        for stream in unread:
            with pytest.raises(grpc.RpcError) as ended:
                for _ in stream:
                    pass
            assert ended.value.code() == grpc.StatusCode.CANCELLED


def test_short_calls_run_in_a_bounded_pool_of_their_own_and_transfers_do_not_wait_for_it(
    stack: Stack, caller: Caller
) -> None:
    """TM_GRPC_CALL_WORKERS bounds the short calls running at once (the rest wait their turn, within their
    deadline); transfers run in the other pool, and an ordinary save on the event loop, so a busy
    short-call pool holds up neither."""
    busy, other = str(uuid.uuid4()), str(uuid.uuid4())
    caller.save(busy, "first")
    file_id = caller.upload(other, "f.bin", b"x" * 1000).file.id
    with serving(stack, grpc_call_workers=1) as served, psycopg.connect(stack.runtime.database_url) as admin:
        admin.execute(  # hold the chat's lock: archiving it waits, holding the one short-call thread
            "select 1 from tm_chats where tenant_id = %s and chat_id = %s for update", (caller.tenant_id, busy)
        )
        waiting = served.stub.ArchiveChat.future(api.ArchiveChatRequest(chat_id=busy), metadata=caller.md)
        time.sleep(0.5)
        assert not waiting.done()
        # A health check, a transfer and an ordinary save are served meanwhile,
        health = health_pb2_grpc.HealthStub(grpc.insecure_channel(served.address))
        assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == health_pb2.HealthCheckResponse.SERVING
        replies = list(
            served.stub.DownloadFile(api.DownloadFileRequest(file_id=file_id), metadata=caller.md, timeout=5)
        )
        assert b"".join(r.chunk for r in replies[1:]) == b"x" * 1000
        saved = api.SaveMessageRequest(chat_id=other, content="on the loop", role=pb.MESSAGE_ROLE_USER)
        assert served.stub.SaveMessage(saved, metadata=caller.md, timeout=5).snapshot.version == 2
        # while another short call waits for the thread, and gives up with its deadline, having written nothing.
        queued = api.ArchiveChatRequest(chat_id=other)
        with pytest.raises(grpc.RpcError) as late:
            served.stub.ArchiveChat(queued, metadata=caller.md, timeout=1)
        assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        admin.rollback()
        assert waiting.result(timeout=10).snapshot.version == 2
        # The queued call ran next, found its deadline passed (service/database.py) and wrote nothing:
        # a call after it sees that.
        after = served.stub.RenameChat(api.RenameChatRequest(chat_id=busy, title="after"), metadata=caller.md)
        assert after.snapshot.version == 3
        assert (caller.chat(other).title, caller.chat(other).current_version) == ("", 2)
