"""`python -m server` (what `make run` runs): data survives SIGTERM and SIGKILL restarts."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from generated.timemachine.v1 import resources_pb2 as pb
from generated.timemachine.v1 import service_pb2 as api
from server.embedded import EmbeddedPostgres, EmbeddedS3, free_port
from tests.processes import ROOT, TENANT, ServerProcess


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
