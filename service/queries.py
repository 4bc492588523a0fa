"""Named SQL blocks loaded from service/sql/*.sql.

Each block starts with a line `-- name: some_query` and runs to the next one, so
SQL reads as SQL in one place and Python refers to it by name.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

SQL_DIR = Path(__file__).parent / "sql"
_HEADER = re.compile(r"^-- name: ([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


def parse(text: str) -> dict[str, str]:
    for line in text.splitlines():
        # A header the pattern misses would silently glue two queries together.
        if line.startswith("-- name:") and not _HEADER.fullmatch(line):
            raise ValueError(f"malformed query header {line!r}: names are lowercase letters, digits and _")
    parts = _HEADER.split(text)
    blocks: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in blocks:
            raise ValueError(f"duplicate query name {name!r}")
        blocks[name] = _without_comment_lines(body).strip()
    return blocks


def _without_comment_lines(body: str) -> str:
    """The block without its whole-line comments, which are for readers of the .sql files.

    psycopg caches the parsing of a statement's placeholders only for
    statements of at most 4 KiB (MAX_CACHED_STATEMENT_LENGTH); with its
    comments the write path's insert_snapshot was longer, and parsing it again
    on every call took about a tenth of SaveMessage's CPU in our process.
    """
    return "\n".join(line for line in body.splitlines() if not line.lstrip().startswith("--"))


@cache
def all_queries() -> dict[str, str]:
    blocks: dict[str, str] = {}
    for path in sorted(SQL_DIR.glob("*.sql")):
        for name, body in parse(path.read_text()).items():
            if name in blocks:
                raise ValueError(f"duplicate query name {name!r} in {path.name}")
            blocks[name] = body
    return blocks


def query(name: str) -> str:
    return all_queries()[name]
