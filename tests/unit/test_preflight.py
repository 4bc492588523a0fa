"""What a failed connection is called, from the texts PostgreSQL and libpq give."""

from __future__ import annotations

import psycopg
import pytest

from server import preflight


@pytest.mark.parametrize(
    ("text", "words", "may_pass"),
    [
        ('connection failed: FATAL:  password authentication failed for user "tm"', "the password was refused", False),
        ('FATAL:  no pg_hba.conf entry for host "10.0.0.2", user "tm"', "the server refused this user", False),
        ('FATAL:  database "nope" does not exist', "the database does not exist", False),
        ("connection failed: Connection refused", "refused", True),
        ('could not translate host name "db.invalid" to address', "does not resolve", True),
        ("connection timeout expired", "timed out", True),
    ],
)
def test_a_failed_connection_is_named_and_judged(text: str, words: str, may_pass: bool) -> None:
    why, retry = preflight.reason(psycopg.OperationalError(text))
    assert words in why and retry is may_pass


def test_a_missing_privilege_is_final() -> None:
    why, retry = preflight.reason(psycopg.errors.InsufficientPrivilege("permission denied for schema public"))
    assert "lacks a privilege" in why and not retry


@pytest.mark.parametrize(
    "url",
    ["postgresql://tm:s3cret@db:5432/tm", "host=db user=tm password=s3cret dbname=tm"],
)
def test_the_password_is_masked(url: str) -> None:
    shown = preflight.masked(url)
    assert "s3cret" not in shown and "***" in shown and "db" in shown
