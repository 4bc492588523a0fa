"""The fault run: clients at work while PostgreSQL restarts and S3 stops and starts.

Several clients save, edit, upload, export and read, cancelling some calls
at random, on a stack of its own. Midway PostgreSQL is restarted once and S3
stopped and started once. Afterwards every acknowledged write and upload is
there, each chat's versions run 1..n without a gap, VerifyChat (content
re-hashed) passes on every chat, a sweep deletes nothing anyone refers to
and leaves no multipart upload open, the server's memory stayed within
bounds, and health says SERVING. No call ever answered INTERNAL or UNKNOWN.
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from generated.timemachine.v1 import resources_pb2 as pb
from generated.timemachine.v1 import service_pb2 as api
from service.sweeper import Sweeper
from tests.conftest import Caller, upload_stream
from tests.test_outage import Isolated

CLIENTS = 4
RUN_SECONDS = 30.0
MiB = 1024 * 1024
# What a call may answer while a store is away or the caller gave up; never INTERNAL or UNKNOWN.
EXPECTED = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED,
}
RSS_GROWTH_BOUND = 512 * MiB  # the server and these clients (their 12 MiB files) share one process; ~360 MiB seen


@dataclass
class Acknowledged:
    """What the service said it stored, as each client saw it."""

    messages: list[tuple[str, str, int, str]] = field(default_factory=list)  # chat, message, version, content
    files: list[tuple[str, str, str]] = field(default_factory=list)  # chat, file id, sha256
    codes: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


def rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class Client(threading.Thread):
    def __init__(self, caller: Caller, seed: int, stop: threading.Event, acked: Acknowledged) -> None:
        super().__init__(name=f"fault-client-{seed}", daemon=True)
        self.caller = caller
        self.random = random.Random(seed)
        self.stop = stop
        self.acked = acked
        self.chats = [str(uuid.uuid4()) for _ in range(2)]
        self.mine: dict[str, list[str]] = {chat: [] for chat in self.chats}  # acknowledged message ids
        self.unexpected: list[str] = []

    def run(self) -> None:
        actions: list[Callable[[str], None]] = [
            self.save,
            self.save,
            self.save,
            self.edit,
            self.upload,
            self.export,
            self.read,
        ]
        while not self.stop.is_set():
            chat = self.random.choice(self.chats)
            try:
                self.random.choice(actions)(chat)
                self.count("OK")
            except grpc.FutureCancelledError:
                self.count("CANCELLED")
            except grpc.RpcError as exc:
                code = exc.code()
                self.count(code.name)
                if code not in EXPECTED:
                    self.unexpected.append(f"{code.name}: {exc.details()}")
                if code == grpc.StatusCode.UNAVAILABLE:
                    time.sleep(0.05)

    def count(self, code: str) -> None:
        with self.acked.lock:
            self.acked.codes[code] += 1

    def _maybe_cancelled(self, future: Any) -> Any:
        """One call in five is cancelled after a few milliseconds, as a client that gives up."""
        if self.random.random() < 0.2:
            time.sleep(self.random.random() * 0.01)
            future.cancel()
        return future.result(timeout=60)

    def save(self, chat: str) -> None:
        content = f"message {uuid.uuid4()}"
        request = api.SaveMessageRequest(chat_id=chat, role=pb.MESSAGE_ROLE_USER, content=content)
        reply = self._maybe_cancelled(self.caller.stub.SaveMessage.future(request, metadata=self.caller.md))
        with self.acked.lock:
            self.acked.messages.append((chat, reply.message.message_id, reply.snapshot.version, content))
        self.mine[chat].append(reply.message.message_id)

    def edit(self, chat: str) -> None:
        if not self.mine[chat]:
            return self.save(chat)
        message = self.random.choice([m for m in self.mine[chat] if m] or [""])
        if not message:
            return self.save(chat)
        content = f"edited {uuid.uuid4()}"
        request = api.EditMessageRequest(chat_id=chat, message_id=message, content=content)
        reply = self._maybe_cancelled(self.caller.stub.EditMessage.future(request, metadata=self.caller.md))
        with self.acked.lock:
            self.acked.messages.append((chat, message, reply.snapshot.version, content))
        return None

    def upload(self, chat: str) -> None:
        data = os.urandom(self.random.choice([10_000, 3 * MiB, 12 * MiB]))  # 12 MiB goes multipart
        stream = upload_stream(chat, f"file-{self.random.randrange(4)}.bin", data, chunk_size=MiB)
        reply = self._maybe_cancelled(self.caller.stub.UploadFile.future(stream, metadata=self.caller.md))
        with self.acked.lock:
            self.acked.files.append((chat, reply.file.id, hashlib.sha256(data).hexdigest()))
        self.mine[chat].append("")  # the chat is registered

    def export(self, chat: str) -> None:
        if not self.mine[chat]:
            return
        request = api.ExportChatRequest(chat_id=chat, format=pb.EXPORT_FORMAT_ZIP, include_media=True)
        replies = self.caller.stub.ExportChat(request, metadata=self.caller.md, timeout=30)
        for n, _ in enumerate(replies):
            if n == 3 and self.random.random() < 0.3:
                replies.cancel()  # a reader that leaves mid-stream

    def read(self, chat: str) -> None:
        if not self.mine[chat]:
            return  # a chat is registered by its first write
        self.caller.stub.GetChat(api.GetChatRequest(chat_id=chat), metadata=self.caller.md, timeout=10)
        self.caller.stub.GetTimeline(api.GetTimelineRequest(chat_id=chat), metadata=self.caller.md, timeout=10)


@pytest.fixture
def isolated(tmp_path: Path) -> Iterator[Isolated]:
    if os.environ.get("TM_DATABASE_URL") or os.environ.get("TM_S3_ENDPOINT_URL"):
        pytest.skip("stops embedded stores; runs only in the embedded set-up")
    stack = Isolated(tmp_path)
    yield stack
    stack.close()


def until(what: Callable[[], Any], within: float) -> Any:
    """`what`'s answer once it gives one without an RpcError, retried for `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        try:
            return what()
        except grpc.RpcError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_nothing_acknowledged_is_lost_through_a_database_restart_and_an_object_store_outage(
    isolated: Isolated,
) -> None:
    runtime = isolated.runtime
    assert runtime.postgres is not None and runtime.s3 is not None
    base = isolated.caller
    stop = threading.Event()
    acked = Acknowledged()
    callers = [Caller(base.stub, base.tenant_id, str(uuid.uuid4())) for _ in range(CLIENTS)]
    clients = [Client(caller, seed, stop, acked) for seed, caller in enumerate(callers)]
    rss_before = rss()
    peak = rss_before
    for client in clients:
        client.start()
    started = time.monotonic()

    def at(second: float) -> None:
        nonlocal peak
        while time.monotonic() - started < second:
            peak = max(peak, rss())
            time.sleep(0.2)

    at(RUN_SECONDS * 0.25)
    runtime.postgres.stop()  # every pooled connection and the event listener break
    at(RUN_SECONDS * 0.25 + 3)
    runtime.postgres.start()
    at(RUN_SECONDS * 0.6)
    runtime.s3.stop()
    at(RUN_SECONDS * 0.6 + 3)
    runtime.s3.start()
    at(RUN_SECONDS)
    stop.set()
    for client in clients:
        client.join(90)
        assert not client.is_alive(), "a client hung"
    unexpected = [line for client in clients for line in client.unexpected]
    assert not unexpected, unexpected[:5]
    codes = acked.codes
    # The run did work and met the faults.
    assert codes["OK"] > 50 and codes["UNAVAILABLE"] > 0, codes

    # The service recovers by itself: SERVING within 30 s. (The readiness probe sees a store back within a
    # second, but SeaweedFS may take 12 s to stop under load, which moves its restart to the run's very end.)
    health = health_pb2_grpc.HealthStub(isolated.channel)
    serving = health_pb2.HealthCheckResponse.SERVING
    recovered = time.monotonic() + 30
    while (status := until(lambda: health.Check(health_pb2.HealthCheckRequest()), 30).status) != serving:
        assert time.monotonic() < recovered, (
            f"health stayed {health_pb2.HealthCheckResponse.ServingStatus.Name(status)}"
        )
        time.sleep(0.5)
    until(lambda: base.save(str(uuid.uuid4()), "after the faults"), 30)

    # Every acknowledged message is in its chat at the version it was acknowledged with.
    chats = {chat for chat, *_ in acked.messages} | {chat for chat, *_ in acked.files}
    for chat, message_id, version, content in acked.messages:
        past = base.at(chat, version=version)
        assert content in {m.content for m in past.messages if m.message_id == message_id}, (chat, version)
    for _chat, file_id, sha256 in acked.files:
        _, data = base.download(file_id)
        assert hashlib.sha256(data).hexdigest() == sha256
    # Versions without gaps, in every chat written (acknowledged or not).
    with psycopg.connect(runtime.database_url) as conn:
        versions = conn.execute(
            "select chat_id::text, array_agg(version order by version) from tm_snapshots"
            " where tenant_id = %s group by chat_id",
            (uuid.UUID(base.tenant_id),),
        ).fetchall()
    assert {chat for chat, _ in versions} >= chats
    for chat, numbers in versions:
        assert numbers == list(range(1, len(numbers) + 1)), chat
        report = base.stub.VerifyChat(api.VerifyChatRequest(chat_id=chat, check_content=True), metadata=base.md)
        assert report.ok, (chat, list(report.problems)[:3])

    # A sweep after the storm deletes nothing anyone refers to, and no multipart upload stays open.
    stores = runtime.stores
    assert stores is not None
    with psycopg.connect(runtime.database_url) as conn:  # the server's own sweeper has just swept: not due yet
        conn.execute("update tm_leases set expires_at = now() - interval '1 second'")
    swept = Sweeper(stores.db, stores.vault, grace_seconds=0, interval_seconds=0).sweep()
    assert swept is not None and swept.failed == 0
    assert stores.vault.client.list_multipart_uploads(Bucket=stores.vault.bucket).get("Uploads", []) == []
    for _chat, file_id, sha256 in acked.files:
        assert hashlib.sha256(base.download(file_id)[1]).hexdigest() == sha256
    for chat, _ in versions:
        assert base.stub.VerifyChat(api.VerifyChatRequest(chat_id=chat, check_content=True), metadata=base.md).ok
    assert peak - rss_before < RSS_GROWTH_BOUND, f"RSS grew by {(peak - rss_before) // MiB} MiB"
    print(
        f"fault run: {dict(codes)}; {len(acked.messages)} messages and {len(acked.files)} files acknowledged;"
        f" swept {dict(swept.deleted)}; RSS +{(peak - rss_before) // MiB} MiB"
    )
