"""A Node.js client (grpc-js, proto-loader over proto/) speaks the contract:
unary calls, an upload stream, a download stream, an export stream and an import stream."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import grpc
import pytest

from tests.conftest import Stack

NODE_DIR = Path(__file__).parent / "node"


@pytest.fixture(scope="module")
def node_client() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("node and npm are required for the interop test (both ship on the project's machines)")
    if not (NODE_DIR / "node_modules" / "@grpc" / "grpc-js").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=NODE_DIR, check=True, timeout=300)
    return NODE_DIR / "client.js"


def test_node_client_round_trip(stack: Stack, node_client: Path) -> None:
    tenant, user, chat, copy = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    result = subprocess.run(
        ["node", str(node_client), stack.address, tenant, user, chat, copy],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["saved_version"] == "1" and seen["saved_trigger"] == "SNAPSHOT_TRIGGER_MESSAGE_SENT"
    assert seen["contents"] == ["hello from node"]
    assert seen["uploaded_sha256"] == seen["upload_sha256"] == seen["download_sha256"]
    assert seen["download_first_is_metadata"] and seen["download_max_chunk"] <= 1024 * 1024
    assert seen["export_header"] == [True, "application/json"] and seen["export_trailer_ok"]
    assert seen["export_messages"] == ["hello from node"]
    assert seen["bad_input_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    # v1 additions: the chat list and a chat's life, and ImportChat's client stream (6 snapshots:
    # save, upload, archive, unarchive, delete, undelete; the preview and the refused save wrote none).
    assert seen["archived_trigger"] == "SNAPSHOT_TRIGGER_CHAT_ARCHIVED" and seen["listed"] == [[chat, True]]
    assert seen["unarchived_trigger"] == "SNAPSHOT_TRIGGER_CHAT_UNARCHIVED" and seen["preview_checksum_is_target"]
    assert seen["deleted_write_code"] == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert seen["undeleted_trigger"] == "SNAPSHOT_TRIGGER_CHAT_UNDELETED"
    assert seen["imported"] == ["6", "SNAPSHOT_TRIGGER_CHAT_IMPORTED", seen["source_checksum"]]
    # Named versions, references to files, legal holds and erasure (EraseTenant erases the rest).
    assert seen["labeled_trigger"] == "SNAPSHOT_TRIGGER_SNAPSHOT_LABELED" and seen["at_label"]
    assert seen["unlabeled"] == "label 'first' taken off version 1"
    assert seen["attachment"] == ["node.bin", "REFERENCE_TYPE_ATTACHMENT"]
    assert seen["held"] and seen["erase_held_code"] == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert seen["erased_rows_positive"] and seen["erase_tenant_done"]
