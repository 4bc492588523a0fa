"""Three server processes on one database and one S3: the service tier keeps no state of its own.

The client balances its calls round-robin over the three (gRPC's round_robin
policy over all their addresses), as a deployment behind a load balancer would.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from generated.timemachine.v1 import resources_pb2 as pb
from generated.timemachine.v1 import service_pb2 as api
from generated.timemachine.v1 import service_pb2_grpc
from tests.conftest import Stack, rows
from tests.processes import ServerProcess

pytestmark = pytest.mark.slow
REPLICAS = 3
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED)


@pytest.fixture(scope="module")
def replicas(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ServerProcess]]:
    env = {
        "TM_DATABASE_URL": stack.runtime.database_url,
        "TM_S3_ENDPOINT_URL": stack.runtime.s3_url or "",
        "TM_EXPORT_WORKERS": "1",
        "TM_SWEEPER_INTERVAL_SECONDS": "0",
        "TM_DB_POOL_MAX": "6",
    }
    if stack.runtime.s3 is not None:  # the embedded S3's keys; otherwise the standard AWS chain
        env |= {"AWS_ACCESS_KEY_ID": stack.runtime.s3.access_key, "AWS_SECRET_ACCESS_KEY": stack.runtime.s3.secret_key}
    base = tmp_path_factory.mktemp("replicas")
    started = [ServerProcess(base / f"replica-{i}", env, wait=False) for i in range(REPLICAS)]
    try:
        for replica in started:
            replica.wait_serving()
        yield started
    finally:
        for replica in started:
            if replica.process.poll() is None:
                replica.terminate()
            else:
                replica.log.close()


@pytest.fixture
def balanced(replicas: list[ServerProcess]) -> Iterator[service_pb2_grpc.TimeMachineServiceStub]:
    target = "ipv4:" + ",".join(r.address for r in replicas if r.process.poll() is None)
    channel = grpc.insecure_channel(target, options=[("grpc.lb_policy_name", "round_robin")])
    grpc.channel_ready_future(channel).result(timeout=10)
    yield service_pb2_grpc.TimeMachineServiceStub(channel)
    channel.close()


def _tenant() -> tuple[tuple[str, str], ...]:
    return (("x-tenant-id", str(uuid.uuid4())), ("x-user-id", str(uuid.uuid4())))


def _save(stub: service_pb2_grpc.TimeMachineServiceStub, md: object, chat: str, content: str) -> int:
    """Saved, retrying with the same request_id while a replica is unreachable; the version it got."""
    request = api.SaveMessageRequest(
        chat_id=chat, role=pb.MESSAGE_ROLE_USER, content=content, request_id=f"save-{content}"
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            return int(stub.SaveMessage(request, metadata=md, timeout=10).snapshot.version)
        except grpc.RpcError as error:
            if error.code() not in RETRYABLE or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _history(stub: service_pb2_grpc.TimeMachineServiceStub, md: object, chat: str) -> list[int]:
    versions, token = [], ""
    while True:
        page = stub.GetTimeline(api.GetTimelineRequest(chat_id=chat, page_size=1000, page_token=token), metadata=md)
        versions += [s.version for s in page.snapshots]
        if not (token := page.next_page_token):
            return versions


def _write_concurrently(
    stub: service_pb2_grpc.TimeMachineServiceStub,
    md: object,
    chats: list[str],
    writers: int,
    each: int,
    on_acknowledged: Callable[[int], None] = lambda count: None,
) -> dict[str, list[str]]:
    """`writers` threads each saving `each` messages, spread over `chats`; what each chat was acknowledged.

    `on_acknowledged` hears the running count of acknowledged writes.
    """
    acknowledged: dict[str, list[str]] = {chat: [] for chat in chats}
    lock = threading.Lock()
    failures: list[BaseException] = []
    count = 0

    def write(writer: int) -> None:
        nonlocal count
        try:
            for n in range(each):
                chat = chats[(writer + n) % len(chats)]
                content = f"{chat[:8]}-w{writer}-n{n}"
                _save(stub, md, chat, content)
                with lock:
                    acknowledged[chat].append(content)
                    count += 1
                    now = count
                on_acknowledged(now)
        except BaseException as error:  # reported by the test, not lost in the thread
            failures.append(error)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures
    return acknowledged


def _assert_kept(stub: service_pb2_grpc.TimeMachineServiceStub, md: object, acknowledged: dict[str, list[str]]) -> None:
    for chat, contents in acknowledged.items():
        saved = [m.content for m in stub.GetChat(api.GetChatRequest(chat_id=chat), metadata=md).messages]
        assert sorted(saved) == sorted(contents)  # every acknowledged write, each once
        assert _history(stub, md, chat) == list(range(1, len(contents) + 1))  # versions without gaps


def test_writes_through_every_replica_to_the_same_chats_keep_versions_gapless(
    balanced: service_pb2_grpc.TimeMachineServiceStub,
) -> None:
    md = _tenant()
    chats = [str(uuid.uuid4()) for _ in range(2)]
    acknowledged = _write_concurrently(balanced, md, chats, writers=6, each=15)
    _assert_kept(balanced, md, acknowledged)
    assert balanced.VerifyChat(api.VerifyChatRequest(chat_id=chats[0]), metadata=md).ok


def test_a_watch_on_one_replica_hears_writes_made_through_the_others(replicas: list[ServerProcess]) -> None:
    md, chat = _tenant(), str(uuid.uuid4())
    _save(replicas[0].stub, md, chat, "first")
    stream = replicas[0].stub.WatchChat(api.WatchChatRequest(chat_id=chat, after_version=1), metadata=md, timeout=30)
    heard: list[int] = []

    def listen() -> None:
        for reply in stream:
            heard.append(reply.snapshot.version)
            if len(heard) == 4:
                return

    listener = threading.Thread(target=listen)
    listener.start()
    time.sleep(0.5)  # the watch is open before the writes
    for n in range(4):
        _save(replicas[1 + n % 2].stub, md, chat, f"elsewhere-{n}")
    listener.join(timeout=20)
    stream.cancel()
    assert heard == [2, 3, 4, 5]


def test_each_export_bundle_is_rendered_once(stack: Stack, balanced: service_pb2_grpc.TimeMachineServiceStub) -> None:
    """Every replica runs an export worker; they compete for the queue and none renders a bundle twice."""
    md, chat = _tenant(), str(uuid.uuid4())
    for n in range(3):
        _save(balanced, md, chat, f"exported-{n}")
    bundles = [
        balanced.CreateExport(api.CreateExportRequest(chat_id=chat, format=pb.EXPORT_FORMAT_JSON), metadata=md).bundle
        for _ in range(9)
    ]
    deadline = time.monotonic() + 60
    for bundle in bundles:
        while balanced.GetExport(api.GetExportRequest(bundle_id=bundle.id), metadata=md).bundle.status != (
            pb.EXPORT_STATUS_READY
        ):
            assert time.monotonic() < deadline, "a bundle was not rendered"
            time.sleep(0.1)
    claims = rows(
        stack,
        md[0][1],
        "select id::text, attempts, s3_key, worker from tm_export_bundles where chat_id = %s",
        uuid.UUID(chat),
    )
    assert sorted(c[0] for c in claims) == sorted(b.id for b in bundles)
    assert all(attempts == 1 for _, attempts, _, _ in claims)
    for _, _, key, _ in claims:  # one object version: nobody wrote the bundle a second time
        assert [len(page) for page in stack.stores.vault.list_versions(key)] == [1]


def test_stopping_a_replica_mid_load_loses_no_acknowledged_write(
    replicas: list[ServerProcess], balanced: service_pb2_grpc.TimeMachineServiceStub
) -> None:
    """SIGKILL to one replica while six writers go on: retries (same request_id) land elsewhere, once."""
    md = _tenant()
    chats = [str(uuid.uuid4()) for _ in range(3)]
    victim = replicas[-1]

    def kill_at_30(count: int) -> None:
        if count == 30:
            os.kill(victim.process.pid, signal.SIGKILL)

    acknowledged = _write_concurrently(balanced, md, chats, writers=6, each=25, on_acknowledged=kill_at_30)
    assert victim.process.wait(timeout=10) == -signal.SIGKILL  # killed after 30 of 150 writes
    _assert_kept(balanced, md, acknowledged)


def test_replica_logs_have_no_tracebacks(replicas: list[ServerProcess]) -> None:
    for replica in replicas:
        assert "Traceback" not in Path(replica.data_dir / "server.out").read_text()
