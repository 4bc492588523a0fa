"""Text renderings of an export: JSON (the reference), Markdown and HTML.

Each renderer writes to a binary sink as messages arrive, so a renderer never
holds more than one message.
"""

from __future__ import annotations

import base64
import html
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


class _Document:
    """A text document written to a binary sink, counting messages."""

    def __init__(self, sink: IO[bytes]) -> None:
        self.sink = sink
        self.count = 0

    def _write(self, text: str) -> None:
        self.sink.write(text.encode())


class MarkdownRenderer(_Document):
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
            parts += ["", "<details><summary>Versions</summary>", ""]
            for v in message.versions:
                what = "deleted" if v.is_deleted else f"version {v.version}"
                reason = f" — {v.edit_reason}" if v.edit_reason else ""
                parts += [f"- {what}, {_human_time(v.created_at)}{reason}", ""]
                if not v.is_deleted:
                    parts += [_quote(v.content), ""]
            parts.append("</details>")
        self._write("\n".join(parts) + "\n\n")

    def end(self) -> None:
        self._write(f"---\n{self.count} messages.\n")


# -- HTML ---------------------------------------------------------------------

STYLE = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;
color:#1d1d1f;background:#fff}
h1{font-size:1.6rem;margin-bottom:.2rem}.meta{color:#6e6e73;font-size:.85rem}
table{border-collapse:collapse;width:100%;font-size:.85rem}td,th{border:1px solid #d2d2d7;padding:.3rem .5rem;
text-align:left}code{font-size:.8rem;word-break:break-all}
.message{border:1px solid #d2d2d7;border-radius:10px;padding:.6rem .9rem;margin:.8rem 0}
.message header{font-size:.8rem;color:#6e6e73;margin-bottom:.3rem}.role-user{background:#f5f9ff}
.role-assistant{background:#fafafa}.role-system{background:#fffbea}.deleted{opacity:.6}
.deleted .content{text-decoration:line-through}.content{white-space:pre-wrap;overflow-wrap:anywhere}
details{margin-top:.5rem;font-size:.85rem}.version{border-left:3px solid #d2d2d7;padding-left:.6rem;margin:.4rem 0}
"""


class HtmlRenderer(_Document):
    """One self-contained file: inline CSS, no scripts, no external requests,
    every piece of chat text escaped."""

    def __init__(self, sink: IO[bytes]) -> None:
        super().__init__(sink)
        self.thumbnails: dict[UUID, bytes] = {}

    def begin(self, header: ExportHeader) -> None:
        e = html.escape
        self.thumbnails = header.thumbnails
        snap = header.snapshot
        since = f" · changes since version {header.from_snapshot.version}" if header.from_snapshot else ""
        out = [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            # Nothing may be fetched or run: styles are inline, scripts are off.
            '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
            "style-src 'unsafe-inline'; img-src data:\">",
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{e(title_of(header))}</title><style>{STYLE}</style></head><body>",
            f"<h1>{e(title_of(header))}</h1>",
            f'<p class="meta">Version {snap.version} · {e(_human_time(snap.created_at))}{e(since)} · '
            f"exported {e(_human_time(header.exported_at))}<br>chat <code>{e(str(header.chat_id))}</code> · "
            f"checksum <code>{e(snap.checksum)}</code></p>",
        ]
        if header.files:
            out.append("<h2>Files</h2><table><tr><th>Name</th><th>Size</th><th>SHA-256</th><th>Version</th></tr>")
            for entry in header.files:
                f = entry.file
                name = e(f.original_name)
                if entry.path:
                    name = f'<a href="{e(entry.path, quote=True)}">{name}</a>'
                state = "" if entry.current else " (earlier)"
                out.append(
                    f"<tr><td>{name}</td><td>{e(_size(f.size_bytes))}</td>"
                    f"<td><code>{e(f.checksum_sha256)}</code></td><td>{f.version}{state}</td></tr>"
                )
            out.append("</table>")
        out.append("<h2>Messages</h2>")
        self._write("\n".join(out) + "\n")

    def message(self, message: Message) -> None:
        e = html.escape
        self.count += 1
        role = ROLE_NAMES.get(message.role, message.role)
        classes = f"message role-{e(message.role)}" + (" deleted" if message.deleted else "")
        model = f" · {e(message.model_id)}" if message.model_id else ""
        deleted = " · deleted" if message.deleted else ""
        out = [
            f'<article class="{classes}" id="m{self.count}">',
            f"<header>{self.count}. <strong>{e(role)}</strong>{model} · "
            f"{e(_human_time(message.created_at))}{deleted}</header>",
            f'<div class="content">{e(message.content)}</div>',
        ]
        if message.attachments:
            items = "".join(f"<li>{self._thumbnail(a)}{e(reference_line(a))}</li>" for a in message.attachments)
            out.append(f'<ul class="files">{items}</ul>')
        if message.versions:
            out.append(f"<details><summary>{len(message.versions)} versions</summary>")
            for v in message.versions:
                what = "deleted" if v.is_deleted else f"version {v.version}"
                reason = f" — {e(v.edit_reason)}" if v.edit_reason else ""
                body = "" if v.is_deleted else f'<div class="content">{e(v.content)}</div>'
                out.append(
                    f'<div class="version"><div class="meta">{what}, {e(_human_time(v.created_at))}{reason}</div>'
                    f"{body}</div>"
                )
            out.append("</details>")
        out.append("</article>")
        self._write("\n".join(out) + "\n")

    def _thumbnail(self, ref: AttachmentRow) -> str:
        """A referenced image's thumbnail, inline (the CSP allows data: images and nothing else)."""
        data = self.thumbnails.get(ref.file_id)
        if data is None:
            return ""
        encoded = base64.b64encode(data).decode()
        return f'<img class="thumb" src="data:image/png;base64,{encoded}" alt="{html.escape(ref.original_name)}"><br>'

    def end(self) -> None:
        self._write(f'<p class="meta">{self.count} messages.</p>\n</body></html>\n')
