"""Text renderings of an export: JSON (the reference), Markdown and HTML.

Each renderer writes to a binary sink as messages arrive, so a renderer never
holds more than one message.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import IO, Any, Protocol
from uuid import UUID

from service.attachments import AttachmentRow
from service.export.content import ExportFile, ExportHeader, Message, Version

FORMAT_VERSION = 1
ROLE_NAMES = {"user": "User", "assistant": "Assistant", "system": "System"}


class Renderer(Protocol):
    def begin(self, header: ExportHeader) -> None: ...
    def message(self, message: Message) -> None: ...
    def end(self) -> None: ...


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _human_time(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def _size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}"


def reference_line(ref: AttachmentRow) -> str:
    """One line for a message's file: "report.pdf (version 3, 1.2 KiB, attachment)"."""
    return f"{ref.original_name} (version {ref.file_version}, {_size(ref.size_bytes)}, {ref.reference_type})"


def plural(count: int, noun: str) -> str:
    """The noun as `count` of it reads: "version", "versions"."""
    return noun if count == 1 else f"{noun}s"


def counted(count: int, noun: str) -> str:
    """The count and the noun as it reads: "1 message", "2 messages"."""
    return f"{count:,} {plural(count, noun)}"


def title_of(header: ExportHeader) -> str:
    return header.title or "Untitled chat"


# -- JSON ---------------------------------------------------------------------


def _id(value: UUID | None) -> str | None:
    return str(value) if value is not None else None


def file_json(entry: ExportFile, include_history: bool = False) -> dict[str, Any]:
    f = entry.file
    data: dict[str, Any] = {
        "id": str(f.id),
        "name": f.original_name,
        "mime_type": f.mime_type,
        "size_bytes": f.size_bytes,
        "sha256": f.checksum_sha256,
        "version": f.version,
        "source": f.source,
        "created_at": _time(f.created_at),
        "current": entry.current,
        "path": entry.path or None,
    }
    if include_history:  # what ImportChat needs to write the version again
        data |= {
            "chat_version": f.chat_version,
            "message_id": _id(f.message_id),
            "display_name": f.display_name,
            "restored_from_id": _id(f.restored_from_id),
            "extracted_text": f.extracted_text,
            "ai_description": f.ai_description,
        }
    return data


def message_json(message: Message, include_history: bool, paths: dict[UUID, str] | None = None) -> dict[str, Any]:
    """A message; `paths`: where each file version's bytes are inside a ZIP, to link its references to."""
    data: dict[str, Any] = {
        "message_id": str(message.message_id),
        "position": message.position,
        "role": message.role,
        "model_id": message.model_id or None,
        "content": message.content,
        "tokens": message.tokens,
        "metadata": message.metadata,
        "version": message.version,
        "created_at": _time(message.created_at),
        "original_created_at": _time(message.original_created_at),
        "deleted": message.deleted,
    }
    if message.attachments:
        data["attachments"] = [attachment_json(a, paths) for a in message.attachments]
    if include_history:
        data["versions"] = [version_json(v, paths) for v in message.versions]
    return data


def attachment_json(ref: AttachmentRow, paths: dict[UUID, str] | None = None) -> dict[str, Any]:
    """A message version's reference: the file version by its id (the files list has it), name and
    version, and in a ZIP with media the entry holding its bytes."""
    data: dict[str, Any] = {
        "file_id": str(ref.file_id),
        "name": ref.original_name,
        "version": ref.file_version,
        "reference_type": ref.reference_type,
        "display_order": ref.display_order,
    }
    if paths and ref.file_id in paths:
        data["path"] = paths[ref.file_id]
    return data


def version_json(version: Version, paths: dict[UUID, str] | None = None) -> dict[str, Any]:
    return {
        "version": version.version,
        "chat_version": version.chat_version,
        "role": version.role,
        "content": version.content,
        "model_id": version.model_id or None,
        "tokens": version.tokens,
        "deleted": version.is_deleted,
        "edit_reason": version.edit_reason or None,
        "created_at": _time(version.created_at),
        "metadata": version.metadata,
        "edited_by": _id(version.edited_by),
        "attachments": [attachment_json(a, paths) for a in version.attachments],
    }


