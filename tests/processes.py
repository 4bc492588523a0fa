"""`python -m server` as a child process (what `make run` runs), for lifecycle and replica tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from generated.timemachine.v1 import resources_pb2 as pb
from generated.timemachine.v1 import service_pb2 as api
from generated.timemachine.v1 import service_pb2_grpc
from server.embedded import free_port

ROOT = Path(__file__).resolve().parent.parent
TENANT = (("x-tenant-id", str(uuid.uuid4())), ("x-user-id", str(uuid.uuid4())))
_STARTED: list[ServerProcess] = []  # every server started in this test run (stop_all)


def stop_all() -> None:
    """Stop every server a test started and left running (a failed test may): SIGTERM, which stops
    the stores it started, then SIGKILL to its group if it has not ended within 30 s."""
    for server in _STARTED:
        if server.process.poll() is None:
            server.process.send_signal(signal.SIGTERM)
            try:
                server.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.process.pid, signal.SIGKILL)
                server.process.wait(timeout=30)
    _STARTED.clear()


class ServerProcess:
    """A server on a free port with its output in `data_dir`/server.out; `env` overrides the environment.

    By default its stores are embedded in `data_dir`.
    """

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None, *, wait: bool = True) -> None:
        self.data_dir = data_dir
        self.address = f"127.0.0.1:{free_port()}"
        environment = {
            **os.environ,
            "TM_DATA_DIR": str(data_dir),
            "TM_GRPC_ADDRESS": self.address,
            "TM_DATABASE_URL": "",
            "TM_S3_ENDPOINT_URL": "",
            **(env or {}),
        }
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log = (data_dir / "server.out").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server"],
            cwd=ROOT,
            env=environment,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as under `make run`
        )
        _STARTED.append(self)
        self.channel = grpc.insecure_channel(self.address)
        self.stub = service_pb2_grpc.TimeMachineServiceStub(self.channel)
        if wait:
            self.wait_serving()

    def output(self) -> str:
        return (self.data_dir / "server.out").read_text()

    def wait_serving(self, timeout: float = 90) -> None:
        health = health_pb2_grpc.HealthStub(self.channel)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"server exited: {self.output()[-3000:]}")
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
