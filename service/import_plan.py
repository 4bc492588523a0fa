"""What ImportChat will write, read from a JSON export and checked before anything is written.

The export (service/export/render.py, format_version 1, with version
history and its `history` section) names every snapshot, message version,
file version, file deletion and restore of a chat. This module turns it into
rows with new row ids (message ids are kept: the checksums are made of
them), and replays the history as VerifyChat does: each snapshot's
checksum, counts and tokens must equal what its version's rows make, so an
export that was edited by hand, cut short or made by a different algorithm
is refused before a single row is written, naming the first place it fails.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID, uuid4

from service import checksum
from service.attachments import TYPES
from service.errors import FieldViolation, InvalidArgument
from service.models import FileSource, Role, Scope, Trigger

FORMAT_VERSION = 1
FIELD = "export_chunk"  # the request field every complaint about the export names
MAX_COUNT = 2**62  # versions, positions, sizes, tokens: bigint with room for the next one
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
T = TypeVar("T")


def refuse(where: str, problem: str) -> InvalidArgument:
    return InvalidArgument([FieldViolation(FIELD, f"{where}: {problem}" if where else problem)])


class _Object:
    """One JSON object of the export, read field by field with the path in every complaint."""

    def __init__(self, value: Any, where: str) -> None:
        if not isinstance(value, dict):
            raise refuse(where, "must be an object")
        self.value = value
        self.where = where

    def _get(self, key: str, kinds: type | tuple[type, ...], required: bool) -> Any:
        value = self.value.get(key)
        if value is None:
            if required:
                raise refuse(f"{self.where}.{key}", "is missing")
            return None
        # bool is an int in Python; a count must not be true or false.
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in _tuple(kinds)):
            raise refuse(f"{self.where}.{key}", "has the wrong type")
        return value

    def text(self, key: str, required: bool = True) -> str:
        return self.optional_text(key, required) or ""

    def optional_text(self, key: str, required: bool = False) -> str | None:
        value: str | None = self._get(key, str, required)
        if value is not None:
            _storable(value, f"{self.where}.{key}")
        return value

    def count(self, key: str, minimum: int = 0) -> int:
        value = self.optional_count(key, required=True, minimum=minimum)
        assert value is not None
        return value

    def optional_count(self, key: str, *, required: bool = False, minimum: int = 0) -> int | None:
        value: int | None = self._get(key, int, required)
        if value is not None and not minimum <= value <= MAX_COUNT:
            raise refuse(f"{self.where}.{key}", f"must be between {minimum} and {MAX_COUNT}")
        return value

    def flag(self, key: str) -> bool:
        value: bool = self._get(key, bool, True)
        return value

    def uuid(self, key: str, required: bool = True) -> UUID | None:
        value = self._get(key, str, required)
        if value is None:
            return None
        try:
            return UUID(value)
        except ValueError:
            raise refuse(f"{self.where}.{key}", "is not a UUID") from None

    def time(self, key: str) -> str:
        value: str = self._get(key, str, True)
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise refuse(f"{self.where}.{key}", "is not an ISO 8601 time") from None
        if parsed.tzinfo is None:
            raise refuse(f"{self.where}.{key}", "needs a UTC offset")
        return parsed.isoformat()

    def choice(self, key: str, allowed: Callable[[str], T]) -> T:
        value = self.text(key)
        try:
            return allowed(value)
        except ValueError:
            raise refuse(f"{self.where}.{key}", f"{value[:40]!r} is not a known value") from None

    def mapping(self, key: str) -> dict[str, Any]:
        value: dict[str, Any] | None = self._get(key, dict, False)
        _storable(value, f"{self.where}.{key}")
        return value if value is not None else {}

    def objects(self, key: str, required: bool = True) -> list[_Object]:
        value: list[Any] | None = self._get(key, list, required)
        return [_Object(item, f"{self.where}.{key}[{index}]") for index, item in enumerate(value or [])]

    def uuids(self, key: str) -> list[UUID]:
        value: list[Any] | None = self._get(key, list, False)
        try:
            return [UUID(item) for item in value or []]
        except (ValueError, TypeError, AttributeError):
            raise refuse(f"{self.where}.{key}", "must be a list of UUIDs") from None


def _tuple(kinds: type | tuple[type, ...]) -> tuple[type, ...]:
    return kinds if isinstance(kinds, tuple) else (kinds,)


def _storable(value: Any, where: str) -> None:
    """Text PostgreSQL can hold: no NUL, no lone surrogate (JSON escapes can spell both)."""
    if isinstance(value, str):
        if "\x00" in value:
            raise refuse(where, "must not contain NUL characters")
        try:
            value.encode()
        except UnicodeEncodeError:
            raise refuse(where, "is not valid Unicode") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _storable(key, where)
            _storable(item, where)
    elif isinstance(value, list):
        for item in value:
            _storable(item, where)
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_COUNT:
        raise refuse(where, "holds a number too large to store")
    elif isinstance(value, float) and not math.isfinite(value):  # Python's JSON reads NaN and Infinity
        raise refuse(where, "holds a number JSON cannot carry")


@dataclass
class ImportPlan:
    """Rows ready for service/sql/imports.sql, in version order, with new ids."""

    snapshots: list[dict[str, Any]] = field(default_factory=list)
    message_versions: list[dict[str, Any]] = field(default_factory=list)
    message_heads: list[dict[str, Any]] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)
    file_deletions: list[dict[str, Any]] = field(default_factory=list)
    file_heads: list[dict[str, Any]] = field(default_factory=list)
    restores: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[dict[str, Any]] = field(default_factory=list)  # message versions' file references
    media: dict[str, int] = field(default_factory=dict)  # sha256 -> size, every object the files name
    # Each live message version's checksum element, by row id: computed once, for the replay and the heads.
    elements: dict[UUID, int] = field(default_factory=dict)
    next_position: int = 1

    @property
    def last(self) -> dict[str, Any]:
        return self.snapshots[-1]


def plan(document: Any) -> ImportPlan:
    """The rows of an export's history; InvalidArgument naming the first problem."""
    root = _Object(document, "")
    root.where = "export"
    if root.value.get("format_version") != FORMAT_VERSION:
        raise refuse("export.format_version", f"must be {FORMAT_VERSION}")
    if not isinstance(root.value.get("history"), dict):
        raise refuse(
            "export.history",
            "is missing: export the whole chat as JSON with include_version_history and no from_snapshot_id",
        )
    history = _Object(root.value["history"], "export.history")
    result = ImportPlan()
    snapshot_ids = _snapshots(history, result)
    versions = len(result.snapshots)
    file_ids = _files(root, result, snapshot_ids, versions)
    _messages(root, result, snapshot_ids, versions, file_ids)
    _deletions(history, result, snapshot_ids, file_ids, versions)
    _restores(history, result, snapshot_ids, file_ids, versions)
    for row in result.snapshots:  # the file a snapshot names, by its new id
        row["trigger_file_id"] = file_ids.get(row["trigger_file_id"]) if row["trigger_file_id"] else None
    _replay(result)
    head = _Object(root.value.get("snapshot"), "export.snapshot")
    if head.count("version", 1) != versions or head.text("checksum") != result.last["checksum"]:
        raise refuse("export.snapshot", "is not the last snapshot of export.history.snapshots")
    return result


