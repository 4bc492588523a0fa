"""A ZIP export with 200 MiB of media against reading the same objects from S3.

The server is a fresh process of its own for the export, so its RSS growth
is the export's, not what earlier uploads left in the allocator.
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
from typing import Any

from bench.transfers import PeakRss, ServerProcess, rss_mib, upload_stream
from generated.timemachine.v1 import resources_pb2 as pb
from generated.timemachine.v1 import service_pb2 as api
from server.bootstrap import Runtime

MiB = 1024 * 1024
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
        exported, direct, streamed = [], [], []
        with PeakRss(server.process.pid) as peak:
            for _ in range(ROUNDS):
                start = time.perf_counter()
                size = export()
                exported.append(time.perf_counter() - start)
                start = time.perf_counter()
                read = raw()
                direct.append(time.perf_counter() - start)
                start = time.perf_counter()
                download()
                streamed.append(time.perf_counter() - start)
        assert size > read == FILES * FILE_MIB * MiB
        return {
            "export_media_mib": FILES * FILE_MIB,
            "export_zip_seconds_p50": round(statistics.median(exported), 3),
            "raw_s3_read_seconds_p50": round(statistics.median(direct), 3),
            "export_zip_ratio_vs_raw_s3_read": round(statistics.median(direct) / statistics.median(exported), 3),
            "download_file_seconds_p50_same_bytes": round(statistics.median(streamed), 3),
            "grpc_stream_ratio_vs_raw_s3_read": round(statistics.median(direct) / statistics.median(streamed), 3),
            "export_rss_growth_mib": round(peak.peak - baseline, 1),
        }
    finally:
        server.stop()
