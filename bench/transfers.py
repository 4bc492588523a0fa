"""100 MiB through the service against boto3 straight to the same S3.

The server runs as its own process (python -m server) over the same stores,
so its peak RSS can be sampled from /proc while the bytes flow.
"""

from __future__ import annotations

import io
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from generated.timemachine.v1 import resources_pb2 as pb
from generated.timemachine.v1 import service_pb2 as api
from generated.timemachine.v1 import service_pb2_grpc
from server.bootstrap import Runtime
from server.embedded import free_port

ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024
SIZE = int(os.environ.get("TM_BENCH_TRANSFER_MIB", "100")) * MiB
ROUNDS = int(os.environ.get("TM_BENCH_TRANSFER_ROUNDS", "3"))


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class PeakRss:
    """Samples a process's RSS every 20 ms; `peak` is the highest seen."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = rss_mib(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mib(self.pid))
            time.sleep(0.02)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class ServerProcess:
    """`python -m server` pointed at stores the bench already runs."""

    def __init__(self, runtime: Runtime, env_extra: dict[str, str]) -> None:
        self.address = f"127.0.0.1:{free_port()}"
        env = {
            **os.environ,
            **env_extra,
            "TM_GRPC_ADDRESS": self.address,
            "TM_DATABASE_URL": runtime.database_url,
            "TM_S3_ENDPOINT_URL": runtime.s3_url or "",
            "TM_LOG_LEVEL": "WARNING",
        }
        self.process = subprocess.Popen([sys.executable, "-m", "server"], cwd=ROOT, env=env)
        self.channel = grpc.insecure_channel(
            self.address,
            options=[("grpc.max_receive_message_length", 64 * MiB), ("grpc.max_send_message_length", 64 * MiB)],
        )
        health = health_pb2_grpc.HealthStub(self.channel)
        deadline = time.monotonic() + 60
        while True:
            try:
                health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                break
            except grpc.RpcError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("bench server did not start") from None
                time.sleep(0.2)
        self.stub = service_pb2_grpc.TimeMachineServiceStub(self.channel)

    def stop(self) -> None:
        self.channel.close()
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)


def upload_stream(chat: str, data: bytes, name: str = "big.bin") -> Iterator[api.UploadFileRequest]:
    view = memoryview(data)
    yield api.UploadFileRequest(chat_id=chat, name=name, source=pb.FILE_SOURCE_USER_UPLOAD)
    for start in range(0, len(data), MiB):
        yield api.UploadFileRequest(chunk=bytes(view[start : start + MiB]))


def round_trip(server: ServerProcess, md: tuple[tuple[str, str], ...], data: bytes) -> tuple[float, float]:
    """Seconds to upload `data` through the service, and to download it back."""
    start = time.perf_counter()
    file_id = server.stub.UploadFile(upload_stream(str(uuid.uuid4()), data), metadata=md).file.id
    uploaded = time.perf_counter() - start
    start = time.perf_counter()
    received = 0
    for reply in server.stub.DownloadFile(api.DownloadFileRequest(file_id=file_id), metadata=md):
        received += len(reply.chunk)
    assert received == len(data)
    return uploaded, time.perf_counter() - start


def measure(runtime: Runtime, s3_keys: dict[str, str]) -> dict[str, Any]:
    assert runtime.stores is not None
    vault = runtime.stores.vault
    server = ServerProcess(runtime, s3_keys)
    md = (("x-tenant-id", str(uuid.uuid4())), ("x-user-id", str(uuid.uuid4())))
    data = os.urandom(SIZE)

    try:
        baseline_rss = rss_mib(server.process.pid)
        up_service, up_boto, down_service, down_boto = [], [], [], []
        with PeakRss(server.process.pid) as peak:
            for i in range(ROUNDS):
                uploaded, downloaded = round_trip(server, md, data)
                up_service.append(uploaded)
                down_service.append(downloaded)

                key = f"bench/raw-{i}"
                start = time.perf_counter()
                vault.client.upload_fileobj(io.BytesIO(data), vault.bucket, key)
                up_boto.append(time.perf_counter() - start)

                sink = io.BytesIO()
                start = time.perf_counter()
                vault.client.download_fileobj(vault.bucket, key, sink)
                down_boto.append(time.perf_counter() - start)
                assert sink.getbuffer().nbytes == SIZE
        growth = peak.peak - baseline_rss
        # The same round trip with three times the bytes: growth that is
        # bounded stays put; growth proportional to the file would triple.
        del data
        with PeakRss(server.process.pid) as peak_3x:
            round_trip(server, md, os.urandom(3 * SIZE))
        return {
            "transfer_mib": SIZE // MiB,
            "upload_seconds_service_p50": round(statistics.median(up_service), 3),
            "upload_seconds_boto3_p50": round(statistics.median(up_boto), 3),
            "download_seconds_service_p50": round(statistics.median(down_service), 3),
            "download_seconds_boto3_p50": round(statistics.median(down_boto), 3),
            "upload_ratio_vs_boto3": round(statistics.median(up_boto) / statistics.median(up_service), 3),
            "download_ratio_vs_boto3": round(statistics.median(down_boto) / statistics.median(down_service), 3),
            "transfer_rss_growth_mib": round(growth, 1),
            "transfer_rss_growth_mib_at_3x_size": round(peak_3x.peak - baseline_rss, 1),
        }
    finally:
        server.stop()
