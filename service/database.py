"""The narrow connector between the product and PostgreSQL.

Every unit of work runs in one transaction on one pooled connection with the
tenant bound by `SET LOCAL`: the setting is transaction-local, so it can never
leak to the next borrower of the connection, and row-level security sees it
on every statement. Driver errors are translated here.
"""

from __future__ import annotations

import dataclasses
import logging
import select
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from typing import Any, TypeVar
from uuid import UUID

import psycopg
import psycopg.errors
from psycopg import sql
from psycopg.rows import class_row, dict_row, tuple_row
from psycopg.types.json import JsonbBinaryLoader
from psycopg_pool import ConnectionPool, PoolTimeout

from service import deadline
from service.errors import Aborted, DeadlineExceeded, FieldViolation, InvalidArgument, Unavailable
from service.queries import query
from service.tally import Tally

log = logging.getLogger(__name__)
T = TypeVar("T")
Params = dict[str, Any] | Sequence[Any] | None
# The role that row-level security binds (created by migrations/001).
APP_ROLE = "tm_app"


class JsonbLoader(JsonbBinaryLoader):
    """jsonb, with the empty object (most messages' metadata) returned without a JSON parse.

    Parsing was a third of the cost of loading a chat's rows (10,000 rows:
    55 ms of 180).
    """

    def load(self, data: Any) -> Any:
        if data == b"\x01{}":
            return {}
        return super().load(data)


def record_row(cls: type[T]) -> Any:
    """Rows as `cls` instances (a dataclass or a NamedTuple); positionally when the columns are its fields in order.

    class_row builds a keyword dict per row, 12 us of a large chat's ~35 us
    per message; a query that selects exactly the fields, in order (as the
    chat reads do), skips that. A NamedTuple is then made from the row's
    values in one C call.
    """
    named: tuple[str, ...] | None = getattr(cls, "_fields", None)
    names = named if named is not None else tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
    fields = tuple(name.encode() for name in names)
    positional = cls._make if named is not None else lambda values: cls(*values)  # type: ignore[attr-defined]
    by_name = class_row(cls)

    def factory(cursor: Any) -> Any:
        # The result's raw column names: cursor.description builds a Column
        # object per column on every execute (~8 % of a SaveMessage's Python time).
        result = cursor.pgresult
        names = () if result is None else tuple(result.fname(i) for i in range(result.nfields))
        if names == fields:
            return positional
        return by_name(cursor)

    return factory


def row_factory(row: type[Any] | None) -> Any:
    """Rows as dicts by default, as plain tuples for `tuple`, else as `row` records."""
    if row is None:
        return dict_row
    if row is tuple:
        return tuple_row
    factory = _RECORD_ROWS.get(row)
    if factory is None:  # one factory per row class: its field names are worked out once (a race makes two)
        factory = _RECORD_ROWS[row] = record_row(row)
    return factory


_RECORD_ROWS: dict[type[Any], Any] = {}


