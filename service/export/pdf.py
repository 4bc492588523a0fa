"""PDF rendering with real, searchable text (fpdf2).

Fonts come from Python packages, so the output is the same on any machine:
Noto Sans (Latin, Greek, Cyrillic) with Noto Sans CJK as the fallback for
Chinese, Japanese and Korean. fpdf2 builds the document in memory, so the
PDF's memory use grows with the chat's text (never with its media, which a
PDF lists but does not embed).

Lines are broken here, not by fpdf2's multi_cell: it re-measures the whole
line for every character it adds, which cost 33 ms for a message of 1,000
characters (a 2,000-message chat took 67 s). Measuring each character once
from the fonts' width tables and drawing each line with cell() is linear.
"""

from __future__ import annotations

import itertools
import logging
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import IO

from fpdf import FPDF
from fpdf.fonts import TTFFont

from service.errors import ResourceExhausted
from service.export.content import ExportHeader, Message
from service.export.render import ROLE_NAMES, _human_time, _size, reference_line, title_of

ROLE_COLOURS = {"user": (232, 240, 254), "assistant": (245, 245, 245), "system": (255, 249, 219)}
# A line may break before and after each of these (CJK text has no spaces).
_WIDE = "\u1100-\u11ff\u2e80-\u9fff\ua960-\ua97f\uac00-\ud7ff\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef"
_TOKENS = re.compile(rf"[^\S\n]+|[{_WIDE}]|[^\s{_WIDE}]+")


@cache
def _fonts() -> tuple[Path, Path]:
    import fontpkg_noto_sans
    import noto_cjk_sans_jp_regular

    latin = Path(fontpkg_noto_sans.ROOT) / "files" / "NotoSans[wdth,wght].ttf"
    cjk = Path(str(noto_cjk_sans_jp_regular.FONT_PATH))
    return latin, cjk


@dataclass(frozen=True)
class _Metrics:
    """What measuring text needs of a font: its characters and their widths."""

    codes: frozenset[int]
    widths: dict[int, float]  # thousandths of the font size


@cache
def _metrics() -> tuple[_Metrics, _Metrics]:
    """Both fonts' metrics, read once per process.

    The CJK font takes about half a second to parse and as long again to
    subset into a PDF, so a document embeds it only once a character needs it.
    """
    probe = FPDF()
    tables = []
    for family, path in zip(("Noto", "NotoCJK"), _fonts(), strict=True):
        probe.add_font(family, "", str(path))
        font = probe.fonts[family.lower()]
        assert isinstance(font, TTFFont)
        tables.append(_Metrics(frozenset(font.cmap), {code: font.cw[code] for code in font.cmap}))
        font.close()
    return tables[0], tables[1]


