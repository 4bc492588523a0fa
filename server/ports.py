"""Listen addresses checked before anything starts.

A taken gRPC or metrics port used to surface only after the embedded stores
had started and the migrations had run, as a traceback. The check binds the
address the way the server will and lets it go at once: the stores then
start only when the server can serve.
"""

from __future__ import annotations

import socket

from service.errors import ConfigurationError


def _endpoints(address: str, variable: str) -> list[tuple[int, tuple[object, ...]]]:
    host, _, port = address.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    try:
        number = int(port)
        infos = socket.getaddrinfo(host, number, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (ValueError, socket.gaierror) as exc:
        raise ConfigurationError(
            f"{variable} {address!r} is not a host:port this machine can listen on ({exc})"
        ) from None
    return [(family, sockaddr) for family, _, _, _, sockaddr in infos]


def require_free(address: str, variable: str) -> None:
    """ConfigurationError (naming `variable`) when `address` cannot be listened on."""
    for family, sockaddr in _endpoints(address, variable):
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            # As a server binds: a port left in TIME_WAIT by an earlier run is free.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(sockaddr)
                probe.listen(1)
            except OSError as exc:
                reason = (
                    "is in use by another program" if exc.errno == 98 else f"cannot be listened on ({exc.strerror})"
                )
                raise ConfigurationError(
                    f"{variable}={address} {reason}: stop that program or set {variable} to a free address"
                ) from None
