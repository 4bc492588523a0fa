"""Shared fixtures: one real stack per test session.

The session starts the real stores (embedded PostgreSQL and SeaweedFS in a
temporary data dir, or TM_DATABASE_URL / TM_S3_ENDPOINT_URL when set), applies
the migrations, and serves the real gRPC server on a free port. Each test gets
its own tenant, so tests never see each other's data.
"""

from __future__ import annotations

import io
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import grpc
import psycopg
import pytest
from PIL import Image

from generated.timemachine.v1 import resources_pb2 as pb
from generated.timemachine.v1 import service_pb2 as api
from generated.timemachine.v1 import service_pb2_grpc
from server.app import App, Stores
from server.bootstrap import Runtime
from service.config import Settings
from service.database import APP_ROLE
from tests import processes

T = TypeVar("T")


@dataclass
class Stack:
    runtime: Runtime
    stores: Stores
    app: App
    address: str
    channel: grpc.Channel
    stub: service_pb2_grpc.TimeMachineServiceStub


@pytest.fixture(scope="session", autouse=True)
def _no_server_outlives_the_run() -> Iterator[None]:
    """A failed test may leave a `python -m server` child running (seen once: four, for an hour)."""
    yield
    processes.stop_all()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data_dir: Path = tmp_path_factory.mktemp("tm-data")
    # No export worker and no sweeper in the shared server: export and sweeper
    # tests run their own, so they decide when a bundle is claimed or the vault
    # swept (the lifecycle test covers the server's).
    settings = replace(
        Settings.from_env(),
        data_dir=data_dir,
        grpc_address="127.0.0.1:0",
        db_pool_max=24,
        export_workers=0,
        sweeper_interval_seconds=0,
    )
    runtime = Runtime(settings)
    try:
        stores = runtime.start()
        app = App(settings, stores)
        app.start()
        address = f"127.0.0.1:{app.port}"
        channel = grpc.insecure_channel(address)
        grpc.channel_ready_future(channel).result(timeout=10)
        yield Stack(runtime, stores, app, address, channel, service_pb2_grpc.TimeMachineServiceStub(channel))
        channel.close()
        app.stop(grace=2)
    finally:
        runtime.stop()


@dataclass
class Caller:
    """One tenant and user, with helpers that call the real server."""

    stub: service_pb2_grpc.TimeMachineServiceStub
    tenant_id: str
    user_id: str

    @property
    def md(self) -> tuple[tuple[str, str], ...]:
        return (("x-tenant-id", self.tenant_id), ("x-user-id", self.user_id))

    def save(
        self, chat_id: str, content: str, role: int = pb.MESSAGE_ROLE_USER, **kw: object
    ) -> api.SaveMessageResponse:
        request = api.SaveMessageRequest(chat_id=chat_id, role=role, content=content, **kw)  # type: ignore[arg-type]
        return self.stub.SaveMessage(request, metadata=self.md)

    def edit(self, chat_id: str, message_id: str, content: str, **kw: object) -> api.EditMessageResponse:
        request = api.EditMessageRequest(chat_id=chat_id, message_id=message_id, content=content, **kw)  # type: ignore[arg-type]
        return self.stub.EditMessage(request, metadata=self.md)

    def delete(self, chat_id: str, message_id: str) -> api.DeleteMessageResponse:
        return self.stub.DeleteMessage(
            api.DeleteMessageRequest(chat_id=chat_id, message_id=message_id), metadata=self.md
        )

    def rename(self, chat_id: str, title: str) -> api.RenameChatResponse:
        return self.stub.RenameChat(api.RenameChatRequest(chat_id=chat_id, title=title), metadata=self.md)

    def chat(self, chat_id: str) -> api.GetChatResponse:
        return self.stub.GetChat(api.GetChatRequest(chat_id=chat_id), metadata=self.md)

    def at(self, chat_id: str, **point: object) -> api.GetChatAtSnapshotResponse:
        request = api.GetChatAtSnapshotRequest(chat_id=chat_id, **point)  # type: ignore[arg-type]
        return self.stub.GetChatAtSnapshot(request, metadata=self.md)

    def restore(self, chat_id: str, target: str, scope: int, **kw: object) -> api.RestoreResponse:
        request = api.RestoreRequest(chat_id=chat_id, target_snapshot_id=target, scope=scope, **kw)  # type: ignore[arg-type]
        return self.stub.Restore(request, metadata=self.md)

    def upload(self, chat_id: str, name: str, data: bytes, **options: Any) -> api.UploadFileResponse:
        """UploadFile over upload_stream (same options: mime_type, source, chunk_size, header fields)."""
        return self.stub.UploadFile(upload_stream(chat_id, name, data, **options), metadata=self.md)

    def download(self, file_id: str) -> tuple[pb.MediaFile, bytes]:
        replies = list(self.stub.DownloadFile(api.DownloadFileRequest(file_id=file_id), metadata=self.md))
        assert replies and replies[0].HasField("file")
        assert all(len(r.chunk) <= 1024 * 1024 for r in replies)
        return replies[0].file, b"".join(r.chunk for r in replies[1:])

    def verify(self, chat_id: str) -> api.VerifyChatResponse:
        return self.stub.VerifyChat(api.VerifyChatRequest(chat_id=chat_id), metadata=self.md)


