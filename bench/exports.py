"""A ZIP export with 200 MiB of media against reading the same objects from S3.

The server is a fresh process of its own for the export, so its RSS growth
is the export's, not what earlier uploads left in the allocator.

It also records the CPU seconds each process spends per run (the S3 server,
our server, this client). On a machine with few cores all three share the
CPU, so when the cores are saturated the ratio tends to
    (S3 server + raw reader) / (S3 server + our server + gRPC client)
and those figures say where an export's time goes.
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.transfers import PeakRss, ServerProcess, rss_mib, upload_stream
from generated.timemachine.v1 import resources_pb2 as pb
from generated.timemachine.v1 import service_pb2 as api
from server.bootstrap import Runtime

MiB = 1024 * 1024
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU of a process so far (0 when it is not ours to see)."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


class CpuMeter:
    """CPU seconds of the S3 server, our server and this process over a block."""

    def __init__(self, s3_pid: int | None, server_pid: int) -> None:
        self.pids = (s3_pid, server_pid)
        self.spent: list[tuple[float, float, float]] = []

    def _now(self) -> tuple[float, float, float]:
        own = os.times()
        return cpu_seconds(self.pids[0]), cpu_seconds(self.pids[1]), own.user + own.system

    def run(self, work: Callable[[], int]) -> float:
        before, start = self._now(), time.perf_counter()
        work()
        elapsed = time.perf_counter() - start
        after = self._now()
        self.spent.append((after[0] - before[0], after[1] - before[1], after[2] - before[2]))
        return elapsed

    def medians(self, prefix: str) -> dict[str, float]:
        names = ("s3_server", "our_server", "client")
        return {
            f"{prefix}_cpu_seconds_{name}": round(statistics.median(s[i] for s in self.spent), 3)
            for i, name in enumerate(names)
        }


FILES = 4
FILE_MIB = int(os.environ.get("TM_BENCH_EXPORT_MEDIA_MIB", "200")) // FILES
ROUNDS = int(os.environ.get("TM_BENCH_EXPORT_ROUNDS", "3"))


def measure(runtime: Runtime, s3_keys: dict[str, str]) -> dict[str, Any]:
    assert runtime.stores is not None
    vault = runtime.stores.vault
    md = (("x-tenant-id", str(uuid.uuid4())), ("x-user-id", str(uuid.uuid4())))
    chat = str(uuid.uuid4())
    loader = ServerProcess(runtime, s3_keys)
    try:
        for i in range(FILES):
            loader.stub.UploadFile(upload_stream(chat, os.urandom(FILE_MIB * MiB), f"media-{i}.bin"), metadata=md)
        loader.stub.SaveMessage(
            api.SaveMessageRequest(chat_id=chat, role=pb.MESSAGE_ROLE_USER, content="see attached"), metadata=md
        )
        files = loader.stub.ListFiles(api.ListFilesRequest(chat_id=chat), metadata=md).files
    finally:
        loader.stop()
    server = ServerProcess(runtime, s3_keys)
    request = api.ExportChatRequest(chat_id=chat, format=pb.EXPORT_FORMAT_ZIP, include_media=True)
    keys = []
    with runtime.stores.db.transaction(uuid.UUID(md[0][1])) as tx:
        for f in files:
            row = tx.one("file_by_id", {"tenant_id": uuid.UUID(md[0][1]), "file_id": uuid.UUID(f.id)})
            keys.append((row["s3_key"], row["s3_version_id"]))

    def export() -> int:
        return sum(len(r.chunk) for r in server.stub.ExportChat(request, metadata=md))

    def download() -> int:
        """The same bytes through DownloadFile: the gRPC stream's own ceiling."""
        total = 0
        for f in files:
            for reply in server.stub.DownloadFile(api.DownloadFileRequest(file_id=f.id), metadata=md):
                total += len(reply.chunk)
        return total

    def raw() -> int:
        total = 0
        for key, version in keys:
            body = vault.client.get_object(Bucket=vault.bucket, Key=key, VersionId=version)["Body"]
            while chunk := body.read(MiB):
                total += len(chunk)
        return total

    try:
        small = api.ExportChatRequest(chat_id=chat, format=pb.EXPORT_FORMAT_JSON)
        list(server.stub.ExportChat(small, metadata=md))  # warm the code paths up
        baseline = rss_mib(server.process.pid)
        s3_pid = runtime.s3.process.pid if runtime.s3 is not None and runtime.s3.process is not None else None
        meters = {name: CpuMeter(s3_pid, server.process.pid) for name in ("export", "raw", "download")}
        exported, direct, streamed = [], [], []
        with PeakRss(server.process.pid) as peak:
            for _ in range(ROUNDS):
                exported.append(meters["export"].run(export))
                direct.append(meters["raw"].run(raw))
                streamed.append(meters["download"].run(download))
        assert export() > raw() == FILES * FILE_MIB * MiB
        spent_export = meters["export"].medians("export")
        spent_raw = meters["raw"].medians("raw_s3_read")
        cpu_model = (
            spent_raw["raw_s3_read_cpu_seconds_s3_server"] + spent_raw["raw_s3_read_cpu_seconds_client"]
        ) / sum(spent_export.values())
        return (
            spent_export
            | spent_raw
            | {
                "export_ratio_if_cpu_bound": round(cpu_model, 3),
                "export_media_mib": FILES * FILE_MIB,
                "export_zip_seconds_p50": round(statistics.median(exported), 3),
                "raw_s3_read_seconds_p50": round(statistics.median(direct), 3),
                "export_zip_ratio_vs_raw_s3_read": round(statistics.median(direct) / statistics.median(exported), 3),
                "download_file_seconds_p50_same_bytes": round(statistics.median(streamed), 3),
                "grpc_stream_ratio_vs_raw_s3_read": round(statistics.median(direct) / statistics.median(streamed), 3),
                "export_rss_growth_mib": round(peak.peak - baseline, 1),
            }
        )
    finally:
        server.stop()
