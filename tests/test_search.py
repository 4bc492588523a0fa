"""Search every version: queries as people type them, ranking, paging, isolation, index use."""

from __future__ import annotations

import uuid

import grpc
import pytest

from generated.timemachine.v1 import resources_pb2 as pb
from generated.timemachine.v1 import service_pb2 as api
from service.models import Identity
from service.search import Searcher
from service.standby import LaggingReads
from tests.bulk import load_bulk_chat
from tests.conftest import Caller, Stack, rpc_error


def search(caller: Caller, query: str, **kw: object) -> api.SearchResponse:
    return caller.stub.Search(api.SearchRequest(query=query, **kw), metadata=caller.md)  # type: ignore[arg-type]


def texts(reply: api.SearchResponse) -> list[str]:
    return sorted(h.message.content for h in reply.message_hits)


def test_current_versions_only_unless_history(caller: Caller, chat_id: str) -> None:
    kept = caller.save(chat_id, "the falcon has landed")
    edited = caller.save(chat_id, "a pelican was here")
    caller.edit(chat_id, edited.message.message_id, "a heron was here")
    gone = caller.save(chat_id, "secret pelican plans")
    caller.delete(chat_id, gone.message.message_id)
    assert texts(search(caller, "pelican", chat_id=chat_id)) == []
    history = search(caller, "pelican", chat_id=chat_id, include_history=True)
    assert texts(history) == ["a pelican was here", "secret pelican plans"]
    assert not any(h.is_current for h in history.message_hits)
    current = search(caller, "falcon heron or", chat_id=chat_id)
    assert texts(search(caller, "heron", chat_id=chat_id)) == ["a heron was here"]
    assert search(caller, "falcon", chat_id=chat_id).message_hits[0].is_current
    assert search(caller, "falcon", chat_id=chat_id).message_hits[0].message.message_id == kept.message.message_id
    assert current.message_hits == [] or all(h.is_current for h in current.message_hits)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('"quick brown"', ["the quick brown fox"]),
        ("quick -fox", ["quick silver"]),
        ("fox or silver", ["quick silver", "the quick brown fox"]),
        ("don't", ["don't panic"]),
        ("fox & (quick!", ["the quick brown fox"]),
        ("C++ && |", []),
        ("!!! ??? ((", []),
        ("'''", []),
        ('"unclosed quote fox', []),
        ("FOX", ["the quick brown fox"]),
    ],
)
def test_search_box_syntax_never_errors(caller: Caller, chat_id: str, query: str, expected: list[str]) -> None:
    for content in ("the quick brown fox", "quick silver", "don't panic"):
        caller.save(chat_id, content)
    assert texts(search(caller, query, chat_id=chat_id)) == expected


def test_empty_query_is_invalid(caller: Caller) -> None:
    for query in ("", "   "):
        assert rpc_error(search, caller, query).code() == grpc.StatusCode.INVALID_ARGUMENT
    assert rpc_error(search, caller, "x", chat_id="nope").code() == grpc.StatusCode.INVALID_ARGUMENT


def test_all_chats_of_the_tenant_and_nobody_elses(caller: Caller, other: Caller) -> None:
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    caller.save(first, "marmalade in chat one")
    caller.save(second, "marmalade in chat two")
    other.save(first, "marmalade of another tenant")
    found = search(caller, "marmalade")
    assert texts(found) == ["marmalade in chat one", "marmalade in chat two"]
    assert texts(search(caller, "marmalade", chat_id=second)) == ["marmalade in chat two"]
    assert texts(search(other, "marmalade")) == ["marmalade of another tenant"]
    lonely = str(uuid.uuid4())
    caller.save(lonely, "mine")
    assert rpc_error(search, other, "mine", chat_id=lonely).code() == grpc.StatusCode.NOT_FOUND


def test_files_by_name_text_and_type_filter(caller: Caller, chat_id: str) -> None:
    caller.save(chat_id, "see the attached budget")
    caller.upload(chat_id, "budget-2026.csv", b"line,amount\nrent,1200\nkumquats,7\n", mime_type="text/csv")
    caller.upload(chat_id, "photo.bin", b"\x00\x01")
    by_text = search(caller, "kumquats", chat_id=chat_id)
    assert [h.file.original_name for h in by_text.file_hits] == ["budget-2026.csv"]
    assert "<mark>kumquats</mark>" in by_text.file_hits[0].highlight
    both = search(caller, "budget", chat_id=chat_id)
    assert len(both.message_hits) == 1 and len(both.file_hits) == 1
    only_files = search(caller, "budget", chat_id=chat_id, type=pb.SEARCH_TYPE_FILES)
    assert only_files.message_hits == [] and len(only_files.file_hits) == 1
    only_messages = search(caller, "budget", chat_id=chat_id, type=pb.SEARCH_TYPE_MESSAGES)
    assert len(only_messages.message_hits) == 1 and only_messages.file_hits == []


