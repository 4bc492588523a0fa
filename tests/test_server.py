"""The server's surface: health, reflection, UNIMPLEMENTED, generated code, migrations."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2

from service import migrations
from tests.conftest import Stack, rpc_error, serving

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("service", ["", "timemachine.v1.TimeMachineService"])
def test_health_is_serving(stack: Stack, service: str) -> None:
    stub = health_pb2_grpc.HealthStub(stack.channel)
    reply = stub.Check(health_pb2.HealthCheckRequest(service=service))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("version", ["v1alpha", "v1"])
def test_reflection_lists_services_and_describes_messages(stack: Stack, version: str) -> None:
    call = stack.channel.stream_stream(
        f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    replies = list(
        call(
            iter(
                [
                    reflection_pb2.ServerReflectionRequest(list_services=""),
                    reflection_pb2.ServerReflectionRequest(file_containing_symbol="timemachine.v1.SaveMessageRequest"),
                ]
            )
        )
    )
    names = {s.name for s in replies[0].list_services_response.service}
    assert {"timemachine.v1.TimeMachineService", "grpc.health.v1.Health"} <= names
    assert replies[1].file_descriptor_response.file_descriptor_proto


@pytest.mark.parametrize("version", ["v1alpha", "v1"])
@pytest.mark.parametrize(
    ("symbol", "file"),
    [
        ("timemachine.v1.TimeMachineService", "timemachine/v1/service.proto"),
        ("timemachine.v1.TimeMachineService.Restore", "timemachine/v1/service.proto"),  # grpc/grpc#34743
        ("timemachine.v1.RestoreRequest", "timemachine/v1/service.proto"),
        ("timemachine.v1.RestoreRequest.chat_id", "timemachine/v1/service.proto"),
        ("timemachine.v1.RestoreScope", "timemachine/v1/resources.proto"),
        ("timemachine.v1.RESTORE_SCOPE_FULL_CHAT", "timemachine/v1/resources.proto"),
        ("timemachine.v1.RestoreScope.RESTORE_SCOPE_FULL_CHAT", "timemachine/v1/resources.proto"),
        # The v1 additions, as grpcurl would describe them.
        ("timemachine.v1.TimeMachineService.ImportChat", "timemachine/v1/service.proto"),
        ("timemachine.v1.TimeMachineService.EraseTenant", "timemachine/v1/service.proto"),
        ("timemachine.v1.ListChatsRequest.title_query", "timemachine/v1/service.proto"),
        ("timemachine.v1.RestorePreview", "timemachine/v1/service.proto"),
        ("timemachine.v1.Attachment", "timemachine/v1/resources.proto"),
        ("timemachine.v1.REFERENCE_TYPE_INLINE", "timemachine/v1/resources.proto"),
        ("timemachine.v1.SNAPSHOT_TRIGGER_CHAT_IMPORTED", "timemachine/v1/resources.proto"),
    ],
)
def test_reflection_finds_every_kind_of_symbol(stack: Stack, version: str, symbol: str, file: str) -> None:
    """What `grpcurl describe` asks for: services, methods, messages, fields and enum values."""
    call = stack.channel.stream_stream(
        f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    (reply,) = call(iter([reflection_pb2.ServerReflectionRequest(file_containing_symbol=symbol)]))
    assert reply.WhichOneof("message_response") == "file_descriptor_response", reply
    names = [
        descriptor_pb2.FileDescriptorProto.FromString(raw).name
        for raw in reply.file_descriptor_response.file_descriptor_proto
    ]
    assert names[0] == file


def test_unknown_method_is_unimplemented(stack: Stack) -> None:
    call = stack.channel.unary_unary("/timemachine.v1.TimeMachineService/NoSuchRpc")
    error = rpc_error(call, b"")
    assert error.code() == grpc.StatusCode.UNIMPLEMENTED


def test_generated_code_is_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_proto.py"), "--check", str(ROOT / "generated")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_migrations_apply_once(stack: Stack) -> None:
    assert migrations.apply(stack.runtime.database_url) == []
    assert [m.number for m in migrations.available()] == list(range(1, len(migrations.available()) + 1))


def test_a_started_server_keeps_its_start_up_objects_out_of_full_collections(stack: Stack) -> None:
    """Start-up's objects live as long as the process. Frozen, a full collection no longer walks them:
    it took 75 ms with every Python thread stopped (server/app.py)."""
    with serving(stack):
        frozen = gc.get_freeze_count()
        assert frozen > 100_000
        assert len(gc.get_objects()) < frozen / 10  # what a full collection still walks