class Transaction:
    """Runs named queries inside one open transaction."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.snapshots: list[str] = []  # triggers of the snapshots written, counted once committed

    def one(self, name: str, params: Params = None, row: type[T] | None = None, *, prepare: bool | None = None) -> Any:
        with self._cursor(row) as cur:
            cur.execute(query(name), params, prepare=prepare)
            return cur.fetchone()

    def all(
        self, name: str, params: Params = None, row: type[T] | None = None, *, prepare: bool | None = None
    ) -> list[Any]:
        """All rows; `prepare=False` plans with the values (psycopg otherwise prepares a query it runs often)."""
        with self._cursor(row) as cur:
            cur.execute(query(name), params, prepare=prepare)
            return cur.fetchall()

    def stream(self, name: str, params: Params = None, row: type[T] | None = None) -> Generator[Any, None, None]:
        """Rows of a large result, fetched in batches by a server-side cursor."""
        cur = self.conn.cursor(name="tm_stream", row_factory=row_factory(row), binary=True)
        try:
            cur.itersize = 2000
            cur.execute(query(name), params)
            yield from cur
        finally:
            try:
                cur.close()
            except psycopg.OperationalError:
                # The connection went while the cursor was being closed (seen
                # when PostgreSQL restarts under a read). It is of no more use;
                # closed, it lets the cursor close without a round trip, where
                # a cursor left open warns when it is collected.
                self.conn.close()
                cur.close()
                raise

    def execute(self, name: str, params: Params = None, *, prepare: bool | None = None) -> int:
        with self.conn.cursor() as cur:
            cur.execute(query(name), params, prepare=prepare)
            return cur.rowcount

    def _cursor(self, row: type[T] | None) -> psycopg.Cursor[Any]:
        # Binary results: timestamps and uuids load faster than from text.
        return self.conn.cursor(row_factory=row_factory(row), binary=True)


def begin_statement(tenant_id: UUID | None, statement_ms: int, lock_ms: int, idle_ms: int) -> bytes:
    """BEGIN, and the tenant and the time limits of the transaction, each local to it.

    One round trip: with no parameters psycopg uses the simple query
    protocol, which takes several statements (its own transaction() sends
    BEGIN as a round trip of its own). The values are a UUID's text and
    integers, so they go in as literals without quoting rules; this runs for
    every transaction (sql.Literal took 33 us a call).

    SET LOCAL rather than set_config(): the same transaction-local settings,
    and the statement Citus forwards to each worker a transaction touches
    (`citus.propagate_set_commands = 'local'`, docs/operations.md), where the
    row policies read the tenant.
    """
    return (
        f"BEGIN; {tenant_setting(tenant_id).decode()};"
        f" SET LOCAL statement_timeout = {int(statement_ms)};"
        f" SET LOCAL lock_timeout = {int(lock_ms)};"
        f" SET LOCAL idle_in_transaction_session_timeout = {int(idle_ms)}"
    ).encode()


def tenant_setting(tenant_id: UUID | None) -> bytes:
    """The tenant (None: none, which sees no rows) as a statement local to the transaction (see begin_statement)."""
    tenant = "" if tenant_id is None else str(UUID(str(tenant_id)))
    return f"SET LOCAL app.current_tenant_id = '{tenant}'".encode()


# A deadline's tighter time limits, local to the transaction: one statement, prepared like any other.
# (Citus needs SET LOCAL only for the tenant, which its workers' row policies read.)
TIME_LIMITS = "SELECT set_config('statement_timeout', %s, true), set_config('lock_timeout', %s, true)"


def dropped(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    """Whether the database ended this idle connection: it closed it, or sent the error that says why.

    An idle connection has nothing to read; a poll with no wait tells, where
    a check would cost a round trip.
    """
    if conn.closed or conn.broken:
        return True
    readable, _, _ = select.select([conn.fileno()], [], [], 0)
    return bool(readable)


def _connection_lost(exc: psycopg.OperationalError) -> bool:
    """A connection that is gone: no SQLSTATE (the client saw it drop), class 08, or a backend terminated."""
    return exc.sqlstate is None or exc.sqlstate.startswith("08") or exc.sqlstate in ("57P01", "57P02", "57P03")


def _ms(seconds: float) -> int:
    """A PostgreSQL duration setting; at least 1 ms (0 would mean no limit)."""
    return max(1, int(seconds * 1000))


class Database:
    """A pool of connections that act as the service's row-level-security role."""

    def __init__(
        self,
        url: str,
        min_size: int = 2,
        max_size: int = 16,
        *,
        statement_timeout: float = 60.0,
        lock_timeout: float = 10.0,
        idle_in_transaction_timeout: float = 60.0,
        on_connect: Callable[[psycopg.Connection[Any] | psycopg.AsyncConnection[Any]], None] | None = None,
    ) -> None:
        self.url = url
        self.on_connect = on_connect  # e.g. tracing (server/tracing.py)
        self.snapshots = Tally()  # snapshots committed through this pool, by trigger (server/metrics.py)
        self.max_connections = max_size
        self.statement_timeout = statement_timeout
        self.lock_timeout = lock_timeout
        self.idle_in_transaction_timeout = idle_in_transaction_timeout
        self.pool = ConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            open=False,
            kwargs={"autocommit": True},  # transactions are begun and ended by hand: see _in_transaction
            configure=self._configure,
            timeout=5.0,  # how long a call waits for a connection before UNAVAILABLE
            name="timemachine",
        )

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        for statement in self.session_setup():
            conn.execute(statement)
        conn.adapters.register_loader("jsonb", JsonbLoader)
        if self.on_connect is not None:
            self.on_connect(conn)

    def session_setup(self) -> list[sql.SQL | sql.Composed]:
        """What each pooled connection runs once, before its first use (this pool's and AsyncDatabase's)."""
        return [
            # The login user may own the tables (or be a superuser, as in the
            # embedded setup); policies bind only once we act as the service role.
            sql.SQL("SET ROLE {}").format(sql.Identifier(APP_ROLE)),
            # The time limits as the session's defaults too: a statement sent at once
            # (at_once) then sets only a deadline's tighter ones.
            sql.SQL(
                f"SET statement_timeout = {_ms(self.statement_timeout)};"
                f" SET lock_timeout = {_ms(min(self.lock_timeout, self.statement_timeout))}"
            ),
        ]

    @contextmanager
    def _begun(self, begin: bytes) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection with a transaction begun by `begin` (see begin_statement).

        Connections are not checked when borrowed (that was a round trip per
        call): one the database dropped (a restart, a failover, an idle
        timeout) fails here, before any work, and is replaced once. The pool
        then checks its idle connections, so one restart costs no call more
        than that one retry.
        """
        with ExitStack() as stack:
            try:
                conn = stack.enter_context(self._in_transaction(begin))
            except psycopg.OperationalError as exc:
                if not _connection_lost(exc):
                    raise
                log.info("a pooled connection was gone (%s); checking the pool and retrying once", type(exc).__name__)
                self.pool.check()
                conn = stack.enter_context(self._in_transaction(begin))
            yield conn

    @contextmanager
    def _in_transaction(self, begin: bytes) -> Iterator[psycopg.Connection[Any]]:
        """A transaction on an autocommit connection, begun and ended by hand."""
        with self.pool.connection() as conn:
            conn.execute(begin)
            try:
                yield conn
            except BaseException:
                if not conn.broken:
                    with suppress(psycopg.Error):
                        conn.execute("ROLLBACK")
                raise
            self.commit(conn)

    @staticmethod
    def commit(conn: psycopg.Connection[Any]) -> None:
        """COMMIT; an error here may come after the database committed (see Files._committed)."""
        conn.execute("COMMIT")

    def open(self) -> None:
        try:
            self.pool.open(wait=True, timeout=30.0)
        except PoolTimeout as exc:
            raise Unavailable("the database is unreachable") from exc

    def close(self) -> None:
        self.pool.close()

    @contextmanager
    def transaction(self, tenant_id: UUID | None) -> Iterator[Transaction]:
        """One transaction for `tenant_id` (None: no tenant, sees no rows).

        Its statements and lock waits end with the call's deadline (service/
        deadline.py), or after this database's limits without one; a call whose
        deadline has passed gets no connection at all.
        """
        left, statement = self._limits()
        begin = begin_statement(
            tenant_id,
            _ms(statement),
            _ms(min(self.lock_timeout, statement)),
            _ms(self.idle_in_transaction_timeout),
        )
        with self.translated(left):
            with self._begun(begin) as conn:
                tx = Transaction(conn)
                yield tx
            for trigger in tx.snapshots:  # committed: count them
                self.snapshots.add(trigger)

    def at_once(self, tenant_id: UUID, name: str, params: Params, row: type[T] | None = None) -> Any:
        """The first row of one statement run in a transaction of its own, in one round trip; None: no row.

        The tenant and any deadline's time limits travel with the statement in
        one pipeline on an autocommit connection, which PostgreSQL runs as one
        implicit transaction ending at the pipeline's sync: a statement that
        fails leaves nothing, as a rolled-back transaction does. A statement
        that fails on a unique index also answers None: it wrote nothing, and
        the caller's general path finds out why (SaveMessage: a used request
        id or message id). So does a pooled connection the database ended,
        which the general path replaces. AsyncDatabase.at_once is the same on
        an event loop.
        """
        left, limits = self.one_trip_limits()
        with self.translated(left), self.pool.connection() as conn:
            if dropped(conn):
                conn.close()  # the pool discards it; the general path checks the rest
                return None
            try:
                with conn.pipeline():
                    # Not prepared: its text differs by tenant, and a statement psycopg
                    # prepares stays in the session.
                    conn.execute(tenant_setting(tenant_id), prepare=False)
                    if limits is not None:
                        conn.execute(TIME_LIMITS, limits)
                    cur = conn.cursor(row_factory=row_factory(row), binary=True)
                    cur.execute(query(name), params)
            except psycopg.errors.UniqueViolation:
                return None
            return cur.fetchone()

    def one_trip_limits(self) -> tuple[float | None, tuple[str, str] | None]:
        """The call's time left, and the (statement, lock) timeouts a one-trip statement sets: None when
        the session's defaults (session_setup) are already tight enough."""
        left, statement = self._limits()
        if statement >= self.statement_timeout:
            return left, None
        return left, (str(_ms(statement)), str(_ms(min(self.lock_timeout, statement))))

    def _limits(self) -> tuple[float | None, float]:
        """The call's time left (None: no deadline) and its statement timeout; none left: DEADLINE_EXCEEDED."""
        left = deadline.remaining()
        if left is not None and left <= 0:
            raise DeadlineExceeded("the call's deadline passed before its work began")
        return left, self.statement_timeout if left is None else min(self.statement_timeout, left)

    @contextmanager
    def translated(self, left: float | None) -> Iterator[None]:
        """Driver errors as the service's: what a caller may retry, and what it must not."""
        try:
            yield
        except (psycopg.errors.QueryCanceled, psycopg.errors.LockNotAvailable) as exc:
            # Cut short by the timeouts above; not OperationalError's "unreachable".
            if left is not None and (deadline.remaining() or 0) <= 0.05:
                raise DeadlineExceeded("the call's deadline passed while the database was working") from exc
            raise Unavailable("the chat or the database is busy; retry later") from exc
        except PoolTimeout as exc:
            raise Unavailable("the database is busy or unreachable; retry later") from exc
        except psycopg.OperationalError as exc:
            log.warning("database unavailable: %s", exc)
            raise Unavailable("the database is unreachable; retry later") from exc
        except (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected) as exc:
            raise Aborted("a concurrent change interfered; retry") from exc
        except psycopg.errors.InvalidParameterValue as exc:
            # Python's zone list and PostgreSQL's can differ (each has its own
            # tz database): a zone only Python knows is still the caller's choice.
            if "time zone" in (exc.diag.message_primary or ""):
                raise InvalidArgument([FieldViolation("time_zone", "is not a time zone the database knows")]) from None
            raise
