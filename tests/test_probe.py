"""`python -m server.probe`, the container's HEALTHCHECK."""

from __future__ import annotations

import os
import subprocess
import sys

from server.embedded import free_port
from server.probe import target
from tests.conftest import Stack


def _probe(address: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TM_GRPC_ADDRESS": address}
    return subprocess.run(
        [sys.executable, "-m", "server.probe"], env=env, capture_output=True, text=True, timeout=30, check=False
    )


def test_the_probe_passes_on_a_serving_server_and_fails_where_none_listens(stack: Stack) -> None:
    assert _probe(stack.address).returncode == 0
    nobody = _probe(f"127.0.0.1:{free_port()}")
    assert nobody.returncode == 1 and "UNAVAILABLE" in nobody.stderr


def test_a_server_on_every_interface_is_probed_on_loopback() -> None:
    assert target("0.0.0.0:50051") == "127.0.0.1:50051"
    assert target("[::]:50051") == "127.0.0.1:50051"
    assert target("10.0.0.5:50051") == "10.0.0.5:50051"