def test_deleted_file_versions_need_history(caller: Caller, chat_id: str) -> None:
    up = caller.upload(chat_id, "wombat-notes.txt", b"all about wombats", mime_type="text/plain")
    caller.stub.DeleteFile(api.DeleteFileRequest(chat_id=chat_id, file_id=up.file.id), metadata=caller.md)
    assert search(caller, "wombat", chat_id=chat_id).file_hits == []
    assert len(search(caller, "wombat", chat_id=chat_id, include_history=True).file_hits) == 1


def test_highlight_is_html_escaped_and_ranked(caller: Caller, chat_id: str) -> None:
    caller.save(chat_id, "<script>alert('otter')</script> otter")
    caller.save(chat_id, "otter otter otter, all otters: otter")
    reply = search(caller, "otter", chat_id=chat_id)
    assert [h.rank for h in reply.message_hits] == sorted((h.rank for h in reply.message_hits), reverse=True)
    assert reply.message_hits[0].message.content.startswith("otter otter")
    escaped = next(h.highlight for h in reply.message_hits if "script" in h.highlight)
    assert "<mark>otter</mark>" in escaped and "script&gt;" in escaped
    markup_free = escaped.replace("<mark>", "").replace("</mark>", "")
    assert "<" not in markup_free and ">" not in markup_free  # the only markup is ours


def test_long_messages_are_highlighted_where_they_match(caller: Caller, chat_id: str) -> None:
    filler = "lorem ipsum dolor sit amet " * 15000  # 405 KB before the match
    caller.save(chat_id, filler + "the Capybara's burrow <b>here</b> " + filler)
    # No phrases (nor apostrophes, which make one): tsvector positions stop at 16,383.
    for query in ("Capybara", "capybara -nothing", "burrow or zzz"):
        (hit,) = search(caller, query, chat_id=chat_id).message_hits
        assert "<mark>" in hit.highlight, query
        assert len(hit.highlight) < 1000 and "&lt;b&gt;" in hit.highlight
    (start,) = search(caller, "lorem", chat_id=chat_id).message_hits
    assert start.highlight.startswith("<mark>lorem</mark>")


def test_pages_of_long_hits_stay_within_a_default_clients_limit(caller: Caller, chat_id: str) -> None:
    """Eight 900 KB hits do not fit one 4 MiB response: pages hold fewer, and visit each once."""
    for i in range(8):
        caller.save(chat_id, f"walrus {i} " + "x" * 900_000)
    seen: list[str] = []
    token, pages = "", 0
    while True:
        page = search(caller, "walrus", chat_id=chat_id, page_size=20, page_token=token)
        assert 1 <= len(page.message_hits) <= 3 and page.ByteSize() < 4 * 1024 * 1024
        seen += [h.message.content.split()[1] for h in page.message_hits]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert sorted(seen) == [str(i) for i in range(8)] and pages >= 3


def test_paging_visits_every_hit_once(caller: Caller, chat_id: str) -> None:
    for i in range(23):
        caller.save(chat_id, f"lemur number {i}")
    seen: list[str] = []
    token = ""
    while True:
        page = search(caller, "lemur", chat_id=chat_id, page_size=5, page_token=token)
        assert len(page.message_hits) <= 5
        seen += [h.message.id for h in page.message_hits]
        token = page.next_page_token
        if not token:
            break
    assert len(seen) == 23 and len(set(seen)) == 23
    error = rpc_error(
        search, caller, "other words", chat_id=chat_id, page_size=5, page_token=token or "eyJrIjpbNSwtMV0sImYiOiJ4In0"
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_non_latin_text(caller: Caller, chat_id: str) -> None:
    caller.save(chat_id, "Привет, как дела?")
    caller.save(chat_id, "Καλημέρα κόσμε")
    caller.save(chat_id, "مرحبا بالعالم")
    caller.save(chat_id, "東京 タワー")
    assert texts(search(caller, "ПРИВЕТ", chat_id=chat_id)) == ["Привет, как дела?"]
    assert texts(search(caller, "καλημέρα", chat_id=chat_id)) == ["Καλημέρα κόσμε"]
    assert texts(search(caller, "مرحبا", chat_id=chat_id)) == ["مرحبا بالعالم"]
    assert texts(search(caller, "東京", chat_id=chat_id)) == ["東京 タワー"]


def test_index_is_used_under_rls_on_50k_versions(stack: Stack, caller: Caller) -> None:
    chat = uuid.uuid4()
    load_bulk_chat(stack.runtime.database_url, uuid.UUID(caller.tenant_id), chat, messages=10_000, versions=5)
    searcher = Searcher(LaggingReads(stack.stores.db))
    who = Identity(uuid.UUID(caller.tenant_id), None)
    for chat_filter, history in ((chat, True), (chat, False), (None, True)):
        plan = "\n".join(searcher.plan(who, chat_filter, "needle", history))
        assert "Bitmap Index Scan on tm_search_documents_text" in plan, plan
        assert "Seq Scan on tm_search_documents" not in plan, plan
    hits = search(caller, "needle", chat_id=str(chat), include_history=True, page_size=100)
    assert len(hits.message_hits) == 5
    current = search(caller, "needle", chat_id=str(chat), page_size=100)
    assert all(h.is_current for h in current.message_hits) and len(current.message_hits) == 1
