"""Logs: one JSON object per line, one access line per call with its fields, never message contents."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import grpc
import pytest

from generated.timemachine.v1 import resources_pb2 as pb
from generated.timemachine.v1 import service_pb2 as api
from service.config import Settings
from service.errors import ConfigurationError
from tests.conftest import Stack
from tests.processes import ServerProcess

SECRET = "the words of a private message"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.mark.slow
def test_every_line_is_json_and_each_call_has_one_access_line(stack: Stack, tmp_path: Path) -> None:
    env = {"TM_DATABASE_URL": stack.runtime.database_url, "TM_S3_ENDPOINT_URL": stack.runtime.s3_url or ""}
    if stack.runtime.s3 is not None:
        env |= {"AWS_ACCESS_KEY_ID": stack.runtime.s3.access_key, "AWS_SECRET_ACCESS_KEY": stack.runtime.s3.secret_key}
    env |= {
        "TM_LOG_FORMAT": "json",
        "TM_LOG_LEVEL": "INFO",
        "TM_EXPORT_WORKERS": "0",
        "TM_SWEEPER_INTERVAL_SECONDS": "0",
    }
    server = ServerProcess(tmp_path, env)
    tenant, chat = str(uuid.uuid4()), str(uuid.uuid4())
    md = (("x-tenant-id", tenant), ("x-user-id", str(uuid.uuid4())), ("traceparent", f"00-{TRACE}-00f067aa0ba902b7-01"))
    request = api.SaveMessageRequest(chat_id=chat, role=pb.MESSAGE_ROLE_USER, content=SECRET, request_id="req-42")
    server.stub.SaveMessage(request, metadata=md)
    missing = server.stub.GetChat.with_call  # a NOT_FOUND call, to see its code logged
    with pytest.raises(grpc.RpcError):
        missing(api.GetChatRequest(chat_id=str(uuid.uuid4())), metadata=md)
    assert server.terminate() == 0
    time.sleep(0.1)

    lines = [line for line in server.output().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line, the libraries' too, is a JSON object
    calls = [r for r in records if r.get("method", "").startswith("/timemachine.v1.TimeMachineService/")]
    save = [r for r in calls if r["method"].endswith("/SaveMessage")]
    assert len(save) == 1
    (line,) = save
    assert line["code"] == "OK" and line["level"] == "info" and line["duration_ms"] > 0
    assert (line["tenant"], line["chat"], line["request_id"], line["trace_id"]) == (tenant, chat, "req-42", TRACE)
    assert line["peer"].startswith("ipv4:127.0.0.1:")
    (get,) = [r for r in calls if r["method"].endswith("/GetChat")]
    assert get["code"] == "NOT_FOUND"
    assert all(r.get("timestamp") for r in records)
    assert SECRET not in server.output()


@pytest.mark.parametrize(("name", "value"), [("TM_LOG_LEVEL", "bogus"), ("TM_LOG_FORMAT", "xml")])
def test_a_bad_log_setting_is_refused_by_name(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match=f"{name} must be one of .*got '{value}'"):
        Settings.from_env()
