"""The HTML export: one self-contained page to read, keep or send.

Inline CSS, no scripts and no external requests (its Content-Security-Policy
forbids them); messages rendered from Markdown and sanitised
(service/export/markdown.py); each referenced image as an inline thumbnail,
and inside a ZIP every file linked to its entry in the archive. Edited
messages keep their history, each version with a word diff against the one
before.
"""

from __future__ import annotations

import base64
import difflib
import html
import re
from typing import IO
from uuid import UUID

from service.attachments import AttachmentRow
from service.export.content import ExportHeader, Message, Version
from service.export.markdown import code_css, to_html
from service.export.render import ROLE_NAMES, Document, _human_time, _size, counted, reference_line, title_of

STYLE = """
body{font:15px/1.55 system-ui,-apple-system,"Segoe UI","Noto Sans",sans-serif;max-width:54rem;margin:2rem auto;
padding:0 1rem;color:#1d1d1f;background:#fff}
h1.title{font-size:1.7rem;margin:0 0 .3rem}.meta{color:#6e6e73;font-size:.85rem}
.meta code{font-size:.78rem;word-break:break-all}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}td,th{border:1px solid #d2d2d7;padding:.3rem .55rem;
text-align:left;vertical-align:top}th{background:#f2f2f4}
.message{border:1px solid #d2d2d7;border-radius:10px;padding:.6rem .95rem;margin:.9rem 0}
.message>header{font-size:.8rem;color:#6e6e73;margin-bottom:.25rem}.message>header strong{color:#1d1d1f}
.role-user{background:#f5f9ff}.role-assistant{background:#fbfbfb}.role-system{background:#fffbea}
.deleted{opacity:.65}.deleted .content{text-decoration:line-through;white-space:pre-wrap}
.badge{display:inline-block;border-radius:4px;padding:0 .35rem;background:#e5e5ea;color:#3a3a3c;font-size:.72rem}
.content{overflow-wrap:anywhere}.content>:first-child{margin-top:0}.content>:last-child{margin-bottom:0}
.content h1{font-size:1.35rem}.content h2{font-size:1.2rem}.content h3{font-size:1.05rem}
.content pre{background:#f4f4f6;border-radius:6px;padding:.6rem .8rem;overflow-x:auto;font-size:.85rem;line-height:1.4}
.content pre code{background:none}
.content code{font-family:ui-monospace,"SF Mono",Menlo,Consolas,monospace;font-size:.88em}
.content :not(pre)>code{background:#f0f0f2;border-radius:4px;padding:.05rem .3rem}
.content blockquote{margin:.5rem 0;padding:.1rem .9rem;border-left:3px solid #d2d2d7;color:#515154}
.files{list-style:none;padding:0;margin:.5rem 0 0;font-size:.85rem}.files li{margin:.25rem 0}
.files img.thumb{display:block;max-width:200px;max-height:200px;border:1px solid #d2d2d7;border-radius:6px;
margin-bottom:.2rem}
details{margin-top:.55rem;font-size:.87rem}summary{cursor:pointer;color:#515154}
.version{border-left:3px solid #d2d2d7;padding-left:.65rem;margin:.5rem 0}.version .text{white-space:pre-wrap}
ins{background:#dafbe1;text-decoration:none}del{background:#ffebe9;color:#82071e}
"""

_WORDS = re.compile(r"\s+|[^\s]+")


def word_diff(before: str, after: str) -> str:
    """`after` as HTML, words not in `before` marked <ins>, words gone from it <del>."""
    old, new = _WORDS.findall(before), _WORDS.findall(after)
    out = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(html.escape("".join(new[j1:j2])))
            continue
        if i2 > i1:
            out.append(f"<del>{html.escape(''.join(old[i1:i2]))}</del>")
        if j2 > j1:
            out.append(f"<ins>{html.escape(''.join(new[j1:j2]))}</ins>")
    return "".join(out)


