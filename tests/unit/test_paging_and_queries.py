"""Page tokens and the SQL block loader."""

from __future__ import annotations

import pytest
from psycopg import _queries as psycopg_queries

from service import paging, queries
from service.errors import InvalidArgument


def test_token_round_trip_and_scope_binding() -> None:
    token = paging.encode(42, ("timeline", "t", "c"))
    assert paging.decode(token, ("timeline", "t", "c"), int) == 42
    assert paging.decode("", ("timeline", "t", "c"), int) is None
    with pytest.raises(InvalidArgument):
        paging.decode(token, ("timeline", "t", "other"), int)
    with pytest.raises(InvalidArgument):
        paging.decode(token, ("timeline", "t", "c"), list)
    with pytest.raises(InvalidArgument):
        paging.decode("%%%", ("timeline", "t", "c"), int)


def test_sql_blocks_parse_by_name_and_reject_duplicates() -> None:
    blocks = queries.parse("-- name: a\nselect 1\n\n-- name: b\n-- doc\nselect 2\n")
    assert blocks == {"a": "select 1", "b": "select 2"}  # comment lines are for readers, not the server
    for name, body in queries.all_queries().items():  # psycopg caches placeholders of statements up to 4 KiB
        assert len(body.encode()) <= psycopg_queries.MAX_CACHED_STATEMENT_LENGTH, name
    with pytest.raises(ValueError, match="duplicate"):
        queries.parse("-- name: a\nselect 1\n-- name: a\nselect 2\n")
    assert queries.parse("-- name: crc32s\nselect 3\n") == {"crc32s": "select 3"}
    with pytest.raises(ValueError, match="malformed"):
        queries.parse("-- name: a\nselect 1\n-- name: Bad-Name\nselect 2\n")
    assert "lock_chat" in queries.all_queries()
    assert "FOR UPDATE" in queries.query("lock_chat")
