"""`python -m server.probe`: exit 0 when the server at TM_GRPC_ADDRESS answers SERVING, 1 otherwise.

The container's HEALTHCHECK. A server listening on every interface is asked
on loopback.
"""

from __future__ import annotations

import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

WILDCARDS = ("", "0.0.0.0", "[::]", "::")


def target(address: str) -> str:
    host, _, port = address.rpartition(":")
    return f"{'127.0.0.1' if host in WILDCARDS else host}:{port}"


def main() -> int:
    address = target(os.environ.get("TM_GRPC_ADDRESS", "127.0.0.1:50051"))
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3)
        except grpc.RpcError as error:
            print(f"{address}: {error.code().name}", file=sys.stderr)
            return 1
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        print(f"{address}: {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
