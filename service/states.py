"""The chat's messages and files as they were at a version.

Every read here is one statement on one table, bounded by the chat
(service/sql/states.sql); file tombstones are a second table and are applied
here, in Python, rather than joined in SQL. So each read costs at most one
pass over the chat's rows, whatever the planner believes about its size.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Generator
from datetime import datetime
from typing import Any
from uuid import UUID

from service.database import Transaction
from service.models import MediaFile, MessageEntry, MessageVersion

NEWEST = 2**62  # a version above every real one


def messages_at(
    tx: Transaction,
    tenant_id: UUID,
    chat_id: UUID,
    version: int,
    *,
    after_position: int = 0,
    limit: int | None = None,
    with_deleted: bool = False,
) -> list[MessageEntry]:
    """The chat's messages at `version` in chat order (tombstones too when asked)."""
    rows: list[MessageEntry] = tx.all(
        "message_entries_at_version",
        _at(tenant_id, chat_id, version, after_position, limit, with_deleted),
        MessageEntry,
    )
    return rows


def stream_entries_at(
    tx: Transaction, tenant_id: UUID, chat_id: UUID, version: int, *, after_position: int = 0
) -> Generator[MessageEntry, None, None]:
    """The same, fetched as they are read (close it when done): a reader that
    stops at an answer's budget has the database compute no more than it read."""
    rows: Generator[MessageEntry, None, None] = tx.stream(
        "message_entries_at_version", _at(tenant_id, chat_id, version, after_position, None, False), MessageEntry
    )
    return rows


def _at(
    tenant_id: UUID, chat_id: UUID, version: int, after_position: int, limit: int | None, with_deleted: bool
) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "chat_id": chat_id,
        "version": version,
        "after_position": after_position,
        "limit": limit,
        "with_deleted": with_deleted,
    }


def message_versions(
    tx: Transaction,
    tenant_id: UUID,
    chat_id: UUID,
    message_id: UUID,
    *,
    before_version: int = NEWEST,
    limit: int | None = None,
    chat_version: int | None = None,
) -> list[MessageVersion]:
    """One message's versions, newest first."""
    params = {
        "tenant_id": tenant_id,
        "chat_id": chat_id,
        "message_id": message_id,
        "before_version": before_version,
        "limit": limit,
        "chat_version": chat_version,
    }
    rows: list[MessageVersion] = tx.all("message_versions", params, MessageVersion)
    return rows


class _Tombstones:
    """When each file name was deleted, in version order."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.versions: dict[str, list[int]] = defaultdict(list)
        self.times: dict[str, list[datetime]] = defaultdict(list)
        for row in rows:  # ordered by name, chat_version
            self.versions[row["original_name"]].append(row["chat_version"])
            self.times[row["original_name"]].append(row["created_at"])

    def first_after(self, name: str, chat_version: int) -> tuple[int, datetime] | None:
        versions = self.versions.get(name)
        if not versions:
            return None
        index = bisect.bisect_right(versions, chat_version)
        if index == len(versions):
            return None
        return versions[index], self.times[name][index]


def _media_file(row: dict[str, Any], tombstones: _Tombstones) -> MediaFile:
    """A file version with its status now: archived by a later version, or deleted after it."""
    fields = dict(row)
    next_version_at = fields.pop("next_version_at")
    deleted = tombstones.first_after(row["original_name"], row["chat_version"])
    if next_version_at is not None:
        status, archived_at = "archived", next_version_at
    elif deleted is not None:
        status, archived_at = "soft_deleted", deleted[1]
    else:
        status, archived_at = "active", None
    return MediaFile(**fields, status=status, archived_at=archived_at)


def file_versions(
    tx: Transaction,
    tenant_id: UUID,
    chat_id: UUID,
    *,
    version: int = NEWEST,
    name: str | None = None,
    latest_only: bool = False,
    with_text: bool = True,
) -> list[MediaFile]:
    """File versions written at or before `version`, by name then version.

    With `latest_only`, the files in view at `version`: each name's latest
    version then, unless the name was deleted after it and by `version`.
    """
    params = {
        "tenant_id": tenant_id,
        "chat_id": chat_id,
        "version": version,
        "original_name": name,
        "latest_only": latest_only,
        "with_text": with_text,
    }
    rows: list[dict[str, Any]] = tx.all("file_versions_at_version", params)
    tombstones = _Tombstones(tx.all("file_deletions", {**params}))
    files = []
    for row in rows:
        if latest_only:
            deleted = tombstones.first_after(row["original_name"], row["chat_version"])
            if deleted is not None and deleted[0] <= version:
                continue
        files.append(_media_file(row, tombstones))
    return files


def files_at(
    tx: Transaction, tenant_id: UUID, chat_id: UUID, version: int = NEWEST, *, with_text: bool = True
) -> list[MediaFile]:
    """The files in view at `version` (now, by default), by name."""
    return file_versions(tx, tenant_id, chat_id, version=version, latest_only=True, with_text=with_text)
