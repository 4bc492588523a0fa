"""TLS and mutual TLS from certificate files (made here with `cryptography`), reloaded without a restart."""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
import ssl
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from generated.timemachine.v1 import resources_pb2 as pb
from generated.timemachine.v1 import service_pb2 as api
from generated.timemachine.v1 import service_pb2_grpc
from server.app import App
from service.config import Settings
from service.errors import ConfigurationError
from tests.conftest import Stack, quiet_settings

MD = (("x-tenant-id", str(uuid.uuid4())), ("x-user-id", str(uuid.uuid4())))


@dataclass
class Issued:
    cert: bytes
    key: bytes


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class Authority:
    """A certificate authority that issues server and client certificates."""

    def __init__(self, name: str) -> None:
        self.key = _key()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.pem = self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, name: str, *, server: bool) -> Issued:
        key = _key()
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
        )
        if server:
            names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return Issued(cert.public_bytes(serialization.Encoding.PEM), _pem(key))


@dataclass
class Files:
    authority: Authority
    cert: Path
    key: Path
    client_ca: Path


@pytest.fixture
def tls_files(tmp_path: Path) -> Files:
    authority = Authority("tm test CA")
    server = authority.issue("time machine", server=True)
    files = Files(authority, tmp_path / "server.pem", tmp_path / "server.key", tmp_path / "clients.pem")
    files.cert.write_bytes(server.cert)
    files.key.write_bytes(server.key)
    files.client_ca.write_bytes(authority.pem)
    return files


@contextmanager
def serving_tls(stack: Stack, files: Files, *, mutual: bool) -> Iterator[App]:
    settings = quiet_settings(
        tls_cert_file=files.cert,
        tls_key_file=files.key,
        tls_client_ca_file=files.client_ca if mutual else None,
    )
    app = App(settings, stack.stores)
    app.start()
    try:
        yield app
    finally:
        app.stop(grace=1)


def _channel(app: App, trusted: bytes, client: Issued | None = None) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=trusted,
        private_key=client.key if client else None,
        certificate_chain=client.cert if client else None,
    )
    return grpc.secure_channel(f"localhost:{app.port}", credentials)


def _serving(channel: grpc.Channel) -> bool:
    """A health check over the channel: False when the connection is refused."""
    try:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.UNAVAILABLE, error
        return False
    finally:
        channel.close()
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def _save(channel: grpc.Channel) -> str:
    stub = service_pb2_grpc.TimeMachineServiceStub(channel)
    request = api.SaveMessageRequest(chat_id=str(uuid.uuid4()), role=pb.MESSAGE_ROLE_USER, content="over TLS")
    return str(stub.SaveMessage(request, metadata=MD, timeout=10).message.content)


