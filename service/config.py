"""Settings from the environment (the contract's TM_* variables)."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from service.errors import ConfigurationError


class _Environment:
    """Reads TM_* variables, noting every bad one instead of stopping at the first.

    A start-up with three mistakes reports three lines, not one per attempt.
    """

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, problem: str) -> None:
        self.problems.append(problem)

    def int(self, name: str, default: int, minimum: int = 1) -> int:
        raw = os.environ.get(name, "")
        if raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            self.fail(f"{name} must be a whole number, got {raw!r}")
            return default
        if value < minimum:
            self.fail(f"{name} must be at least {minimum}, got {value}")
            return default
        return value

    def choice(self, name: str, default: str, allowed: tuple[str, ...], *, upper: bool = False) -> str:
        raw = os.environ.get(name, "").strip() or default
        value = raw.upper() if upper else raw.lower()
        if value not in allowed:
            self.fail(f"{name} must be one of {', '.join(allowed)}, got {raw!r}")
            return default
        return value

    def flag(self, name: str) -> bool:
        raw = os.environ.get(name, "").strip().lower()
        if raw in ("", "0", "false", "no"):
            return False
        if raw in ("1", "true", "yes"):
            return True
        self.fail(f"{name} must be 1 or 0 (true or false), got {raw!r}")
        return False

    def file(self, name: str) -> Path | None:
        """A file that must exist and be readable."""
        raw = os.environ.get(name, "")
        if raw == "":
            return None
        path = Path(raw)
        try:
            with path.open("rb"):
                pass
        except OSError as exc:
            self.fail(f"{name}: cannot read {raw}: {exc.strerror}")
            return None
        return path


def is_loopback(address: str) -> bool:
    """Whether a listen address (host:port) is reachable from this machine only."""
    host = address.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def _tls_files(env: _Environment) -> tuple[Path | None, Path | None, Path | None]:
    cert, key, client_ca = env.file("TM_TLS_CERT_FILE"), env.file("TM_TLS_KEY_FILE"), env.file("TM_TLS_CLIENT_CA_FILE")
    named = {name for name in ("TM_TLS_CERT_FILE", "TM_TLS_KEY_FILE") if os.environ.get(name)}
    if len(named) == 1:
        (missing,) = {"TM_TLS_CERT_FILE", "TM_TLS_KEY_FILE"} - named
        env.fail(f"TM_TLS_CERT_FILE and TM_TLS_KEY_FILE go together: {missing} is not set")
    if os.environ.get("TM_TLS_CLIENT_CA_FILE") and not named:
        env.fail("TM_TLS_CLIENT_CA_FILE (mutual TLS) needs the server's own TM_TLS_CERT_FILE and TM_TLS_KEY_FILE")
    if cert is None or key is None:
        return None, None, None
    return cert, key, client_ca


def default_call_workers() -> int:
    """Threads for short calls: twice the CPUs, at least 4.

    Short calls spend most of their time on CPU in this process or the
    database's, so threads beyond a few per CPU only queue for the GIL: on
    2 CPUs, 8 clients saving through 32 threads cost 1.19 ms of our CPU per
    save, through 4 threads 0.97 ms, at 17 % more saves a second.
    """
    return max(4, 2 * (os.cpu_count() or 2))


@dataclass(frozen=True)
class Settings:
    """Everything the service reads from its environment, read once at start."""

    grpc_address: str
    data_dir: Path
    database_url: str | None
    s3_endpoint_url: str | None
    s3_bucket: str
    auth_mode: str
    jwt_secret: str | None
    db_pool_min: int
    db_pool_max: int
    grpc_workers: int
    grpc_call_workers: int
    grpc_keepalive_seconds: int
    stream_idle_seconds: int
    max_message_bytes: int
    max_upload_bytes: int
    log_level: str
    export_workers: int
    export_lease_seconds: int
    pdf_max_text_bytes: int
    db_statement_timeout_seconds: int = 60
    db_lock_timeout_seconds: int = 10
    db_idle_in_transaction_seconds: int = 60
    export_queue_per_tenant: int = 20
    # Open WatchChat streams a replica holds, and snapshots each may fall behind (service/events.py).
    max_watches: int = 10_000
    watch_buffer: int = 256
    sweeper_interval_seconds: int = 3600
    sweeper_grace_seconds: int = 24 * 3600
    # A hot standby for reads that may lag (service/standby.py); None: the primary.
    database_read_url: str | None = None
    # TLS (server/tls.py): a certificate and its key; with a client CA, mutual TLS.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None
    # Metadata identity off loopback without mutual TLS: only when a gateway or mesh sets the headers.
    trust_identity_headers: bool = False
    # Prometheus /metrics on host:port (server/metrics.py); None: off.
    metrics_address: str | None = None
    # Health goes NOT_SERVING once a store has been unreachable this long (server/readiness.py).
    health_grace_seconds: int = 10
    # json (one object per line) or text (server/logs.py).
    log_format: str = "json"
    # How long start-up waits for PostgreSQL and S3 to answer (server/preflight.py).
    store_wait_seconds: int = 30
    # JWT identity beyond HS256 (server/tokens.py).
    jwt_public_keys: Path | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_leeway_seconds: int = 30
    jwt_tenant_claim: str = "tenant_id"
    jwt_user_claim: str = "sub"

    @classmethod
    def from_env(cls) -> Settings:
        env = _Environment()
        auth_mode = env.choice("TM_AUTH_MODE", "metadata", ("metadata", "jwt"))
        jwt_secret = os.environ.get("TM_JWT_SECRET") or None
        jwt_public_keys = env.file("TM_JWT_PUBLIC_KEYS")
        if auth_mode == "jwt" and not jwt_secret and not os.environ.get("TM_JWT_PUBLIC_KEYS"):
            env.fail(
                "TM_AUTH_MODE=jwt needs TM_JWT_SECRET (an HS256 key) or TM_JWT_PUBLIC_KEYS (PEM or JWKS: RS256, ES256)"
            )
        if jwt_secret is not None and len(jwt_secret.encode()) < 32:
            env.fail("TM_JWT_SECRET must be at least 32 bytes (RFC 7518 3.2)")
        grpc_address = os.environ.get("TM_GRPC_ADDRESS", "127.0.0.1:50051")
        cert, key, client_ca = _tls_files(env)
        trust = env.flag("TM_TRUST_IDENTITY_HEADERS")
        mutual = bool(os.environ.get("TM_TLS_CLIENT_CA_FILE"))
        if auth_mode == "metadata" and not mutual and not trust and not is_loopback(grpc_address):
            # Anyone who can reach the port could name any tenant in x-tenant-id.
            env.fail(
                f"TM_GRPC_ADDRESS {grpc_address} accepts calls from other machines, and TM_AUTH_MODE=metadata "
                "believes the x-tenant-id and x-user-id any caller sends: set TM_TLS_CLIENT_CA_FILE (mutual TLS), "
                "or TM_AUTH_MODE=jwt, or TM_TRUST_IDENTITY_HEADERS=1 if a gateway or mesh in front sets them"
            )
        settings = cls(
            grpc_address=grpc_address,
            data_dir=Path(os.environ.get("TM_DATA_DIR", ".data")).resolve(),
            database_url=os.environ.get("TM_DATABASE_URL") or None,
            database_read_url=os.environ.get("TM_DATABASE_READ_URL") or None,
            tls_cert_file=cert,
            tls_key_file=key,
            tls_client_ca_file=client_ca,
            trust_identity_headers=trust,
            metrics_address=os.environ.get("TM_METRICS_ADDRESS") or None,
            health_grace_seconds=env.int("TM_HEALTH_GRACE_SECONDS", 10),
            s3_endpoint_url=os.environ.get("TM_S3_ENDPOINT_URL") or None,
            s3_bucket=os.environ.get("TM_S3_BUCKET", "tm-media-vault"),
            auth_mode=auth_mode,
            jwt_secret=jwt_secret,
            store_wait_seconds=env.int("TM_STORE_WAIT_SECONDS", 30, minimum=0),
            jwt_public_keys=jwt_public_keys,
            jwt_issuer=os.environ.get("TM_JWT_ISSUER") or None,
            jwt_audience=os.environ.get("TM_JWT_AUDIENCE") or None,
            jwt_leeway_seconds=env.int("TM_JWT_LEEWAY_SECONDS", 30, minimum=0),
            jwt_tenant_claim=os.environ.get("TM_JWT_TENANT_CLAIM") or "tenant_id",
            jwt_user_claim=os.environ.get("TM_JWT_USER_CLAIM") or "sub",
            db_pool_min=env.int("TM_DB_POOL_MIN", 2),
            db_pool_max=env.int("TM_DB_POOL_MAX", 16),
            grpc_workers=env.int("TM_GRPC_WORKERS", 32),
            grpc_call_workers=env.int("TM_GRPC_CALL_WORKERS", default_call_workers()),
            grpc_keepalive_seconds=env.int("TM_GRPC_KEEPALIVE_SECONDS", 60),
            stream_idle_seconds=env.int("TM_STREAM_IDLE_SECONDS", 60),
            max_message_bytes=env.int("TM_MAX_MESSAGE_BYTES", 1024 * 1024),
            max_upload_bytes=env.int("TM_MAX_UPLOAD_BYTES", 1024 * 1024 * 1024),
            log_level=env.choice("TM_LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), upper=True),
            log_format=env.choice("TM_LOG_FORMAT", "json", ("json", "text")),
            export_workers=env.int("TM_EXPORT_WORKERS", 1, minimum=0),
            export_lease_seconds=env.int("TM_EXPORT_LEASE_SECONDS", 60),
            pdf_max_text_bytes=env.int("TM_PDF_MAX_TEXT_BYTES", 32 * 1024 * 1024),
            db_statement_timeout_seconds=env.int("TM_DB_STATEMENT_TIMEOUT_SECONDS", 60),
            db_lock_timeout_seconds=env.int("TM_DB_LOCK_TIMEOUT_SECONDS", 10),
            db_idle_in_transaction_seconds=env.int("TM_DB_IDLE_IN_TRANSACTION_SECONDS", 60),
            export_queue_per_tenant=env.int("TM_EXPORT_QUEUE_PER_TENANT", 20),
            max_watches=env.int("TM_MAX_WATCHES", 10_000),
            watch_buffer=env.int("TM_WATCH_BUFFER", 256),
            # 0 turns the sweeper off on this replica (another one may sweep).
            sweeper_interval_seconds=env.int("TM_SWEEPER_INTERVAL_SECONDS", 3600, minimum=0),
            # Longer than any upload takes from its first byte to its commit.
            sweeper_grace_seconds=env.int("TM_SWEEPER_GRACE_SECONDS", 24 * 3600, minimum=0),
        )
        if env.problems:
            raise ConfigurationError("\n".join(env.problems))
        return settings
