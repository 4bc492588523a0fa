"""A client that vanishes mid-upload does not hold the server's thread and S3 upload."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Stack, incomplete_uploads, rows, serving

ROOT = Path(__file__).resolve().parent.parent

CLIENT = textwrap.dedent(
    """
    import sys, threading, grpc
    from generated.timemachine.v1 import service_pb2_grpc
    from tests.conftest import upload_stream

    address, tenant, user, chat = sys.argv[1:]

    def stalls() -> object:
        yield from upload_stream(chat, "frozen.bin", bytes(12 * 1024 * 1024), chunk_size=1024 * 1024)
        print("sent", flush=True)
        threading.Event().wait()  # never finishes the stream

    stub = service_pb2_grpc.TimeMachineServiceStub(grpc.insecure_channel(address))
    stub.UploadFile(stalls(), metadata=(("x-tenant-id", tenant), ("x-user-id", user)))
    """
)


@pytest.fixture
def quick_keepalive_server(stack: Stack) -> Iterator[str]:
    with serving(stack, grpc_keepalive_seconds=1) as served:
        yield served.address


@pytest.mark.slow
def test_a_frozen_client_is_dropped_and_its_upload_cleaned_up(
    stack: Stack, quick_keepalive_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    tenant, user, chat = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    client = subprocess.Popen(
        [sys.executable, "-c", CLIENT, quick_keepalive_server, tenant, user, chat],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert client.stdout is not None and client.stdout.readline().strip() == "sent"
        deadline = time.monotonic() + 15
        while not incomplete_uploads(stack) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert incomplete_uploads(stack), "the server should be streaming the upload into S3"
        os.kill(client.pid, signal.SIGSTOP)  # alive to TCP, deaf to HTTP/2 pings
        deadline = time.monotonic() + 20  # pings every second, 1 s to answer
        while incomplete_uploads(stack) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert incomplete_uploads(stack) == []  # the call ended, the multipart upload was aborted
        assert rows(stack, tenant, "select count(*) from tm_files") == [(0,)]
        assert "internal error" not in caplog.text  # a caller that vanished is no bug of ours
    finally:
        client.kill()
        client.wait(timeout=10)
        if client.stdout is not None:
            client.stdout.close()
