"""Bare chunks are encoded exactly as protobuf would encode the chunk message."""

from __future__ import annotations

import os
from typing import Any

import pytest

from generated.timemachine.v1 import service_pb2 as api
from server.app import CHUNK_FIELDS, _chunk_serializer

MESSAGES: dict[str, Any] = {
    "DownloadFile": api.DownloadFileResponse,
    "ExportChat": api.ExportChatResponse,
    "DownloadExport": api.DownloadExportResponse,
}


@pytest.mark.parametrize("rpc", sorted(CHUNK_FIELDS))
@pytest.mark.parametrize("size", [1, 127, 128, 16_383, 16_384, 1024 * 1024])
def test_bare_chunk_bytes_equal_protobuf_encoding(rpc: str, size: int) -> None:
    message = MESSAGES[rpc]
    data = os.urandom(size)
    serialize = _chunk_serializer(CHUNK_FIELDS[rpc], message.SerializeToString)
    assert serialize(data) == message(chunk=data).SerializeToString()
    header = message(chunk=b"")
    assert serialize(header) == header.SerializeToString()  # messages still go through protobuf
