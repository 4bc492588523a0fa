"""A store going away gives UNAVAILABLE and writes nothing."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import psycopg
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from generated.timemachine.v1 import service_pb2_grpc
from server.app import App
from server.bootstrap import Runtime
from server.interceptor import SERVICE
from service.config import Settings
from tests.conftest import Caller, Stack, rpc_error


class Isolated:
    """A whole stack of its own, so that its stores can be stopped."""

    def __init__(self, data_dir: Path) -> None:
        self.settings = replace(
            Settings.from_env(),
            data_dir=data_dir,
            grpc_address="127.0.0.1:0",
            database_url=None,
            s3_endpoint_url=None,
            health_grace_seconds=1,
        )
        self.runtime = Runtime(self.settings)
        self.app = App(self.settings, self.runtime.start())
        self.app.start()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.app.port}")
        self.caller = Caller(
            service_pb2_grpc.TimeMachineServiceStub(self.channel), str(uuid.uuid4()), str(uuid.uuid4())
        )

    def close(self) -> None:
        self.channel.close()
        self.app.stop(grace=1)
        self.runtime.stop()


@pytest.fixture
def isolated(tmp_path: Path) -> Iterator[Isolated]:
    if os.environ.get("TM_DATABASE_URL") or os.environ.get("TM_S3_ENDPOINT_URL"):
        pytest.skip("stops embedded stores; runs only in the embedded set-up")  # never counted as passing
    stack = Isolated(tmp_path)
    yield stack
    stack.close()


def test_s3_stopped_gives_unavailable_and_writes_nothing(isolated: Isolated) -> None:
    caller, chat = isolated.caller, str(uuid.uuid4())
    kept = caller.upload(chat, "kept.txt", b"before the outage", mime_type="text/plain")
    assert isolated.runtime.s3 is not None
    isolated.runtime.s3.stop()
    error = rpc_error(caller.upload, chat, "lost.txt", os.urandom(3 * 1024 * 1024))
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert "botocore" not in (error.details() or "").lower()
    download = rpc_error(caller.download, kept.file.id)
    assert download.code() == grpc.StatusCode.UNAVAILABLE
    now = caller.chat(chat)  # the database still answers, and nothing was written
    assert now.current_version == 1 and [f.original_name for f in now.files] == ["kept.txt"]


def test_postgres_stopped_gives_unavailable(isolated: Isolated) -> None:
    caller, chat = isolated.caller, str(uuid.uuid4())
    caller.save(chat, "before")
    assert isolated.runtime.postgres is not None
    isolated.runtime.postgres.stop()
    for call in (lambda: caller.save(chat, "after"), lambda: caller.chat(chat)):
        error = rpc_error(call)
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        assert "psycopg" not in (error.details() or "")


def test_connections_the_database_dropped_are_replaced_without_an_error(stack: Stack, caller: Caller) -> None:
    """Borrowed connections are not checked (a round trip per call); a dropped one is replaced on its first use."""
    chat = str(uuid.uuid4())
    caller.save(chat, "before")
    with psycopg.connect(stack.runtime.database_url, autocommit=True) as admin:
        ended = [  # (in the select list, so that only the rows the filter keeps are terminated)
            pid
            for pid, terminated in admin.execute(
                "select pid, pg_terminate_backend(pid) from pg_stat_activity"
                " where usename = current_user and pid <> pg_backend_pid() and backend_type = 'client backend'"
            ).fetchall()
            if terminated
        ]
        assert ended  # the pool's connections, and the event listener
        # pg_terminate_backend only signals: wait until the backends have gone. A call sent in the
        # same instant meets a connection ending under it, and whether its statement ran is unknown:
        # UNAVAILABLE is the right answer then (the test failed so, now and then), not a retry.
        for _ in range(100):
            alive = admin.execute("select count(*) from pg_stat_activity where pid = any(%s)", (ended,)).fetchone()
            if alive == (0,):
                break
            time.sleep(0.05)
        else:
            pytest.fail("the terminated backends did not end")
    for i in range(5):  # every pooled connection the pool still holds is a dropped one
        caller.save(chat, f"after {i}")
    assert [m.content for m in caller.chat(chat).messages][-1] == "after 4"


def _health(isolated: Isolated) -> int:
    stub = health_pb2_grpc.HealthStub(isolated.channel)
    return int(stub.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=5).status)


def _until(isolated: Isolated, status: int, since: float, within: float = 30) -> float:
    """Seconds from `since` until health reports `status`."""
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
    while _health(isolated) != status:
        assert time.monotonic() - since < within, f"health never became {name}"
        time.sleep(0.2)
    return time.monotonic() - since


@pytest.mark.parametrize("store", ["postgres", "s3"])
def test_health_follows_the_stores(isolated: Isolated, store: str) -> None:
    """NOT_SERVING once a store has been unreachable for the grace period (1 s here), SERVING when it is back."""
    serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
    # A SeaweedFS just started may answer 500 for a moment (health follows it): wait until it is steady.
    _until(isolated, serving, time.monotonic())
    time.sleep(1.5)
    assert _health(isolated) == serving
    process = isolated.runtime.postgres if store == "postgres" else isolated.runtime.s3
    assert process is not None
    stopped = time.monotonic()
    process.stop()
    assert _until(isolated, not_serving, stopped) >= 1  # not before the grace period
    # A scrape during the outage still answers (the export queue, read from the database, is left out).
    families = {family.name for family in isolated.app.metrics.registry.collect()}
    assert "tm_transfer_slots_in_use" in families and "grpc_server_handled" in families
    process.start()
    _until(isolated, serving, time.monotonic())
    isolated.caller.save(str(uuid.uuid4()), "served again")