def _served_certificate(app: App) -> x509.Certificate:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection(("127.0.0.1", app.port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def test_tls_serves_trusting_clients_and_refuses_the_rest(stack: Stack, tls_files: Files) -> None:
    with serving_tls(stack, tls_files, mutual=False) as app:
        channel = _channel(app, tls_files.authority.pem)
        assert _save(channel) == "over TLS"
        channel.close()
        assert not _serving(grpc.insecure_channel(f"localhost:{app.port}"))  # plaintext
        assert not _serving(_channel(app, Authority("another CA").pem))  # a CA the client does not trust


def test_mutual_tls_refuses_clients_without_a_certificate_it_trusts(stack: Stack, tls_files: Files) -> None:
    with serving_tls(stack, tls_files, mutual=True) as app:
        trusted = tls_files.authority.issue("a client", server=False)
        assert _serving(_channel(app, tls_files.authority.pem, trusted))
        assert not _serving(_channel(app, tls_files.authority.pem))  # no client certificate
        stranger = Authority("another CA").issue("a stranger", server=False)
        assert not _serving(_channel(app, tls_files.authority.pem, stranger))  # signed by a CA it does not trust


def test_renewed_certificates_are_served_without_a_restart_or_a_dropped_call(stack: Stack, tls_files: Files) -> None:
    with serving_tls(stack, tls_files, mutual=False) as app:
        before = _served_certificate(app)
        channel = _channel(app, tls_files.authority.pem)
        stub = service_pb2_grpc.TimeMachineServiceStub(channel)
        chat = str(uuid.uuid4())
        stub.SaveMessage(api.SaveMessageRequest(chat_id=chat, role=pb.MESSAGE_ROLE_USER, content="one"), metadata=MD)
        watch = stub.WatchChat(api.WatchChatRequest(chat_id=chat), metadata=MD, timeout=30)
        assert next(watch).snapshot.version == 1

        renewed = tls_files.authority.issue("time machine renewed", server=True)
        tls_files.key.write_bytes(renewed.key)
        tls_files.cert.write_bytes(renewed.cert)
        os.utime(tls_files.cert)  # a change on disk: the next handshake reads the files again
        after = _served_certificate(app)
        assert after.serial_number != before.serial_number
        assert after.public_bytes(serialization.Encoding.PEM) == renewed.cert

        # The connection opened before the renewal, and its watch, go on.
        stub.SaveMessage(api.SaveMessageRequest(chat_id=chat, role=pb.MESSAGE_ROLE_USER, content="two"), metadata=MD)
        assert next(watch).snapshot.version == 2
        watch.cancel()
        channel.close()

        # SIGHUP's way: reload() reads the same files again at the next handshake.
        assert app.tls is not None
        reloads = app.tls.reloads
        app.tls.reload()
        assert _serving(_channel(app, tls_files.authority.pem))
        assert app.tls.reloads == reloads + 1


def _settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for name in ("TM_TLS_CERT_FILE", "TM_TLS_KEY_FILE", "TM_TLS_CLIENT_CA_FILE", "TM_TRUST_IDENTITY_HEADERS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TM_AUTH_MODE", "metadata")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings.from_env()


def test_identity_headers_are_trusted_off_loopback_only_when_said_or_with_mutual_tls(
    monkeypatch: pytest.MonkeyPatch, tls_files: Files
) -> None:
    assert _settings(monkeypatch, TM_GRPC_ADDRESS="127.0.0.1:50051")
    assert _settings(monkeypatch, TM_GRPC_ADDRESS="[::1]:50051")
    assert _settings(monkeypatch, TM_GRPC_ADDRESS="localhost:50051")
    for address in ("0.0.0.0:50051", "[::]:50051", "10.1.2.3:50051", "timemachine.internal:50051"):
        with pytest.raises(ConfigurationError, match="TM_TRUST_IDENTITY_HEADERS"):
            _settings(monkeypatch, TM_GRPC_ADDRESS=address)
    assert _settings(monkeypatch, TM_GRPC_ADDRESS="0.0.0.0:50051", TM_TRUST_IDENTITY_HEADERS="1")
    mutual = {
        "TM_TLS_CERT_FILE": str(tls_files.cert),
        "TM_TLS_KEY_FILE": str(tls_files.key),
        "TM_TLS_CLIENT_CA_FILE": str(tls_files.client_ca),
    }
    assert _settings(monkeypatch, TM_GRPC_ADDRESS="0.0.0.0:50051", **mutual)


def test_tls_settings_that_cannot_work_are_refused_at_start(monkeypatch: pytest.MonkeyPatch, tls_files: Files) -> None:
    with pytest.raises(ConfigurationError, match="TM_TLS_KEY_FILE"):
        _settings(monkeypatch, TM_TLS_CERT_FILE=str(tls_files.cert))
    with pytest.raises(ConfigurationError, match="TM_TLS_CERT_FILE"):
        _settings(monkeypatch, TM_TLS_CERT_FILE=str(tls_files.cert) + ".missing", TM_TLS_KEY_FILE=str(tls_files.key))
    with pytest.raises(ConfigurationError, match="TM_TLS_CLIENT_CA_FILE"):
        _settings(monkeypatch, TM_TLS_CLIENT_CA_FILE=str(tls_files.client_ca))
