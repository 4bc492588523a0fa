"""Prometheus metrics: a scrape after known calls shows exactly those calls."""

from __future__ import annotations

import threading
import urllib.request
import uuid
from collections.abc import Iterator

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from generated.timemachine.v1 import resources_pb2 as pb
from generated.timemachine.v1 import service_pb2 as api
from generated.timemachine.v1 import service_pb2_grpc
from server.app import App
from tests.conftest import Caller, Stack, quiet_settings, rpc_error, upload_stream

SERVICE = "timemachine.v1.TimeMachineService"


@pytest.fixture
def measured(stack: Stack) -> Iterator[tuple[App, Caller]]:
    app = App(quiet_settings(metrics_address="127.0.0.1:0"), stack.stores)
    app.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{app.port}")
    try:
        yield app, Caller(service_pb2_grpc.TimeMachineServiceStub(channel), str(uuid.uuid4()), str(uuid.uuid4()))
    finally:
        channel.close()
        app.stop(grace=1)


def scrape(app: App) -> tuple[str, dict[tuple[str, frozenset[tuple[str, str]]], float]]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{app.metrics.port}/metrics", timeout=5).read().decode()
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    return text, samples


def call(kind: str, method: str, **more: str) -> frozenset[tuple[str, str]]:
    return frozenset({"grpc_type": kind, "grpc_service": SERVICE, "grpc_method": method, **more}.items())


def test_a_scrape_counts_the_calls_made(measured: tuple[App, Caller]) -> None:
    app, caller = measured
    chat = str(uuid.uuid4())
    _, before = scrape(app)  # snapshot and vault counts are the stores', which other tests' servers share
    saved = [caller.save(chat, f"message {n}") for n in range(3)]
    empty = api.SaveMessageRequest(chat_id="not a uuid", role=pb.MESSAGE_ROLE_USER, content="x")
    assert rpc_error(caller.stub.SaveMessage, empty, metadata=caller.md).code() == grpc.StatusCode.INVALID_ARGUMENT
    data = b"x" * (3 * 256 * 1024 + 10)  # a header and four chunks
    uploaded = caller.stub.UploadFile(upload_stream(chat, "data.bin", data), metadata=caller.md)
    replies = list(caller.stub.DownloadFile(api.DownloadFileRequest(file_id=uploaded.file.id), metadata=caller.md))
    caller.edit(chat, saved[0].message.message_id, "edited")
    caller.delete(chat, saved[1].message.message_id)

    # One watch open while scraping.
    watch = caller.stub.WatchChat(api.WatchChatRequest(chat_id=chat), metadata=caller.md, timeout=30)
    first = threading.Event()

    def listen() -> None:
        next(watch)
        first.set()

    listener = threading.Thread(target=listen)
    listener.start()
    assert first.wait(10)
    text, samples = scrape(app)
    watch.cancel()
    listener.join()

    assert samples[("grpc_server_started_total", call("unary", "SaveMessage"))] == 4
    assert samples[("grpc_server_handled_total", call("unary", "SaveMessage", grpc_code="OK"))] == 3
    assert samples[("grpc_server_handled_total", call("unary", "SaveMessage", grpc_code="INVALID_ARGUMENT"))] == 1
    assert samples[("grpc_server_handling_seconds_count", call("unary", "SaveMessage"))] == 4
    assert samples[("grpc_server_msg_received_total", call("unary", "SaveMessage"))] == 4
    assert samples[("grpc_server_msg_sent_total", call("unary", "SaveMessage"))] == 3
    assert samples[("grpc_server_msg_received_total", call("client_stream", "UploadFile"))] == 5
    assert samples[("grpc_server_msg_sent_total", call("server_stream", "DownloadFile"))] == len(replies)
    assert samples[("grpc_server_started_total", call("server_stream", "WatchChat"))] == 1
    assert samples[("tm_watch_slots_in_use", frozenset())] == 1
    assert samples[("tm_db_pool_connections_in_use", frozenset({("pool", "primary")}))] >= 0
    # The event loop's own pool (SaveMessage's ordinary case) is measured too: it keeps one connection open.
    loop_pool = frozenset({("pool", "primary_loop")})
    assert (
        samples[("tm_db_pool_connections_in_use", loop_pool)] + samples[("tm_db_pool_connections_idle", loop_pool)] >= 1
    )
    assert ("tm_export_queue_depth", frozenset()) in samples
    # This server's writes by path: the chat's first save registers it (the general path), the rest
    # take one round trip, as do the edit and the delete.
    paths = {
        (write, path): samples.get(("tm_write_paths_total", frozenset({("write", write), ("path", path)})), 0)
        for write in ("save", "edit", "delete")
        for path in ("one_trip", "general")
    }
    assert paths == {
        ("save", "one_trip"): 2, ("save", "general"): 1, ("edit", "one_trip"): 1, ("edit", "general"): 0,
        ("delete", "one_trip"): 1, ("delete", "general"): 0,
    }  # fmt: skip

    def grew(name: str, label: str, value: str) -> float:
        key = (name, frozenset({(label, value)}))
        return samples[key] - before.get(key, 0)

    assert grew("tm_snapshots_written_total", "trigger", "message_sent") == 3  # the refused save wrote none
    assert grew("tm_snapshots_written_total", "trigger", "file_uploaded") == 1
    assert grew("tm_vault_bytes_total", "direction", "in") == len(data)
    assert grew("tm_vault_bytes_total", "direction", "out") == len(data)
    # The process's own series, under the names every Prometheus client uses.
    assert samples[("process_resident_memory_bytes", frozenset())] > 10 * 2**20
    assert samples[("process_cpu_seconds_total", frozenset())] > 0
    assert samples[("process_open_fds", frozenset())] > 0
    assert samples[("python_gc_collections_total", frozenset({("generation", "2")}))] >= 1  # start-up collects
    assert any(name == "python_info" for name, _ in samples)  # labelled with the interpreter's version
    # No label names a tenant, a user or a chat.
    for secret in (caller.tenant_id, caller.user_id, chat):
        assert secret not in text
