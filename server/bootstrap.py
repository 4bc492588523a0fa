"""Bring the stores up (embedded or configured), migrate, and tear them down."""

from __future__ import annotations

import logging

import psycopg

from server import preflight
from server.app import Stores
from server.embedded import DataDirLock, EmbeddedPostgres, EmbeddedS3
from server.tracing import Tracing
from service import migrations
from service.config import Settings
from service.database import Database
from service.errors import ConfigurationError
from service.vault import Vault, make_client

log = logging.getLogger("timemachine")


class Runtime:
    """Everything the server needs besides gRPC, started in order, stopped in reverse."""

    def __init__(self, settings: Settings, tracer: Tracing | None = None) -> None:
        self.settings = settings
        self.tracing = tracer or Tracing(None)
        self.postgres: EmbeddedPostgres | None = None
        self.s3: EmbeddedS3 | None = None
        self.database_url = settings.database_url or ""
        self.s3_url = settings.s3_endpoint_url
        self.stores: Stores | None = None
        self.lock: DataDirLock | None = None

    def start_stores(self) -> None:
        s = self.settings
        if not s.database_url or not s.s3_endpoint_url:  # embedded stores keep their files in data_dir
            self.lock = DataDirLock(s.data_dir)
            self.lock.acquire()
        if not s.database_url:
            self.postgres = EmbeddedPostgres(s.data_dir)
            log.info("embedded PostgreSQL in %s", self.postgres.pgdata)
            self.database_url = self.postgres.start()
        else:
            log.info("using PostgreSQL from TM_DATABASE_URL")
        if not s.s3_endpoint_url:
            self.s3 = EmbeddedS3(s.data_dir)
            self.s3_url = self.s3.start()
            log.info("embedded S3 (SeaweedFS) at %s, data in %s", self.s3_url, self.s3.dir)
        else:
            log.info("using S3 at %s", s.s3_endpoint_url)

    def migrate(self) -> list[str]:
        preflight.wait_for_database(self.database_url, self.settings.store_wait_seconds)
        try:
            applied = migrations.apply(self.database_url)
        except psycopg.Error as exc:
            why, _ = preflight.reason(exc)
            raise ConfigurationError(f"migrating PostgreSQL at {preflight.masked(self.database_url)}: {why}") from None
        log.info("migrations: %s", ", ".join(applied) if applied else "up to date")
        return applied

    def open(self) -> Stores:
        s = self.settings
        db = Database(
            self.database_url,
            min_size=s.db_pool_min,
            max_size=s.db_pool_max,
            statement_timeout=s.db_statement_timeout_seconds,
            lock_timeout=s.db_lock_timeout_seconds,
            idle_in_transaction_timeout=s.db_idle_in_transaction_seconds,
            on_connect=self.tracing.connection_hook(),
        )
        db.open()
        reads = None
        if s.database_read_url:
            reads = Database(
                s.database_read_url,
                min_size=1,
                max_size=s.db_pool_max,
                statement_timeout=s.db_statement_timeout_seconds,
                lock_timeout=s.db_lock_timeout_seconds,
                idle_in_transaction_timeout=s.db_idle_in_transaction_seconds,
                on_connect=self.tracing.connection_hook(),
            )
            reads.open()
            log.info("reads that may lag go to TM_DATABASE_READ_URL")
        if self.s3 is not None:
            client = make_client(self.s3_url, self.s3.access_key, self.s3.secret_key)
        else:
            client = make_client(self.s3_url)
        vault = Vault(client, s.s3_bucket)
        vault.open(wait_seconds=s.store_wait_seconds)
        log.info("vault bucket %s is versioned", s.s3_bucket)
        self.stores = Stores(db=db, vault=vault, reads=reads)
        return self.stores

    def start(self) -> Stores:
        """Stores up, schema migrated, pool and vault open."""
        self.start_stores()
        self.migrate()
        return self.open()

    def stop(self) -> None:
        if self.stores is not None:
            self.stores.db.close()
            if self.stores.reads is not None:
                self.stores.reads.close()
            self.stores = None
        if self.s3 is not None:
            self.s3.stop()
        if self.postgres is not None:
            self.postgres.stop()
        if self.lock is not None:
            self.lock.release()
            self.lock = None