def upload_stream(
    chat_id: str,
    name: str,
    data: bytes,
    *,
    mime_type: str = "application/octet-stream",
    source: int = pb.FILE_SOURCE_USER_UPLOAD,
    chunk_size: int = 256 * 1024,
    **header: object,
) -> Iterator[api.UploadFileRequest]:
    yield api.UploadFileRequest(chat_id=chat_id, name=name, mime_type=mime_type, source=source, **header)  # type: ignore[arg-type]
    for start in range(0, len(data), chunk_size):
        yield api.UploadFileRequest(chunk=data[start : start + chunk_size])


@pytest.fixture
def stub(stack: Stack) -> service_pb2_grpc.TimeMachineServiceStub:
    return stack.stub


@pytest.fixture
def caller(stack: Stack) -> Caller:
    return Caller(stack.stub, str(uuid.uuid4()), str(uuid.uuid4()))


@pytest.fixture
def other(stack: Stack) -> Caller:
    """A second tenant."""
    return Caller(stack.stub, str(uuid.uuid4()), str(uuid.uuid4()))


@pytest.fixture
def chat_id() -> str:
    return str(uuid.uuid4())


def contents(messages: object) -> list[str]:
    return [m.content for m in messages]  # type: ignore[attr-defined]


def rpc_error(call: object, *args: object, **kwargs: object) -> grpc.RpcError:
    """The RpcError a call raises; fails the test if it succeeds."""
    try:
        call(*args, **kwargs)  # type: ignore[operator]
    except grpc.RpcError as exc:
        return exc
    pytest.fail("the call succeeded; an error was expected")


os.environ.setdefault("TM_LOG_LEVEL", "WARNING")


@dataclass
class Served:
    address: str
    stub: service_pb2_grpc.TimeMachineServiceStub


def save_with_image(caller: Caller, chat_id: str, name: str, size: tuple[int, int], text: str) -> Any:
    """Upload a PNG of `size` as `name` and save a message `text` showing it inline; the uploaded file."""
    image = io.BytesIO()
    Image.new("RGB", size, (200, 60, 20)).save(image, format="PNG")
    photo = caller.upload(chat_id, name, image.getvalue(), mime_type="image/png").file
    inline = pb.Attachment(file_id=photo.id, reference_type=pb.REFERENCE_TYPE_INLINE)
    caller.save(chat_id, text, attachments=[inline])
    return photo


def quiet_settings(**changes: Any) -> Settings:
    """Settings for a second server in a test: a free port, no export worker, no sweeper, and `changes`."""
    defaults: dict[str, Any] = {"grpc_address": "127.0.0.1:0", "export_workers": 0, "sweeper_interval_seconds": 0}
    return replace(Settings.from_env(), **(defaults | changes))


@contextmanager
def serving(stack: Stack, prepare: Callable[[App], None] | None = None, **settings: Any) -> Iterator[Served]:
    """A second server over the session's stores, with some settings changed (and `prepare`d before it starts)."""
    app = App(quiet_settings(**settings), stack.stores)
    if prepare is not None:
        prepare(app)
    app.start()
    address = f"127.0.0.1:{app.port}"
    channel = grpc.insecure_channel(address)
    try:
        yield Served(address, service_pb2_grpc.TimeMachineServiceStub(channel))
    finally:
        channel.close()
        app.stop(grace=1)


def rows(stack: Stack, tenant_id: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows as the database holds them, seen as the service role for one tenant."""
    with psycopg.connect(stack.runtime.database_url) as conn, conn.transaction():
        conn.execute(f"set local role {APP_ROLE}")
        conn.execute("select set_config('app.current_tenant_id', %s, true)", (tenant_id,))
        return conn.execute(sql, params).fetchall()


def incomplete_uploads(stack: Stack) -> list[Any]:
    vault = stack.stores.vault
    uploads: list[Any] = vault.client.list_multipart_uploads(Bucket=vault.bucket).get("Uploads", [])
    return uploads


def when_a_slot_frees(call: Callable[[], T], within: float) -> T:
    """`call`, retried while the server answers UNAVAILABLE (its transfer slots are taken), for `within` s."""
    deadline = time.monotonic() + within
    while True:
        try:
            return call()
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE and time.monotonic() < deadline
            time.sleep(0.1)


def download_when_a_slot_frees(
    stub: service_pb2_grpc.TimeMachineServiceStub, file_id: str, md: Any, within: float
) -> bytes:
    """DownloadFile, retried while the server answers UNAVAILABLE (its transfer slots are taken), for `within` s."""
    request = api.DownloadFileRequest(file_id=file_id)
    return when_a_slot_frees(lambda: b"".join(r.chunk for r in stub.DownloadFile(request, metadata=md)), within)
