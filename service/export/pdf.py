"""PDF rendering with real, searchable text (fpdf2).

Fonts come from Python packages, so the output is the same on any machine:
Noto Sans (Latin, Greek, Cyrillic) with Noto Sans CJK as the fallback for
Chinese, Japanese and Korean. fpdf2 builds the document in memory, so the
PDF's memory use grows with the chat's text (never with its media, which a
PDF lists but does not embed).
"""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path
from typing import IO

from fpdf import FPDF

from service.export.content import ExportHeader, Message
from service.export.render import ROLE_NAMES, _human_time, _size, title_of

ROLE_COLOURS = {"user": (232, 240, 254), "assistant": (245, 245, 245), "system": (255, 249, 219)}


@cache
def _fonts() -> tuple[Path, Path]:
    import fontpkg_noto_sans
    import noto_cjk_sans_jp_regular

    latin = Path(fontpkg_noto_sans.ROOT) / "files" / "NotoSans[wdth,wght].ttf"
    cjk = Path(str(noto_cjk_sans_jp_regular.FONT_PATH))
    return latin, cjk


class PdfRenderer:
    def __init__(self, sink: IO[bytes]) -> None:
        self.sink = sink
        self.count = 0
        # fpdf2 reports glyphs no font has (emoji, rare scripts) through logging; they are skipped.
        logging.getLogger("fpdf").setLevel(logging.ERROR)
        latin, cjk = _fonts()
        self.pdf = FPDF(format="A4")
        self.pdf.set_auto_page_break(auto=True, margin=15)
        self.pdf.add_font("Noto", "", str(latin))
        self.pdf.add_font("NotoCJK", "", str(cjk))
        self.pdf.set_fallback_fonts(["NotoCJK"])
        self.pdf.set_font("Noto", size=10)

    def _text(self, text: str, size: float = 10, height: float = 5, fill: tuple[int, int, int] | None = None) -> None:
        self.pdf.set_font("Noto", size=size)
        if fill:
            self.pdf.set_fill_color(*fill)
        self.pdf.multi_cell(0, height, text=text, fill=fill is not None, new_x="LMARGIN", new_y="NEXT")

    def begin(self, header: ExportHeader) -> None:
        snap = header.snapshot
        self.pdf.set_title(title_of(header))
        self.pdf.set_creator("Time Machine")
        self.pdf.add_page()
        self._text(title_of(header), size=18, height=9)
        meta = f"Version {snap.version} · {_human_time(snap.created_at)} · exported {_human_time(header.exported_at)}"
        if header.from_snapshot:
            meta += f" · changes since version {header.from_snapshot.version}"
        self._text(meta, size=8, height=4)
        self._text(f"Chat {header.chat_id} · checksum {snap.checksum}", size=7, height=4)
        if header.files:
            self.pdf.ln(3)
            self._text("Files", size=12, height=7)
            for entry in header.files:
                f = entry.file
                state = "" if entry.current else " (earlier version)"
                self._text(
                    f"{f.original_name} — {_size(f.size_bytes)}, v{f.version}{state}\nSHA-256 {f.checksum_sha256}",
                    size=8,
                    height=4,
                )
        self.pdf.ln(3)
        self._text("Messages", size=12, height=7)

    def message(self, message: Message) -> None:
        self.count += 1
        role = ROLE_NAMES.get(message.role, message.role)
        model = f" · {message.model_id}" if message.model_id else ""
        deleted = " · DELETED" if message.deleted else ""
        self.pdf.ln(2)
        self._text(f"{self.count}. {role}{model} · {_human_time(message.created_at)}{deleted}", size=8, height=4)
        self._text(message.content or "(empty)", fill=ROLE_COLOURS.get(message.role))
        for v in message.versions:
            what = "deleted" if v.is_deleted else f"version {v.version}"
            reason = f" — {v.edit_reason}" if v.edit_reason else ""
            self._text(f"   {what}, {_human_time(v.created_at)}{reason}", size=7, height=4)
            if not v.is_deleted:
                self._text(v.content or "(empty)", size=8, height=4)

    def end(self) -> None:
        self.pdf.ln(3)
        self._text(f"{self.count} messages.", size=8, height=4)
        self.sink.write(bytes(self.pdf.output()))
