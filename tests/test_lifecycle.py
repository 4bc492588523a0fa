"""`python -m server` (what `make run` runs): data survives SIGTERM and SIGKILL restarts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from generated.timemachine.v1 import resources_pb2 as pb
from generated.timemachine.v1 import service_pb2 as api
from generated.timemachine.v1 import service_pb2_grpc
from server.embedded import EmbeddedPostgres, EmbeddedS3, free_port

ROOT = Path(__file__).resolve().parent.parent
TENANT = (("x-tenant-id", str(uuid.uuid4())), ("x-user-id", str(uuid.uuid4())))


class ServerProcess:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.address = f"127.0.0.1:{free_port()}"
        env = {
            **os.environ,
            "TM_DATA_DIR": str(data_dir),
            "TM_GRPC_ADDRESS": self.address,
            "TM_DATABASE_URL": "",
            "TM_S3_ENDPOINT_URL": "",
        }
        self.log = (data_dir / "server.out").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server"],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as under `make run`
        )
        self.channel = grpc.insecure_channel(self.address)
        self._wait_serving()
        self.stub = service_pb2_grpc.TimeMachineServiceStub(self.channel)

    def _wait_serving(self, timeout: float = 90) -> None:
        health = health_pb2_grpc.HealthStub(self.channel)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"server exited: {(self.data_dir / 'server.out').read_text()[-3000:]}")
            try:
                if (
                    health.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                    == health_pb2.HealthCheckResponse.SERVING
                ):
                    return
            except grpc.RpcError:
                time.sleep(0.2)
        pytest.fail("server did not become SERVING")

    def terminate(self) -> int:
        self.channel.close()
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=60)
        self.log.close()
        return code

    def save(self, chat: str, content: str) -> None:
        request = api.SaveMessageRequest(chat_id=chat, role=pb.MESSAGE_ROLE_USER, content=content)
        self.stub.SaveMessage(request, metadata=TENANT)

    def contents(self, chat: str) -> list[str]:
        return [m.content for m in self.stub.GetChat(api.GetChatRequest(chat_id=chat), metadata=TENANT).messages]

    def kill_alone(self) -> None:
        """SIGKILL to the server process only; what it started lives on."""
        self.channel.close()
        self.process.kill()
        self.process.wait(timeout=30)
        self.log.close()

    def kill_group(self) -> None:
        self.channel.close()
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.log.close()


def _weed_running(data_dir: Path) -> bool:
    # From /proc, not ps: ps cuts its lines at 80 columns when piped.
    wanted = f"-dir={data_dir / 's3'}".encode()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            arguments = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue  # it ended while we looked
        if arguments[0].endswith(b"weed") and wanted in arguments:
            return True
    return False


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    # In case a failed test left them running.
    EmbeddedPostgres(tmp_path).stop()
    EmbeddedS3(tmp_path).stop_leftover()


@pytest.mark.slow
def test_data_survives_sigterm_and_sigkill_restarts(data_dir: Path) -> None:
    chat = str(uuid.uuid4())
    first = ServerProcess(data_dir)
    first.save(chat, "one")
    assert first.terminate() == 0
    # A graceful stop stops what it started.
    assert not EmbeddedPostgres(data_dir).running()
    assert not _weed_running(data_dir)

    second = ServerProcess(data_dir)
    assert second.contents(chat) == ["one"]
    second.save(chat, "two")
    second.kill_group()

    third = ServerProcess(data_dir)
    assert third.contents(chat) == ["one", "two"]
    assert third.stub.VerifyChat(api.VerifyChatRequest(chat_id=chat), metadata=TENANT).ok
    # The server runs an export worker of its own.
    bundle = third.stub.CreateExport(
        api.CreateExportRequest(chat_id=chat, format=pb.EXPORT_FORMAT_MARKDOWN), metadata=TENANT
    ).bundle
    deadline = time.monotonic() + 30
    while third.stub.GetExport(api.GetExportRequest(bundle_id=bundle.id), metadata=TENANT).bundle.status != (
        pb.EXPORT_STATUS_READY
    ):
        assert time.monotonic() < deadline, "the server's export worker did not render the bundle"
        time.sleep(0.2)
    assert third.terminate() == 0
    assert not EmbeddedPostgres(data_dir).running()


@pytest.mark.slow
def test_a_server_killed_alone_leaves_nothing_that_blocks_the_next(data_dir: Path) -> None:
    """SIGKILL to the server process only (the OOM killer's way): its stores outlive it."""
    chat = str(uuid.uuid4())
    first = ServerProcess(data_dir)
    first.save(chat, "kept")
    first.kill_alone()
    assert _weed_running(data_dir) and EmbeddedPostgres(data_dir).running()  # orphans, as in production

    second = ServerProcess(data_dir)
    assert second.contents(chat) == ["kept"]
    assert "left running" in (data_dir / "server.out").read_text()
    assert second.terminate() == 0
    assert not _weed_running(data_dir) and not EmbeddedPostgres(data_dir).running()


@pytest.mark.slow
def test_a_second_server_on_the_same_data_dir_stops_at_once(data_dir: Path) -> None:
    chat = str(uuid.uuid4())
    first = ServerProcess(data_dir)
    first.save(chat, "first")
    env = {**os.environ, "TM_DATA_DIR": str(data_dir), "TM_GRPC_ADDRESS": f"127.0.0.1:{free_port()}"}
    env |= {"TM_DATABASE_URL": "", "TM_S3_ENDPOINT_URL": ""}
    second = subprocess.run(
        [sys.executable, "-m", "server"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert second.returncode == 1
    assert f"in use by another Time Machine server (pid {first.process.pid})" in second.stderr
    # The first server and its stores carry on untouched.
    first.save(chat, "still here")
    assert first.contents(chat) == ["first", "still here"]
    assert first.terminate() == 0
