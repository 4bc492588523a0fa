"""TLS and mutual TLS from certificate files, reloaded without a restart.

gRPC asks for the server's certificate configuration at every new TLS
handshake (dynamic_ssl_server_credentials). The files are read again when
they change on disk or after SIGHUP, so a renewed certificate (cert-manager,
certbot) takes effect for the next connection, and connections already open,
with their calls, go on with the one they began with.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import grpc

from service.errors import ConfigurationError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path
    client_ca: Path | None = None  # set: clients must present a certificate it signed (mutual TLS)


class ReloadingCredentials:
    """Server credentials whose files are read again when they change or when `reload()` is called."""

    def __init__(self, files: TlsFiles) -> None:
        self.files = files
        self._lock = threading.Lock()
        self._forced = False
        self._stamp = self._stamps()
        self.reloads = 0
        initial = self._configuration()
        self.credentials = grpc.dynamic_ssl_server_credentials(
            initial,
            self._fetch,
            require_client_authentication=files.client_ca is not None,
        )

    def reload(self) -> None:
        """Read the files again at the next handshake (SIGHUP)."""
        with self._lock:
            self._forced = True

    def _paths(self) -> list[Path]:
        return [p for p in (self.files.cert, self.files.key, self.files.client_ca) if p is not None]

    def _stamps(self) -> tuple[tuple[int, int], ...]:
        stamps = []
        for path in self._paths():
            try:
                stat = os.stat(path)
            except OSError:
                return ()
            stamps.append((stat.st_mtime_ns, stat.st_size))
        return tuple(stamps)

    def _configuration(self) -> grpc.ServerCertificateConfiguration:
        try:
            cert, key = self.files.cert.read_bytes(), self.files.key.read_bytes()
            ca = self.files.client_ca.read_bytes() if self.files.client_ca is not None else None
        except OSError as exc:
            raise ConfigurationError(f"cannot read a TLS file: {exc.filename}: {exc.strerror}") from None
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        # Called by gRPC at each handshake: None keeps the current configuration.
        with self._lock:
            stamp = self._stamps()
            if not self._forced and (stamp == self._stamp or not stamp):
                return None
            self._forced = False
            self._stamp = stamp
        try:
            configuration = self._configuration()
        except ConfigurationError as exc:  # a half-written renewal: keep serving with what works
            log.warning("TLS files not reloaded, keeping the current ones: %s", exc)
            return None
        self.reloads += 1
        log.info("TLS certificate files reloaded")
        return configuration
