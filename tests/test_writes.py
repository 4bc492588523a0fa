"""One transaction per write: gapless versions under concurrency, idempotency, version guards."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import grpc

from generated.timemachine.v1 import resources_pb2 as pb
from generated.timemachine.v1 import service_pb2 as api
from tests.conftest import Caller, rpc_error

THREADS = 16
PER_THREAD = 25


def test_sixteen_writers_on_one_chat_get_versions_1_to_400(caller: Caller, chat_id: str) -> None:
    def writer(thread: int) -> list[int]:
        return [caller.save(chat_id, f"t{thread}-m{i}", tokens=1).snapshot.version for i in range(PER_THREAD)]

    with ThreadPoolExecutor(THREADS) as pool:
        versions = [v for chunk in pool.map(writer, range(THREADS)) for v in chunk]
    total = THREADS * PER_THREAD
    assert sorted(versions) == list(range(1, total + 1))
    now = caller.chat(chat_id)
    assert now.current_version == total and len(now.messages) == total
    assert now.snapshot.message_count == total and now.snapshot.total_tokens == total
    report = caller.verify(chat_id)
    assert report.ok, report.problems
    assert report.snapshots_checked == total


def test_retry_with_same_request_id_returns_first_result(caller: Caller, chat_id: str) -> None:
    first = caller.save(chat_id, "once", request_id="req-1")
    again = caller.save(chat_id, "once", request_id="req-1")
    assert again.snapshot.id == first.snapshot.id and again.message.id == first.message.id
    edit = caller.edit(chat_id, first.message.message_id, "twice", request_id="req-2")
    edit_again = caller.edit(chat_id, first.message.message_id, "twice", request_id="req-2")
    assert edit_again.snapshot.id == edit.snapshot.id and edit_again.message.version == 2
    restore = caller.restore(chat_id, first.snapshot.id, pb.RESTORE_SCOPE_FULL_CHAT, request_id="req-3")
    restore_again = caller.restore(chat_id, first.snapshot.id, pb.RESTORE_SCOPE_FULL_CHAT, request_id="req-3")
    assert restore_again.new_snapshot_id == restore.new_snapshot_id
    assert restore_again.messages_restored == restore.messages_restored == 1
    assert caller.chat(chat_id).current_version == 3
    log = caller.stub.ListRestores(api.ListRestoresRequest(chat_id=chat_id), metadata=caller.md).restores
    assert len(log) == 1
    # The same id for a different kind of call is refused, not replayed.
    error = rpc_error(
        caller.stub.RenameChat,
        api.RenameChatRequest(chat_id=chat_id, title="x", request_id="req-1"),
        metadata=caller.md,
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_concurrent_retries_write_once(caller: Caller, chat_id: str) -> None:
    caller.save(chat_id, "seed")
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: caller.save(chat_id, "dup", request_id="same"), range(8)))
    assert len({r.snapshot.id for r in results}) == 1
    assert caller.chat(chat_id).current_version == 2


def test_expected_version_conflict_is_aborted_and_writes_nothing(caller: Caller, chat_id: str) -> None:
    caller.save(chat_id, "one", expected_version=0)
    caller.save(chat_id, "two", expected_version=1)
    error = rpc_error(caller.save, chat_id, "stale", expected_version=1)
    assert error.code() == grpc.StatusCode.ABORTED
    assert "version 2" in (error.details() or "")
    error = rpc_error(
        caller.stub.RenameChat,
        api.RenameChatRequest(chat_id=chat_id, title="t", expected_version=5),
        metadata=caller.md,
    )
    assert error.code() == grpc.StatusCode.ABORTED
    now = caller.chat(chat_id)
    assert now.current_version == 2 and [m.content for m in now.messages] == ["one", "two"]


def test_write_to_unknown_chat_registers_it_but_edit_does_not(caller: Caller) -> None:
    fresh = str(uuid.uuid4())
    error = rpc_error(caller.edit, fresh, str(uuid.uuid4()), "x")
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert rpc_error(caller.chat, fresh).code() == grpc.StatusCode.NOT_FOUND
    caller.rename(fresh, "New")
    assert caller.chat(fresh).title == "New"