class HtmlRenderer(Document):
    """One self-contained file: every piece of chat text escaped or sanitised."""

    def __init__(self, sink: IO[bytes]) -> None:
        super().__init__(sink)
        self.thumbnails: dict[UUID, bytes] = {}
        self.paths: dict[UUID, str] = {}  # file version -> its entry in the ZIP

    def begin(self, header: ExportHeader) -> None:
        e = html.escape
        self.thumbnails = header.thumbnails
        self.paths = {f.file.id: f.path for f in header.files if f.path}
        snap = header.snapshot
        since = f" · changes since version {header.from_snapshot.version}" if header.from_snapshot else ""
        out = [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            # Nothing may be fetched or run: styles are inline, scripts are off.
            '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
            "style-src 'unsafe-inline'; img-src data:\">",
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{e(title_of(header))}</title><style>{code_css()}{STYLE}</style></head><body>",
            f'<header><h1 class="title">{e(title_of(header))}</h1>',
            f'<p class="meta">Version {snap.version} of the chat, {e(_human_time(snap.created_at))}{e(since)} · '
            f"{counted(snap.message_count, 'message')}, {counted(snap.file_count, 'file')} · "
            f"exported {e(_human_time(header.exported_at))}<br>"
            f"chat <code>{e(str(header.chat_id))}</code> · snapshot <code>{e(str(snap.id))}</code><br>"
            f"checksum <code>{e(snap.checksum)}</code></p></header>",
        ]
        if header.files:
            out.append("<h2>Files</h2><table><tr><th>Name</th><th>Size</th><th>Version</th><th>SHA-256</th></tr>")
            for entry in header.files:
                f = entry.file
                name = e(f.original_name)
                if entry.path:
                    name = f'<a href="{e(entry.path, quote=True)}">{name}</a>'
                state = "" if entry.current else " (earlier)"
                out.append(
                    f"<tr><td>{name}</td><td>{e(_size(f.size_bytes))}</td><td>{f.version}{state}</td>"
                    f'<td class="meta"><code>{e(f.checksum_sha256)}</code></td></tr>'
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
        badges = ' <span class="badge">deleted</span>' if message.deleted else ""
        if len(message.versions) > 1:
            badges += f' <span class="badge">edited · {counted(len(message.versions), "version")}</span>'
        body = e(message.content) if message.deleted else to_html(message.content)
        out = [
            f'<article class="{classes}" id="m{self.count}">',
            f"<header>{self.count}. <strong>{e(role)}</strong>{model} · "
            f"{e(_human_time(message.created_at))}{badges}</header>",
            f'<div class="content">{body}</div>',
        ]
        if message.attachments:
            items = "".join(f"<li>{self._file(a)}</li>" for a in message.attachments)
            out.append(f'<ul class="files">{items}</ul>')
        if len(message.versions) > 1:
            out.append(self._history(message.versions))
        out.append("</article>")
        self._write("\n".join(out) + "\n")

    @staticmethod
    def _history(versions: list[Version]) -> str:
        """Every version, oldest first, each as a word diff against the last words before it."""
        e = html.escape
        out = [f"<details><summary>History: {counted(len(versions), 'version')}</summary>"]
        before: str | None = None
        for v in versions:
            reason = f" — {e(v.edit_reason)}" if v.edit_reason else ""
            if v.is_deleted:
                what, text = "deleted", ""
            else:
                what = f"version {v.version}"
                text = e(v.content) if before is None else word_diff(before, v.content)
                before = v.content
            out.append(
                f'<div class="version"><div class="meta">{what}, {e(_human_time(v.created_at))}{reason}</div>'
                + (f'<div class="text">{text}</div>' if text else "")
                + "</div>"
            )
        out.append("</details>")
        return "".join(out)

    def _file(self, ref: AttachmentRow) -> str:
        """A referenced file: its thumbnail (inline: the CSP allows data: images only), name, version and size,
        linked to its entry when the export is a ZIP with media."""
        e = html.escape
        picture = ""
        data = self.thumbnails.get(ref.file_id)
        if data is not None:
            encoded = base64.b64encode(data).decode()
            picture = f'<img class="thumb" src="data:image/png;base64,{encoded}" alt="{e(ref.original_name)}">'
        line = e(reference_line(ref))
        path = self.paths.get(ref.file_id)
        if path:
            line = f'<a href="{e(path, quote=True)}">{line}</a>'
        return picture + line

    def end(self) -> None:
        self._write(f'<p class="meta">{counted(self.count, "message")}.</p>\n</body></html>\n')