class JsonRenderer:
    """The reference export. Schema (format_version 1):

    {format_version, generator, exported_at, chat: {id, title},
     snapshot: {id, version, timestamp, checksum, message_count, file_count},
     range: {from_snapshot_id, from_version, to_snapshot_id, to_version},
     include_version_history, files: [{id, name, mime_type, size_bytes, sha256,
     version, source, created_at, current, path}],
     messages: [{message_id, position, role, model_id, content, tokens,
     metadata, version, created_at, original_created_at, deleted,
     versions?: [{version, chat_version, role, content, model_id, tokens,
     deleted, edit_reason, created_at, metadata, edited_by}]}],
     history?: {snapshots: [{id, version, created_at, trigger,
     trigger_message_id, trigger_file_id, trigger_description, user_id,
     request_id, title, checksum, message_count, file_count, total_tokens,
     restored_from_version}], file_deletions: [{file_id, name, chat_version,
     created_at}], restores: [{version, from_version, previous_version, scope,
     user_id, message_ids, file_ids, range_first_id, range_last_id,
     messages_restored, files_restored, reason, created_at}]}}

    With version history, files carry every version with chat_version,
    message_id, display_name, restored_from_id, extracted_text and
    ai_description. `history` comes with version history of a whole chat (no
    from_snapshot_id): everything ImportChat needs to write the chat again.
    """

    def __init__(self, sink: IO[bytes]) -> None:
        self.sink = sink
        self.first = True
        self.include_history = False
        self.paths: dict[UUID, str] = {}  # file version id -> its media entry in a ZIP
        self.history_written = False  # history() closed the messages

    def begin(self, header: ExportHeader) -> None:
        self.include_history = header.include_history
        self.paths = {f.file.id: f.path for f in header.files if f.path}
        snap = header.snapshot
        head = {
            "format_version": FORMAT_VERSION,
            "generator": "time-machine",
            "exported_at": _time(header.exported_at),
            "chat": {"id": str(header.chat_id), "title": header.title},
            "snapshot": {
                "id": str(snap.id),
                "version": snap.version,
                "timestamp": _time(snap.created_at),
                "checksum": snap.checksum,
                "message_count": snap.message_count,
                "file_count": snap.file_count,
            },
            "range": {
                "from_snapshot_id": str(header.from_snapshot.id) if header.from_snapshot else None,
                "from_version": header.from_snapshot.version if header.from_snapshot else None,
                "to_snapshot_id": str(snap.id),
                "to_version": snap.version,
            },
            "include_version_history": header.include_history,
            "files": [file_json(f, header.include_history) for f in header.files],
        }
        encoded = json.dumps(head, ensure_ascii=False, indent=1)
        self.sink.write(encoded[:-2].encode() + b',\n "messages": [\n')  # reopen the object for messages

    def message(self, message: Message) -> None:
        prefix = b"  " if self.first else b",\n  "
        self.first = False
        data = message_json(message, self.include_history, self.paths)
        self.sink.write(prefix + json.dumps(data, ensure_ascii=False).encode())

    def history(self, sections: Iterator[tuple[str, Iterator[dict[str, Any]]]]) -> None:
        """The whole chat's history, after the messages: each section a list of objects."""
        self.sink.write(b'\n ],\n "history": {')
        for index, (name, rows) in enumerate(sections):
            self.sink.write(b"%s\n  %s: [" % (b"," if index else b"", json.dumps(name).encode()))
            for count, row in enumerate(rows):
                self.sink.write(b"%s\n   %s" % (b"," if count else b"", json.dumps(row, ensure_ascii=False).encode()))
            self.sink.write(b"\n  ]")
        self.sink.write(b"\n }")
        self.history_written = True

    def end(self) -> None:
        self.sink.write(b"\n}\n" if self.history_written else b"\n ]\n}\n")


# -- Markdown -----------------------------------------------------------------


def _md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _quote(text: str) -> str:
    return "\n".join("> " + line if line else ">" for line in (text or "(empty)").splitlines()) or "> (empty)"


class Document:
    """A text document written to a binary sink, counting messages."""

    def __init__(self, sink: IO[bytes]) -> None:
        self.sink = sink
        self.count = 0

    def _write(self, text: str) -> None:
        self.sink.write(text.encode())


class MarkdownRenderer(Document):
    """Readable as plain text and on any Markdown renderer."""

    def begin(self, header: ExportHeader) -> None:
        snap = header.snapshot
        lines = [
            f"# {title_of(header)}",
            "",
            f"- Chat: `{header.chat_id}`",
            f"- As of: version {snap.version} ({_human_time(snap.created_at)}), snapshot `{snap.id}`",
        ]
        if header.from_snapshot:
            lines.append(f"- Changes since: version {header.from_snapshot.version}")
        lines += [f"- Exported: {_human_time(header.exported_at)}", f"- Checksum: `{snap.checksum}`", ""]
        if header.files:
            lines += ["## Files", "", "| Name | Size | SHA-256 | Version |", "|---|---|---|---|"]
            for entry in header.files:
                f = entry.file
                name = f"[{_md_cell(f.original_name)}]({entry.path})" if entry.path else _md_cell(f.original_name)
                state = "" if entry.current else " (earlier)"
                lines.append(f"| {name} | {_size(f.size_bytes)} | `{f.checksum_sha256}` | {f.version}{state} |")
            lines.append("")
        lines += ["## Messages", ""]
        self._write("\n".join(lines) + "\n")

    def message(self, message: Message) -> None:
        self.count += 1
        role = ROLE_NAMES.get(message.role, message.role)
        model = f" · {message.model_id}" if message.model_id else ""
        deleted = " · **deleted**" if message.deleted else ""
        parts = [f"### {self.count}. {role}{model} · {_human_time(message.created_at)}{deleted}", ""]
        parts.append(_quote(message.content) if message.deleted else (message.content or "_(empty)_"))
        if message.attachments:
            parts += ["", *(f"- {_md_cell(reference_line(a))}" for a in message.attachments)]
        if message.versions:
            parts += ["", f"<details><summary>{counted(len(message.versions), 'version')}</summary>", ""]
            for v in message.versions:
                what = "deleted" if v.is_deleted else f"version {v.version}"
                reason = f" — {v.edit_reason}" if v.edit_reason else ""
                parts += [f"- {what}, {_human_time(v.created_at)}{reason}", ""]
                if not v.is_deleted:
                    parts += [_quote(v.content), ""]
            parts.append("</details>")
        self._write("\n".join(parts) + "\n\n")

    def end(self) -> None:
        self._write(f"---\n{counted(self.count, 'message')}.\n")