def _snapshots(history: _Object, result: ImportPlan) -> dict[int, UUID]:
    """Snapshot rows; the new id of each version."""
    ids: dict[int, UUID] = {}
    request_ids: set[str] = set()
    entries = history.objects("snapshots")
    if not entries:
        raise refuse("export.history.snapshots", "is empty")
    for index, entry in enumerate(entries, start=1):
        version = entry.count("version", 1)
        if version != index:
            raise refuse(f"{entry.where}.version", f"is {version} where {index} was due")
        ids[version] = uuid4()
        trigger = entry.choice("trigger", Trigger)
        checksum_hex = entry.text("checksum")
        if not _SHA256.match(checksum_hex):
            raise refuse(f"{entry.where}.checksum", "must be 64 lowercase hex digits")
        restored_from = entry.optional_count("restored_from_version")
        if restored_from is not None and not 1 <= restored_from < version:
            raise refuse(f"{entry.where}.restored_from_version", "must name an earlier snapshot")
        result.snapshots.append(
            {
                "id": ids[version],
                "version": version,
                "created_at": entry.time("created_at"),
                "trigger": trigger.value,
                "trigger_message_id": entry.uuid("trigger_message_id", required=False),
                "trigger_file_id": entry.uuid("trigger_file_id", required=False),
                "trigger_description": entry.text("trigger_description", required=False),
                "previous_snapshot_id": ids.get(version - 1),
                "restored_from_snapshot_id": ids[restored_from] if restored_from else None,
                "checksum": checksum_hex,
                "title": entry.text("title", required=False),
                "user_id": entry.uuid("user_id", required=False),
                "request_id": _request_id(entry, request_ids),
                "message_count": entry.count("message_count"),
                "file_count": entry.count("file_count"),
                "total_tokens": entry.count("total_tokens"),
            }
        )
    return ids


