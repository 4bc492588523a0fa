"""Graceful stop: health goes NOT_SERVING first, calls in flight finish, new ones are refused."""

from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import replace

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from generated.timemachine.v1 import service_pb2 as api
from generated.timemachine.v1 import service_pb2_grpc
from server.app import App
from tests.conftest import Caller, Stack


def test_stop_drains_in_flight_calls(stack: Stack) -> None:
    app = App(replace(stack.app.settings, export_workers=0), stack.stores, address="127.0.0.1:0")
    app.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{app.port}")
    caller = Caller(service_pb2_grpc.TimeMachineServiceStub(channel), str(uuid.uuid4()), str(uuid.uuid4()))
    data = os.urandom(8 * 1024 * 1024)
    file_id = caller.upload(str(uuid.uuid4()), "big.bin", data).file.id

    statuses = []
    watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""))
    statuses.append(next(watch).status)

    download = caller.stub.DownloadFile(api.DownloadFileRequest(file_id=file_id), metadata=caller.md)
    received = [next(download)]  # the call is in flight
    stopper = threading.Thread(target=app.stop, kwargs={"grace": 15})
    stopper.start()
    statuses.append(next(watch).status)
    watch.cancel()  # an open watch would itself be an in-flight call to wait for
    started = time.monotonic()
    for reply in download:  # a slow reader still gets every byte
        received.append(reply)
        time.sleep(0.05)
    stopper.join(30)
    assert time.monotonic() - started < 10  # the stop waited for the download, not for the grace period
    channel.close()
    assert statuses == [health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING]
    assert b"".join(r.chunk for r in received[1:]) == data
    late = grpc.insecure_channel(f"127.0.0.1:{app.port}")
    try:
        health_pb2_grpc.HealthStub(late).Check(health_pb2.HealthCheckRequest(), timeout=2)
        raise AssertionError("a stopped server answered")
    except grpc.RpcError as exc:
        assert exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    finally:
        late.close()
