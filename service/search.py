"""Search every version: what a user types into a search box, ranked and paged."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any
from uuid import UUID

from service import paging
from service.database import Transaction
from service.errors import FieldViolation, InvalidArgument
from service.models import Identity, MediaFile, MessageVersion
from service.standby import LaggingReads
from service.timeline import require_chat
from service.validation import Checker

DEFAULT_PAGE = 20
MAX_PAGE = 100
# Bytes of hits in one response: gRPC clients refuse messages over 4 MiB by default.
RESPONSE_BUDGET = 3 * 1024 * 1024
HIT_OVERHEAD = 1024  # ids, times, names, rank: generous


def _message_weight(row: dict[str, Any]) -> int:
    return len(row["content"].encode()) + len(row["highlight"].encode()) + len(str(row["metadata"])) + HIT_OVERHEAD


def _file_weight(row: dict[str, Any]) -> int:
    texts = (row["extracted_text"], row["ai_description"], row["highlight"])
    return sum(len(t.encode()) for t in texts if t) + HIT_OVERHEAD


def _fitting(
    rows: list[dict[str, Any]], budget: int, weight: Callable[[dict[str, Any]], int], at_least_one: bool
) -> tuple[int, int]:
    """How many of `rows` fit in `budget` (one at least, if asked), and the budget left."""
    kept = 0
    for row in rows:
        cost = weight(row)
        if cost > budget and not (at_least_one and kept == 0):
            break
        budget -= cost
        kept += 1
    return kept, max(budget, 0)


class SearchType(enum.Enum):
    ALL = "all"
    MESSAGES = "messages"
    FILES = "files"


@dataclass
class MessageHit:
    message: MessageVersion
    rank: float
    highlight: str
    is_current: bool


@dataclass
class FileHit:
    file: MediaFile
    rank: float
    highlight: str


@dataclass
class SearchResult:
    message_hits: list[MessageHit]
    file_hits: list[FileHit]
    next_page_token: str


def _record(cls: type[Any], row: dict[str, Any]) -> Any:
    return cls(**{f.name: row[f.name] for f in fields(cls) if f.name in row})


class Searcher:
    """Search reads may lag: a standby may serve them (service/standby.py)."""

    def __init__(self, reads: LaggingReads) -> None:
        self.reads = reads

    def search(
        self,
        identity: Identity,
        *,
        chat_id: str,
        query: str,
        search_type: SearchType,
        include_history: bool,
        page_size: int,
        page_token: str,
    ) -> SearchResult:
        check = Checker()
        chat = check.uuid("chat_id", chat_id, required=False)
        check.text("query", query, max_bytes=1000, required=True)
        size = check.page_size("page_size", page_size, default=DEFAULT_PAGE, maximum=MAX_PAGE)
        check.done()
        scope = ("search", identity.tenant_id, chat, query, search_type.value, include_history, size)
        offsets = paging.decode(page_token, scope, list) or [0, 0]
        if len(offsets) != 2 or not all(isinstance(o, int) for o in offsets):
            raise InvalidArgument([FieldViolation("page_token", "is not a token this service issued")])
        message_offset, file_offset = offsets

        def read(tx: Transaction) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
            if chat is not None:
                require_chat(tx, identity, chat)
            parsed = tx.one("parse_query", {"query": query})
            if parsed["empty"]:
                return None
            params = {
                "tenant_id": identity.tenant_id,
                "chat_id": chat,
                "tsquery": parsed["tsquery"],
                "include_history": include_history,
                "limit": size + 1,
            }
            message_rows: list[dict[str, Any]] = []
            file_rows: list[dict[str, Any]] = []
            if search_type is not SearchType.FILES and message_offset >= 0:
                message_rows = tx.all("search_messages", {**params, "offset": message_offset})
            if search_type is not SearchType.MESSAGES and file_offset >= 0:
                file_rows = tx.all("search_files", {**params, "offset": file_offset})
            return message_rows, file_rows

        found = self.reads.run(identity.tenant_id, read)
        if found is None:
            return SearchResult([], [], "")
        message_rows, file_rows = found
        # A page may hold fewer than page_size hits (AIP-158 allows it): hits
        # carry whole texts, and a page stays within what clients accept.
        budget = RESPONSE_BUDGET
        messages_kept, budget = _fitting(message_rows[:size], budget, _message_weight, at_least_one=True)
        files_kept, budget = _fitting(file_rows[:size], budget, _file_weight, at_least_one=not messages_kept)
        more_messages, more_files = len(message_rows) > messages_kept, len(file_rows) > files_kept
        token = ""
        if more_messages or more_files:
            # -1 marks a list that is exhausted, so later pages skip it.
            token = paging.encode(
                [
                    message_offset + messages_kept if more_messages else -1,
                    file_offset + files_kept if more_files else -1,
                ],
                scope,
            )
        return SearchResult(
            message_hits=[
                MessageHit(_record(MessageVersion, r), float(r["rank"]), r["highlight"], bool(r["is_current"]))
                for r in message_rows[:messages_kept]
            ],
            file_hits=[
                FileHit(_record(MediaFile, r), float(r["rank"]), r["highlight"]) for r in file_rows[:files_kept]
            ],
            next_page_token=token,
        )

    def plan(self, identity: Identity, chat: UUID | None, query: str, include_history: bool) -> list[str]:
        """EXPLAIN of the message search as it runs (for tests and operators)."""
        params = {"chat_id": chat, "query": query, "include_history": include_history}
        rows = self.reads.run(identity.tenant_id, lambda tx: tx.all("search_plan", params))
        return [row["line"] for row in rows]