def _request_id(entry: _Object, seen: set[str]) -> str | None:
    value = entry.optional_text("request_id")
    if value is not None:
        if value in seen:
            raise refuse(f"{entry.where}.request_id", "appears twice")
        seen.add(value)
    return value


def _chat_version(entry: _Object, versions: int) -> int:
    value = entry.count("chat_version", 1)
    if value > versions:
        raise refuse(f"{entry.where}.chat_version", f"is after the last snapshot ({versions})")
    return value


def _messages(
    root: _Object, result: ImportPlan, snapshot_ids: dict[int, UUID], versions: int, file_ids: dict[UUID, UUID]
) -> None:
    seen: set[UUID] = set()
    positions: set[int] = set()
    for entry in root.objects("messages"):
        message_id = entry.uuid("message_id")
        assert message_id is not None
        if message_id in seen:
            raise refuse(f"{entry.where}.message_id", "appears twice")
        seen.add(message_id)
        position = entry.count("position", 1)
        if position in positions:
            raise refuse(f"{entry.where}.position", "is another message's")
        positions.add(position)
        original = entry.time("original_created_at")
        history = entry.objects("versions")
        if not history:
            raise refuse(f"{entry.where}.versions", "is empty: export with include_version_history")
        last_chat_version = 0
        row: dict[str, Any] = {}
        for number, item in enumerate(history, start=1):
            if item.count("version", 1) != number:
                raise refuse(f"{item.where}.version", f"{number} was due")
            chat_version = _chat_version(item, versions)
            if chat_version <= last_chat_version:
                raise refuse(f"{item.where}.chat_version", "must grow from one version to the next")
            last_chat_version = chat_version
            row = {
                "id": uuid4(),
                "message_id": message_id,
                "snapshot_id": snapshot_ids[chat_version],
                "chat_version": chat_version,
                "version": number,
                "position": position,
                "role": item.choice("role", Role).value,
                "content": item.text("content", required=False),
                "model_id": item.text("model_id", required=False),
                "metadata": item.mapping("metadata"),
                "tokens": item.count("tokens"),
                "is_deleted": item.flag("deleted"),
                "edit_reason": item.text("edit_reason", required=False),
                "edited_by": item.uuid("edited_by", required=False),
                "created_at": item.time("created_at"),
                "original_created_at": original,
                "current": False,
            }
            result.message_versions.append(row)
            _references(item, row["id"], file_ids, result)
            if not row["is_deleted"]:
                result.elements[row["id"]] = checksum.message_element(message_id, position, row["role"], row["content"])
        row["current"] = not row["is_deleted"]  # the head's version keeps the searchable document
        element = result.elements.get(row["id"], 0)
        result.message_heads.append(
            {
                "message_id": message_id,
                "position": position,
                "current_version_id": row["id"],
                "version": row["version"],
                "is_deleted": row["is_deleted"],
                "tokens": row["tokens"],
                "element_hash": checksum.to_hex(element),
                "original_created_at": original,
            }
        )
        result.next_position = max(result.next_position, position + 1)
    result.message_versions.sort(key=lambda r: r["chat_version"])


def _references(item: _Object, version_id: UUID, file_ids: dict[UUID, UUID], result: ImportPlan) -> None:
    """A message version's file references, pointing at the new ids of the export's file versions."""
    orders: set[int] = set()
    for ref in item.objects("attachments", required=False):
        exported = ref.uuid("file_id")
        if exported not in file_ids:
            raise refuse(f"{ref.where}.file_id", "names no file of the export")
        order = ref.count("display_order")
        if order > 2**31 - 1 or order in orders:
            raise refuse(f"{ref.where}.display_order", "is out of range or another reference's")
        orders.add(order)
        kind = ref.text("reference_type")
        if kind not in TYPES:
            raise refuse(f"{ref.where}.reference_type", "is not a known value")
        result.attachments.append(
            {
                "message_version_id": str(version_id),
                "display_order": order,
                "file_id": str(file_ids[exported]),
                "reference_type": kind,
            }
        )