class PdfRenderer:
    def __init__(self, sink: IO[bytes], max_text_bytes: int | None = None) -> None:
        self.sink = sink
        self.count = 0
        # The document is built in memory (about 4 bytes per byte of text) and
        # takes ~2 s per MB of text to lay out, so a limit keeps one export
        # from taking the server's memory and a worker for minutes.
        self.max_text_bytes = max_text_bytes
        self.text_bytes = 0
        # fpdf2 reports glyphs no font has (emoji, rare scripts) through logging; they are skipped.
        logging.getLogger("fpdf").setLevel(logging.ERROR)
        self.pdf = FPDF(format="A4")
        self.pdf.set_auto_page_break(auto=True, margin=15)
        self.pdf.add_font("Noto", "", str(_fonts()[0]))
        self.pdf.set_font("Noto", size=10)
        self.fonts = _metrics()
        self.cjk_added = False
        self.widths: dict[str, float] = {}
        self.cjk: set[str] = set()  # characters drawn with the CJK font (the Latin one lacks them)

    def _width(self, text: str) -> float:
        """Width in thousandths of the font size; a glyph neither font has counts 0 (fpdf2 skips it)."""
        total = 0.0
        for ch in text:
            width = self.widths.get(ch)
            if width is None:
                code = ord(ch)
                font = next((f for f in self.fonts if code in f.codes), None)
                width = self.widths[ch] = font.widths[code] if font is not None else 0.0
                if font is self.fonts[1]:
                    self.cjk.add(ch)
            total += width
        return total

    def _lines(self, text: str, size: float) -> list[str]:
        """Greedy word wrap to the text width; a word longer than a line is cut."""
        limit = (self.pdf.epw - 2 * self.pdf.c_margin) * self.pdf.k * 1000 / size
        lines: list[str] = []
        for paragraph in text.replace("\r\n", "\n").replace("\t", "    ").split("\n"):
            line, used, gap, fresh = "", 0.0, "", True  # fresh: no word of the paragraph placed yet
            for token in _TOKENS.findall(paragraph):
                width = self._width(token)
                if token.isspace():
                    if fresh:  # the paragraph's indentation is kept
                        line, used = line + token, used + width
                    elif line:  # spaces between words; dropped where the line breaks
                        gap = token
                    continue
                fresh = False
                spaced = self._width(gap)
                if used + spaced + width <= limit:
                    line, used, gap = line + gap + token, used + spaced + width, ""
                    continue
                gap = ""
                if line.strip():
                    lines.append(line)
                    line, used = "", 0.0
                if width <= limit:
                    line, used = token, width
                    continue
                for ch in token:  # a word no line can hold is cut
                    part = self._width(ch)
                    if used + part > limit and line:
                        lines.append(line)
                        line, used = "", 0.0
                    line, used = line + ch, used + part
            lines.append(line)
        return lines

    def _text(self, text: str, size: float = 10, height: float = 5, fill: tuple[int, int, int] | None = None) -> None:
        if fill:
            self.pdf.set_fill_color(*fill)
        for line in self._lines(text, size):
            self._line(line, size, height, fill is not None)

    def _line(self, line: str, size: float, height: float, fill: bool) -> None:
        """One line, drawn as runs of one font each.

        fpdf2 can pick a fallback font per character itself, but that search
        costs more than the rest of the drawing; the fonts' tables tell us.
        """
        runs = [(cjk, "".join(chars)) for cjk, chars in itertools.groupby(line, key=self.cjk.__contains__)] or [
            (False, "")
        ]
        padding = self.pdf.c_margin
        for index, (cjk, run) in enumerate(runs):
            if cjk and not self.cjk_added:
                self.pdf.add_font("NotoCJK", "", str(_fonts()[1]))
                self.cjk_added = True
            self.pdf.set_font("NotoCJK" if cjk else "Noto", size=size)
            if index + 1 == len(runs):  # the last run's cell reaches the right margin
                self.pdf.cell(0, height, text=run, fill=fill, new_x="LMARGIN", new_y="NEXT")
            else:
                width = self._width(run) * size / 1000 / self.pdf.k + self.pdf.c_margin
                self.pdf.cell(width, height, text=run, fill=fill, new_x="RIGHT", new_y="TOP")
                self.pdf.c_margin = 0  # runs after the first continue the text without a gap
        self.pdf.c_margin = padding

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
        self.text_bytes += len(message.content.encode()) + sum(len(v.content.encode()) for v in message.versions)
        if self.max_text_bytes is not None and self.text_bytes > self.max_text_bytes:
            self.close()
            raise ResourceExhausted(
                f"the chat has more than {self.max_text_bytes} bytes of text, more than a PDF export lays out; "
                "export HTML, Markdown or JSON instead"
            )
        self.count += 1
        role = ROLE_NAMES.get(message.role, message.role)
        model = f" · {message.model_id}" if message.model_id else ""
        deleted = " · DELETED" if message.deleted else ""
        self.pdf.ln(2)
        self._text(f"{self.count}. {role}{model} · {_human_time(message.created_at)}{deleted}", size=8, height=4)
        self._text(message.content or "(empty)", fill=ROLE_COLOURS.get(message.role))
        for ref in message.attachments:  # the files it refers to, by name and version
            self._text(f"   File: {reference_line(ref)}", size=7, height=4)
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
        self.close()

    def close(self) -> None:
        """Close the font files fontTools keeps open for lazy reading (idempotent)."""
        for font in self.pdf.fonts.values():
            if isinstance(font, TTFFont):
                font.close()
