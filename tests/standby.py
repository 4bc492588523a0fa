"""A streaming hot standby of the embedded PostgreSQL (tests of reads that may lag)."""

from __future__ import annotations

from pathlib import Path

from server.embedded import EmbeddedPostgres


class Standby(EmbeddedPostgres):
    """A hot standby in `<data_dir>/postgres`, cloned from `primary` by pg_basebackup and streaming from it."""

    def __init__(self, data_dir: Path, primary: EmbeddedPostgres) -> None:
        super().__init__(data_dir)
        self.primary = primary

    def start(self) -> str:
        self._prepare()
        if not (self.pgdata / "PG_VERSION").exists():
            # -R writes standby.signal and primary_conninfo; -X stream copies the WAL the backup needs.
            source = f"host={self.primary.socket_dir} user=postgres"
            self._run("pg_basebackup", "-D", str(self.pgdata), "-d", source, "-R", "-X", "stream", "-c", "fast")
        return super().start()
