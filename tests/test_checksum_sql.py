"""The checksum element computed in SQL (migrations/012) is the one service/checksum.py defines.

A restore brings versions back without fetching their content: the database
computes their elements. If the two definitions ever disagreed, a restored
chat's checksum would stop matching its target's, and VerifyChat would flag
every restore; these tests catch that first, on the kinds of text that JSON
escapes (quotes, backslashes, control characters) and the kinds it must not
(non-ASCII, line and paragraph separators, astral characters).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generated.timemachine.v1 import resources_pb2 as pb
from generated.timemachine.v1 import service_pb2 as api
from service import checksum
from service.database import APP_ROLE
from tests.conftest import Caller, Stack

# PostgreSQL text holds every character but NUL; the API refuses NUL too.
TEXT = st.text(st.characters(exclude_characters="\x00", codec="utf-8"), max_size=60)
NASTY = 'naïve "quoted" \\ back\\slash\ttab\nline\r\x01\x1f\x7f \u2028\u2029 \ufeff 😀 中文'


@pytest.fixture(scope="module")
def conn(stack: Stack) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(stack.runtime.database_url, autocommit=True) as conn:
        conn.execute(f"set role {APP_ROLE}")
        yield conn


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.integers(1, 2**62), role=TEXT, content=TEXT)
def test_the_sql_element_is_the_python_element(
    conn: psycopg.Connection[tuple[object, ...]], position: int, role: str, content: str
) -> None:
    message_id = uuid.uuid4()
    row = conn.execute("select tm_message_element(%s, %s, %s, %s)", (message_id, position, role, content)).fetchone()
    assert row is not None
    assert row[0] == checksum.to_hex(checksum.message_element(message_id, position, role, content))


def test_a_restored_version_keeps_its_content_words_and_checksum(caller: Caller, chat_id: str) -> None:
    """Content, search words and the checksum come back through SQL copies, not through us."""
    first = caller.save(chat_id, f"{NASTY} zanzibar")
    caller.save(chat_id, "second")
    caller.edit(chat_id, first.message.message_id, "rewritten")
    caller.delete(chat_id, first.message.message_id)
    target = caller.at(chat_id, version=2).snapshot
    result = caller.restore(chat_id, target.id, pb.RESTORE_SCOPE_FULL_CHAT)
    assert result.messages_restored == 1
    assert result.snapshot.checksum == target.checksum
    now = caller.chat(chat_id)
    assert [m.content for m in now.messages] == [f"{NASTY} zanzibar", "second"]
    assert now.messages[0].version == 4 and "restored from version 2" in now.messages[0].edit_reason
    hits = caller.stub.Search(api.SearchRequest(chat_id=chat_id, query="zanzibar"), metadata=caller.md).message_hits
    assert [(h.message.version, h.is_current) for h in hits] == [(4, True)]
    assert caller.verify(chat_id).ok


HEX = st.integers(0, 2**256 - 1)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(state=HEX, element=HEX)
def test_the_sql_state_sum_is_the_python_one(
    conn: psycopg.Connection[tuple[object, ...]], state: int, element: int
) -> None:
    """migrations/019's tm_state_add, which SaveMessage's one-statement path uses, is StateSum.add."""
    expected = checksum.StateSum(state)
    expected.add(element)
    row = conn.execute("select tm_state_add(%s, %s)", (checksum.to_hex(state), checksum.to_hex(element))).fetchone()
    assert row is not None and row[0] == expected.hex


@pytest.mark.parametrize(
    ("state", "element"), [(0, 0), (2**256 - 1, 1), (2**256 - 1, 2**256 - 1), (2**64 - 1, 1), (2**255, 2**255)]
)
def test_the_sql_state_sum_carries_and_wraps(
    conn: psycopg.Connection[tuple[object, ...]], state: int, element: int
) -> None:
    row = conn.execute("select tm_state_add(%s, %s)", (checksum.to_hex(state), checksum.to_hex(element))).fetchone()
    assert row is not None and row[0] == checksum.to_hex(state + element)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(state=HEX, element=HEX)
def test_the_sql_state_difference_is_the_python_one(
    conn: psycopg.Connection[tuple[object, ...]], state: int, element: int
) -> None:
    """migrations/021's tm_state_sub, which EditMessage's one-statement path uses, is StateSum.remove."""
    expected = checksum.StateSum(state)
    expected.remove(element)
    row = conn.execute("select tm_state_sub(%s, %s)", (checksum.to_hex(state), checksum.to_hex(element))).fetchone()
    assert row is not None and row[0] == expected.hex


@pytest.mark.parametrize(
    ("state", "element"), [(0, 0), (0, 1), (1, 2**256 - 1), (2**64, 1), (2**255, 2**255 + 1), (5, 5)]
)
def test_the_sql_state_difference_borrows_and_wraps(
    conn: psycopg.Connection[tuple[object, ...]], state: int, element: int
) -> None:
    row = conn.execute("select tm_state_sub(%s, %s)", (checksum.to_hex(state), checksum.to_hex(element))).fetchone()
    assert row is not None and row[0] == checksum.to_hex(state - element)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(title=TEXT)
def test_the_sql_title_element_is_the_python_one(conn: psycopg.Connection[tuple[object, ...]], title: str) -> None:
    """migrations/022's tm_title_element, which RenameChat's one-statement path uses, is title_element."""
    for text in (title, NASTY, ""):
        row = conn.execute("select tm_title_element(%s)", (text,)).fetchone()
        assert row is not None and row[0] == checksum.to_hex(checksum.title_element(text))
