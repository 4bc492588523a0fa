"""Before serving: the database answers, or one line says why not and what to change.

A database that is starting (a container next to ours, a failover) gets a
bounded wait (TM_STORE_WAIT_SECONDS) with a line now and then saying what
we wait for. Then, or at once for mistakes no wait can fix (a wrong password,
a missing database), one line names the URL with its password masked, the
reason and the fix.
"""

from __future__ import annotations

import logging
import time

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from service.errors import ConfigurationError, Unavailable

log = logging.getLogger(__name__)
MAX_PAUSE = 2.0  # seconds between attempts, at most
# SQLSTATEs that waiting cannot fix.
FINAL = {
    "28P01": "the password was refused: check the user and password in TM_DATABASE_URL",
    "28000": "the server refused this user: check the user in TM_DATABASE_URL and pg_hba.conf",
    "3D000": "the database does not exist: create it, or name an existing one in TM_DATABASE_URL",
    "42501": "the user lacks a privilege the service needs (to create role tm_app and the schema): "
    "use the schema's owner in TM_DATABASE_URL",
}


FINAL_WORDS = {
    "28P01": "password authentication failed",
    "28000": "no pg_hba.conf entry",
    "3D000": "does not exist",
}


def masked(url: str) -> str:
    """The connection string with its password replaced, for messages and logs."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "(an unparsable connection string)"
    if "password" in params:
        params["password"] = "***"
    if url.startswith(("postgresql://", "postgres://")) and "@" in url:
        scheme, rest = url.split("://", 1)
        credentials, _, place = rest.rpartition("@")
        user = credentials.split(":", 1)[0]
        return f"{scheme}://{user}{':***' if ':' in credentials else ''}@{place}"
    return make_conninfo("", **params)


def reason(exc: psycopg.Error) -> tuple[str, bool]:
    """What went wrong in words, and whether waiting could help."""
    text = str(exc).lower()
    # A connection refused by the server carries its message, not always its SQLSTATE.
    state = exc.sqlstate or next((code for code, words in FINAL_WORDS.items() if words in text), None)
    if state in FINAL:
        return FINAL[state], False
    if "could not translate host name" in text or "name or service not known" in text:
        return "the host name does not resolve: check the host in TM_DATABASE_URL", True
    if "connection refused" in text or "no such file or directory" in text:
        return "nothing accepts connections there (refused): is PostgreSQL running, on that host and port?", True
    if "timeout" in text or "timed out" in text:
        return "the connection timed out: a firewall, or the wrong host", True
    return f"the connection failed ({type(exc).__name__})", True


def wait_for_database(url: str, seconds: float) -> None:
    """Return once a connection succeeds; ConfigurationError or Unavailable (one line) otherwise."""
    deadline = time.monotonic() + seconds
    said = 0.0
    pause = 0.1
    while True:
        try:
            with psycopg.connect(url, connect_timeout=5):
                return
        except psycopg.Error as exc:
            why, may_pass = reason(exc)
            if not may_pass:
                raise ConfigurationError(f"PostgreSQL at {masked(url)}: {why}") from None
            now = time.monotonic()
            if now >= deadline:
                raise Unavailable(
                    f"PostgreSQL at {masked(url)} did not answer within {seconds:.0f} s (TM_STORE_WAIT_SECONDS): {why}"
                ) from None
            if now - said >= 5:
                log.info("waiting for PostgreSQL at %s: %s", masked(url), why)
                said = now
            time.sleep(min(pause, max(0.0, deadline - now)))
            pause = min(pause * 2, MAX_PAUSE)  # a database that is starting is asked often, a dead one less
