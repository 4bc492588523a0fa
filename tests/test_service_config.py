"""The shipped client service config (proto/timemachine/v1/service_config.json) retries reads through UNAVAILABLE."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

import grpc

from generated.timemachine.v1 import service_pb2 as api
from generated.timemachine.v1 import service_pb2_grpc
from server.app import App
from server.embedded import free_port
from tests.conftest import Caller, Stack, quiet_settings, rpc_error

CONFIG = Path(__file__).resolve().parent.parent / "proto" / "timemachine" / "v1" / "service_config.json"
# The test's channel reconnects soon after a refusal (gRPC's default first reconnect waits ~1 s).
FAST_RECONNECT = [("grpc.initial_reconnect_backoff_ms", 100), ("grpc.min_reconnect_backoff_ms", 100)]


def test_every_method_of_the_service_is_configured() -> None:
    config = json.loads(CONFIG.read_text())
    named = {n["method"] for entry in config["methodConfig"] for n in entry["name"]}
    methods = set(api.DESCRIPTOR.services_by_name["TimeMachineService"].methods_by_name)
    assert named == methods
    for entry in config["methodConfig"]:  # writes are retried by callers with a request_id, never blindly
        if "retryPolicy" in entry:
            assert not {n["method"] for n in entry["name"]} & {"SaveMessage", "Restore", "CreateExport"}


def _read_while_the_server_comes_up(
    stack: Stack, caller: Caller, options: list[tuple[str, object]]
) -> grpc.RpcError | None:
    """A GetChat sent while nothing listens yet; the server starts 0.3 s later. Its error, or None."""
    port = free_port()
    app = App(quiet_settings(), stack.stores, f"127.0.0.1:{port}")
    starter = threading.Timer(0.3, app.start)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[*FAST_RECONNECT, *options])
    stub = service_pb2_grpc.TimeMachineServiceStub(channel)
    try:
        starter.start()
        error = rpc_error(stub.GetChat, api.GetChatRequest(chat_id=str(uuid.uuid4())), metadata=caller.md)
        # Served (NOT_FOUND: no such chat) or refused (UNAVAILABLE: nobody listened yet).
        assert error.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE)
        return None if error.code() == grpc.StatusCode.NOT_FOUND else error
    finally:
        starter.join()
        channel.close()
        time.sleep(0.1)
        app.stop(grace=1)


def test_a_read_is_retried_through_a_transient_unavailable(stack: Stack, caller: Caller) -> None:
    # Without the config the first refusal is the answer; with it, the read is retried until the server answers.
    assert _read_while_the_server_comes_up(stack, caller, []) is not None
    with_config = [("grpc.service_config", CONFIG.read_text()), ("grpc.enable_retries", 1)]
    assert _read_while_the_server_comes_up(stack, caller, with_config) is None
