"""TM_AUTH_MODE=jwt end to end: tenant from tenant_id, user from sub; x- keys ignored."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace

import grpc
import jwt
import pytest

from generated.timemachine.v1 import resources_pb2 as pb
from generated.timemachine.v1 import service_pb2 as api
from generated.timemachine.v1 import service_pb2_grpc
from server.app import App
from tests.conftest import Stack, rpc_error

SECRET = "j" * 48


@pytest.fixture
def jwt_stub(stack: Stack) -> Iterator[service_pb2_grpc.TimeMachineServiceStub]:
    settings = replace(stack.app.settings, auth_mode="jwt", jwt_secret=SECRET, export_workers=0)
    app = App(settings, stack.stores, address="127.0.0.1:0")
    app.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{app.port}")
    yield service_pb2_grpc.TimeMachineServiceStub(channel)
    channel.close()
    app.stop(grace=1)


def bearer(tenant: str, user: str | None = None, key: str = SECRET) -> tuple[tuple[str, str], ...]:
    claims = {"tenant_id": tenant, **({"sub": user} if user else {})}
    return (("authorization", "Bearer " + jwt.encode(claims, key, algorithm="HS256")),)


def test_claims_decide_the_tenant(jwt_stub: service_pb2_grpc.TimeMachineServiceStub) -> None:
    tenant, user, chat = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    request = api.SaveMessageRequest(chat_id=chat, role=pb.MESSAGE_ROLE_USER, content="signed")
    saved = jwt_stub.SaveMessage(request, metadata=bearer(tenant, user))
    assert saved.snapshot.user_id == user
    read = jwt_stub.GetChat(api.GetChatRequest(chat_id=chat), metadata=bearer(tenant))
    assert [m.content for m in read.messages] == ["signed"]
    # Another tenant's token, even with this tenant's x-tenant-id, sees nothing.
    spoof = (*bearer(str(uuid.uuid4())), ("x-tenant-id", tenant))
    assert rpc_error(jwt_stub.GetChat, api.GetChatRequest(chat_id=chat), metadata=spoof).code() == (
        grpc.StatusCode.NOT_FOUND
    )


def test_missing_or_bad_tokens_are_unauthenticated(jwt_stub: service_pb2_grpc.TimeMachineServiceStub) -> None:
    tenant = str(uuid.uuid4())
    request = api.SaveMessageRequest(chat_id=str(uuid.uuid4()), role=pb.MESSAGE_ROLE_USER, content="x")
    for metadata in (
        (("x-tenant-id", tenant), ("x-user-id", str(uuid.uuid4()))),
        bearer(tenant, str(uuid.uuid4()), key="k" * 48),
        bearer(tenant),  # a write needs sub
    ):
        assert rpc_error(jwt_stub.SaveMessage, request, metadata=metadata).code() == grpc.StatusCode.UNAUTHENTICATED
