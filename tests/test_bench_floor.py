"""bench/floor.py writes what our SaveMessage writes, so the bench compares like with like."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from bench.floor import FloorServer
from generated.timemachine.v1 import resources_pb2 as pb
from generated.timemachine.v1 import service_pb2 as api
from generated.timemachine.v1 import service_pb2_grpc
from tests.conftest import Caller, Stack


@pytest.fixture
def floor(stack: Stack) -> Iterator[service_pb2_grpc.TimeMachineServiceStub]:
    server = FloorServer(stack.runtime.database_url, 2)
    channel = grpc.insecure_channel(server.address)
    try:
        yield service_pb2_grpc.TimeMachineServiceStub(channel)
    finally:
        channel.close()
        server.stop()


def test_the_floor_writes_history_our_server_reads_and_verifies(
    floor: service_pb2_grpc.TimeMachineServiceStub, caller: Caller, chat_id: str
) -> None:
    answers = [
        floor.SaveMessage(
            api.SaveMessageRequest(chat_id=chat_id, role=role, content=text, tokens=3), metadata=caller.md
        )
        for role, text in ((pb.MESSAGE_ROLE_USER, "question"), (pb.MESSAGE_ROLE_ASSISTANT, "answer"))
    ]
    assert [a.snapshot.version for a in answers] == [1, 2]

    ours = caller.save(chat_id, "through our server")  # the chat's history goes on where the floor left it
    assert ours.snapshot.version == 3
    chat = caller.chat(chat_id)
    assert [m.content for m in chat.messages] == ["question", "answer", "through our server"]
    assert [m.id for m in chat.messages[:2]] == [a.message.id for a in answers]
    timeline = caller.stub.GetTimeline(api.GetTimelineRequest(chat_id=chat_id), metadata=caller.md)
    checksums = {s.version: s.checksum for s in timeline.snapshots}
    assert [checksums[a.snapshot.version] for a in answers] == [a.snapshot.checksum for a in answers]
    assert [s.trigger for s in timeline.snapshots if s.version < 3] == [
        pb.SNAPSHOT_TRIGGER_MESSAGE_SENT,
        pb.SNAPSHOT_TRIGGER_MESSAGE_RECEIVED,
    ]
    report = caller.verify(chat_id)
    assert report.ok, report.problems
    assert report.snapshots_checked == 3