def _files(root: _Object, result: ImportPlan, snapshot_ids: dict[int, UUID], versions: int) -> dict[UUID, UUID]:
    """File version rows; the new id of each exported id."""
    ids: dict[UUID, UUID] = {}
    entries = root.objects("files", required=False)
    for entry in entries:
        old = entry.uuid("id")
        assert old is not None
        if old in ids:
            raise refuse(f"{entry.where}.id", "appears twice")
        ids[old] = uuid4()
    last_of: dict[str, dict[str, Any]] = {}
    for entry in sorted(entries, key=lambda e: (e.text("name"), e.count("version", 1))):
        name = entry.text("name")
        if not name or any(ord(c) < 32 for c in name):
            raise refuse(f"{entry.where}.name", "must be a file name without control characters")
        number = entry.count("version", 1)
        previous = last_of.get(name)
        if number != (previous["version"] + 1 if previous else 1):
            raise refuse(f"{entry.where}.version", f"versions of {name[:40]!r} must count from 1 without gaps")
        chat_version = _chat_version(entry, versions)
        if previous is not None and chat_version <= previous["chat_version"]:
            raise refuse(f"{entry.where}.chat_version", "must grow from one version to the next")
        sha256 = entry.text("sha256")
        if not _SHA256.match(sha256):
            raise refuse(f"{entry.where}.sha256", "must be 64 lowercase hex digits")
        size = entry.count("size_bytes")
        if result.media.setdefault(sha256, size) != size:
            raise refuse(f"{entry.where}.size_bytes", "differs from another file with the same sha256")
        restored_from = entry.uuid("restored_from_id", required=False)
        if restored_from is not None and restored_from not in ids:
            raise refuse(f"{entry.where}.restored_from_id", "names no file of the export")
        exported = entry.uuid("id")
        assert exported is not None
        row = {
            "id": ids[exported],
            "message_id": entry.uuid("message_id", required=False),
            "snapshot_id": snapshot_ids[chat_version],
            "chat_version": chat_version,
            "original_name": name,
            "display_name": entry.text("display_name", required=False) or name,
            "mime_type": entry.text("mime_type"),
            "size_bytes": size,
            "checksum_sha256": sha256,
            "version": number,
            "previous_version_id": previous["id"] if previous else None,
            "source": entry.choice("source", FileSource).value,
            "extracted_text": entry.optional_text("extracted_text"),
            "ai_description": entry.optional_text("ai_description"),
            "restored_from_id": ids[restored_from] if restored_from else None,
            "created_at": entry.time("created_at"),
            "current": False,
        }
        result.files.append(row)
        last_of[name] = row
    result.files.sort(key=lambda r: r["chat_version"])
    return ids


def _deletions(
    history: _Object, result: ImportPlan, snapshot_ids: dict[int, UUID], file_ids: dict[UUID, UUID], versions: int
) -> None:
    by_id = {row["id"]: row for row in result.files}
    for entry in history.objects("file_deletions", required=False):
        exported = entry.uuid("file_id")
        assert exported is not None
        if exported not in file_ids:
            raise refuse(f"{entry.where}.file_id", "names no file of the export")
        file = by_id[file_ids[exported]]
        chat_version = _chat_version(entry, versions)
        if entry.text("name") != file["original_name"] or chat_version <= file["chat_version"]:
            raise refuse(entry.where, "does not follow the file version it deletes")
        result.file_deletions.append(
            {
                "id": uuid4(),
                "original_name": file["original_name"],
                "file_id": file["id"],
                "snapshot_id": snapshot_ids[chat_version],
                "chat_version": chat_version,
                "created_at": entry.time("created_at"),
            }
        )
    result.file_deletions.sort(key=lambda r: r["chat_version"])


def _restores(
    history: _Object, result: ImportPlan, snapshot_ids: dict[int, UUID], file_ids: dict[UUID, UUID], versions: int
) -> None:
    restored: set[int] = set()
    for entry in history.objects("restores", required=False):
        version = entry.count("version", 1)
        if version > versions or result.snapshots[version - 1]["trigger"] != Trigger.RESTORE_PERFORMED.value:
            raise refuse(f"{entry.where}.version", "names no RESTORE_PERFORMED snapshot")
        if version in restored:
            raise refuse(f"{entry.where}.version", "has another restore entry")
        restored.add(version)
        source = entry.count("from_version", 1)
        previous = entry.optional_count("previous_version")
        if source >= version or (previous is not None and previous >= version):
            raise refuse(entry.where, "names a snapshot that is not before the restore")
        user = entry.uuid("user_id")
        unknown = [f for f in entry.uuids("file_ids") if f not in file_ids]
        if unknown:
            raise refuse(f"{entry.where}.file_ids", "names no file of the export")
        result.restores.append(
            {
                "id": uuid4(),
                "user_id": user,
                "from_snapshot_id": snapshot_ids[source],
                "to_snapshot_id": snapshot_ids[version],
                "previous_snapshot_id": snapshot_ids[previous] if previous else None,
                "scope": entry.choice("scope", Scope).value,
                "message_ids": [str(m) for m in entry.uuids("message_ids")],
                "file_ids": [str(file_ids[f]) for f in entry.uuids("file_ids")],
                "range_first_id": entry.uuid("range_first_id", required=False),
                "range_last_id": entry.uuid("range_last_id", required=False),
                "messages_restored": entry.count("messages_restored"),
                "files_restored": entry.count("files_restored"),
                "reason": entry.text("reason", required=False),
                "created_at": entry.time("created_at"),
            }
        )


def _replay(result: ImportPlan) -> None:
    """Each snapshot's checksum, counts and tokens from the rows its version wrote (as VerifyChat)."""
    messages, files = checksum.LiveElements(), checksum.LiveElements()
    # version -> what it changed: (which state, key, element or None for gone, tokens)
    events: dict[int, list[tuple[checksum.LiveElements, object, int | None, int]]] = {}
    for row in result.message_versions:
        element = result.elements.get(row["id"])
        events.setdefault(row["chat_version"], []).append((messages, row["message_id"], element, row["tokens"]))
    for row in result.files:
        element = checksum.file_element(
            row["original_name"], row["checksum_sha256"], row["size_bytes"], row["mime_type"]
        )
        events.setdefault(row["chat_version"], []).append((files, row["original_name"], element, 0))
    for row in result.file_deletions:  # a deletion comes at a later version than the version it deletes
        events.setdefault(row["chat_version"], []).append((files, row["original_name"], None, 0))
    for index, snapshot in enumerate(result.snapshots):
        for state_of, key, element, tokens in events.get(snapshot["version"], ()):
            state_of.put(key, element, tokens)
        where = f"export.history.snapshots[{index}]"
        state = checksum.StateSum(messages.sum.value + files.sum.value + checksum.title_element(snapshot["title"]))
        if state.hex != snapshot["checksum"]:
            raise refuse(f"{where}.checksum", "does not match the state its version's rows make")
        if (snapshot["message_count"], snapshot["file_count"], snapshot["total_tokens"]) != (
            len(messages),
            len(files),
            messages.tokens,
        ):
            raise refuse(where, "counts differ from the state its version's rows make")
    _file_heads(result)


def _file_heads(result: ImportPlan) -> None:
    """Each name's last version, deleted when a deletion came after it."""
    heads: dict[str, dict[str, Any]] = {}
    for row in result.files:
        element = checksum.file_element(
            row["original_name"], row["checksum_sha256"], row["size_bytes"], row["mime_type"]
        )
        heads[row["original_name"]] = {
            "original_name": row["original_name"],
            "current_file_id": row["id"],
            "version": row["version"],
            "is_deleted": False,
            "element_hash": checksum.to_hex(element),
            "changed_at": row["created_at"],
            "chat_version": row["chat_version"],
        }
    for row in result.file_deletions:
        head = heads[row["original_name"]]
        if row["chat_version"] > head["chat_version"]:
            head |= {"is_deleted": True, "element_hash": checksum.ZERO, "changed_at": row["created_at"]}
    current = {h["current_file_id"] for h in heads.values() if not h["is_deleted"]}
    for row in result.files:
        row["current"] = row["id"] in current
    result.file_heads = list(heads.values())
