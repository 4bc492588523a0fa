"""PDF rendering with real, searchable text (fpdf2): a document to read and print.

Messages are Markdown, laid out as such (service/export/markdown.py):
headings, emphasis, lists, quotes, tables and code blocks in a monospace
font with highlighting. Every character is kept: each is drawn with a font
that has it (service/export/typeface.py), joined and right-to-left scripts
shaped by HarfBuzz, emoji named. Pages carry the chat's title and their
number. fpdf2 builds the document in memory, so the PDF's memory grows with
the chat's text (never with its media: images appear as thumbnails).

Lines are broken here, not by fpdf2's multi_cell: it re-measures the whole
line for every character it adds (33 ms for a message of 1,000 characters).
Measuring each character once from the fonts' width tables and drawing each
run with cell() is linear.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
from typing import IO
from uuid import UUID

from fpdf import FPDF
from fpdf.enums import TextMode
from fpdf.fonts import TTFFont

from service.attachments import AttachmentRow
from service.errors import ResourceExhausted
from service.export.content import ExportHeader, Message
from service.export.markdown import Block, Span, blocks
from service.export.render import ROLE_NAMES, _human_time, _size, counted, plural, reference_line, title_of
from service.export.typeface import drawable, face_of, faces

ROLE_COLOURS = {"user": (232, 240, 254), "assistant": (247, 247, 247), "system": (255, 249, 219)}
GREY = (110, 110, 115)
LINK = (26, 84, 190)
CODE_FILL = (240, 240, 240)
# A line may break before and after each of these (CJK text has no spaces).
_WIDE = "\u1100-\u11ff\u2e80-\u9fff\ua960-\ua97f\uac00-\ud7ff\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef"
_TOKENS = re.compile(rf"\n|[^\S\n]+|[{_WIDE}]|[^\s{_WIDE}]+")
HEADING_SIZES = {1: 15, 2: 13, 3: 11.5}
INDENT_MM = 5
THUMBNAIL_MM = 30
CELL_PADDING_MM = 1
MEASURED_WORDS = 50_000  # words whose measure a renderer keeps

Piece = tuple[str, Span]  # text and its style, on one line


class _Document(FPDF):
    """Pages with the chat's title above and their number below."""

    running_title = ""

    def header(self) -> None:
        if self.page_no() > 1 and self.running_title:
            self.set_font("Noto", size=7)
            self.set_text_color(*GREY)
            self.cell(0, 4, text=self.running_title, new_x="LMARGIN", new_y="NEXT")
            self.set_text_color(0, 0, 0)
            self.ln(2)

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("Noto", size=7)
        self.set_text_color(*GREY)
        self.cell(0, 5, text=f"Page {self.page_no()} of {{nb}}", align="C")
        self.set_text_color(0, 0, 0)


class PdfRenderer:
    def __init__(self, sink: IO[bytes], max_text_bytes: int | None = None) -> None:
        self.sink = sink
        self.count = 0
        # The document is built in memory (about 4 bytes per byte of text) and
        # takes ~2 s per MB of text to lay out, so a limit keeps one export
        # from taking the server's memory and a worker for minutes.
        self.max_text_bytes = max_text_bytes
        self.text_bytes = 0
        logging.getLogger("fpdf").setLevel(logging.ERROR)
        self.pdf = _Document(format="A4")
        self.pdf.set_auto_page_break(auto=True, margin=16)
        self.added: set[str] = set()
        self._use("Noto")
        self.pdf.set_font("Noto", size=10)
        self.glyphs: dict[tuple[str, str], tuple[str, float]] = {}  # (char, style font) -> (family, width)
        self.measured: dict[tuple[str, str], tuple[float, str | None]] = {}  # (word, style font) -> see _measure
        self.thumbnails: dict[UUID, bytes] = {}

    # -- fonts and measuring ---------------------------------------------------------

    def _use(self, family: str) -> None:
        """Add a face to the document the first time a character needs it (the CJK one costs ~0.5 s)."""
        if family not in self.added:
            self.pdf.add_font(family, "", str(faces()[family].path))
            self.added.add(family)

    @staticmethod
    def _primary(span: Span) -> str:
        return "Mono" if span.code else "NotoI" if span.italic else "Noto"

    def _glyph(self, ch: str, primary: str) -> tuple[str, float]:
        key = (ch, primary)
        found = self.glyphs.get(key)
        if found is None:
            face = face_of(ord(ch), primary)
            found = self.glyphs[key] = face if face is not None else (primary, 0.0)
        return found

    def _measure(self, text: str, span: Span) -> tuple[float, str | None]:
        """Width in thousandths of the font size, and the one family drawing all of `text` (None: several).

        Cached by word: a chat repeats its words, and measuring is most of a layout's time.
        """
        primary = self._primary(span)
        key = (text, primary)
        found = self.measured.get(key)
        if found is None:
            glyphs = [self._glyph(ch, primary) for ch in text]
            families = {family for family, _ in glyphs}
            found = (sum(width for _, width in glyphs), families.pop() if len(families) == 1 else None)
            if len(self.measured) < MEASURED_WORDS:
                self.measured[key] = found
        return found

    def _width(self, text: str, span: Span) -> float:
        return self._measure(text, span)[0]

    # -- layout --------------------------------------------------------------------------

    def _lines(self, spans: list[Span], size: float, width_mm: float) -> list[list[Piece]]:
        """Greedy word wrap of styled spans to `width_mm`; a word longer than a line is cut."""
        limit = (width_mm - 2 * self.pdf.c_margin) * self.pdf.k * 1000 / size
        lines: list[list[Piece]] = []
        line: list[Piece] = []
        used, gap, gap_span, fresh = 0.0, "", None, True
        for span in spans:
            for token in _TOKENS.findall(drawable(span.text.replace("\r\n", "\n").replace("\t", "    "))):
                if token == "\n":
                    lines.append(line)
                    line, used, gap, fresh = [], 0.0, "", True
                    continue
                width = self._width(token, span)
                if token.isspace():
                    if fresh and span.code:  # code keeps its indentation
                        line.append((token, span))
                        used += width
                    elif line:
                        gap, gap_span = token, span
                    continue
                fresh = False
                spaced = self._width(gap, gap_span) if gap and gap_span else 0.0
                if used + spaced + width <= limit:
                    if gap and gap_span:
                        line.append((gap, gap_span))
                    line.append((token, span))
                    used += spaced + width
                    gap = ""
                    continue
                gap = ""
                if line:
                    lines.append(line)
                    line, used = [], 0.0
                if width <= limit:
                    line, used = [(token, span)], width
                    continue
                for ch in token:  # a word no line can hold is cut
                    part = self._width(ch, span)
                    if used + part > limit and line:
                        lines.append(line)
                        line, used = [], 0.0
                    line.append((ch, span))
                    used += part
        lines.append(line)
        return lines

    def _flow(
        self,
        spans: list[Span],
        size: float = 10,
        height: float = 5,
        indent: float = 0,
        fill: tuple[int, int, int] | None = None,
        colour: tuple[int, int, int] | None = None,
        bold: bool = False,
    ) -> None:
        x = self.pdf.l_margin + indent
        width = self.pdf.epw - indent
        for line in self._lines(spans, size, width):
            if self.pdf.will_page_break(height):
                self.pdf.add_page()
            if fill is not None and indent:  # the message's background runs under the indentation too
                self.pdf.set_fill_color(*fill)
                self.pdf.rect(self.pdf.l_margin, self.pdf.get_y(), indent, height, style="F")
            self.pdf.set_x(x)
            self._draw(line, size, height, fill, colour, bold)

    def _draw(
        self,
        line: list[Piece],
        size: float,
        height: float,
        fill: tuple[int, int, int] | None,
        colour: tuple[int, int, int] | None,
        bold: bool,
    ) -> None:
        """One line as runs of one font and style each; the last run's cell reaches the right margin."""
        runs: list[tuple[str, Span, str]] = []  # text, style, family
        for text, span in line:
            primary = self._primary(span)
            whole = self._measure(text, span)[1]
            for part, family in ((text, whole),) if whole else ((ch, self._glyph(ch, primary)[0]) for ch in text):
                if runs and runs[-1][1] is span and runs[-1][2] == family:
                    runs[-1] = (runs[-1][0] + part, span, family)
                else:
                    runs.append((part, span, family))
        if fill is not None:
            self.pdf.set_fill_color(*fill)
        padding = self.pdf.c_margin
        if not runs:
            self.pdf.cell(0, height, text="", fill=fill is not None, new_x="LMARGIN", new_y="NEXT")
            return
        for index, (text, span, family) in enumerate(runs):
            self._use(family)
            shaped = faces()[family].shaped
            if shaped:
                self.pdf.set_text_shaping(use_shaping_engine=True)
            self.pdf.set_font(family, size=size)
            rgb = span.colour or (LINK if span.link else colour)
            self.pdf.set_text_color(*(rgb or (0, 0, 0)))
            start = self.pdf.get_x()
            last = index + 1 == len(runs)
            if shaped:  # shaping changes widths
                run_width = self.pdf.get_string_width(text)
            else:
                run_width = self._width(text, span) * size / 1000 / self.pdf.k
            cell_width = 0 if last else run_width + self.pdf.c_margin
            # No bold font is shipped: bold glyphs are stroked as well as filled,
            # in a saved graphics state (fpdf2 never sets the text mode back).
            strong = bold or span.bold
            with (
                self.pdf.local_context(text_mode=TextMode.FILL_STROKE, line_width=size / 30 / self.pdf.k)
                if strong
                else contextlib.nullcontext()
            ):
                self.pdf.cell(
                    cell_width,
                    height,
                    text=text,
                    fill=fill is not None,
                    link=span.link if span.link.startswith(("http://", "https://", "mailto:")) else "",
                    new_x="LMARGIN" if last else "RIGHT",
                    new_y="NEXT" if last else "TOP",
                )
            if span.strike:
                y = self.pdf.get_y() - height / 2 if last else self.pdf.get_y() + height / 2
                left = start + self.pdf.c_margin
                self.pdf.set_draw_color(*(rgb or (0, 0, 0)))
                self.pdf.line(left, y, left + run_width, y)
            if shaped:
                self.pdf.set_text_shaping(False)
            self.pdf.c_margin = 0  # runs after the first continue the text without a gap
        self.pdf.c_margin = padding
        self.pdf.set_text_color(0, 0, 0)
        self.pdf.set_draw_color(0, 0, 0)

    def _plain(
        self,
        text: str,
        size: float,
        height: float,
        *,
        indent: float = 0,
        fill: tuple[int, int, int] | None = None,
        colour: tuple[int, int, int] | None = None,
        bold: bool = False,
    ) -> None:
        self._flow([Span(text)], size, height, indent, fill, colour, bold)

    # -- Markdown blocks -------------------------------------------------------------------

    def _markdown(self, text: str, fill: tuple[int, int, int] | None, size: float = 10) -> None:
        parsed = blocks(text) if text else []
        if not parsed:
            self._plain("(empty)", size, 5, fill=fill, colour=GREY)
            return
        previous: Block | None = None
        for block in parsed:
            # Paragraphs, headings and code stand apart; a list's items and a table's rows do not.
            if previous is not None and not (previous.kind == block.kind and block.kind in ("item", "row")):
                self._gap(1.5, fill)
            self._block(block, fill, size)
            previous = block

    def _gap(self, height: float, fill: tuple[int, int, int] | None) -> None:
        if self.pdf.will_page_break(height):
            return  # a page break is gap enough
        if fill is not None:
            self.pdf.set_fill_color(*fill)
            self.pdf.rect(self.pdf.l_margin, self.pdf.get_y(), self.pdf.epw, height, style="F")
        self.pdf.ln(height)

    def _block(self, block: Block, fill: tuple[int, int, int] | None, size: float) -> None:
        indent = block.indent * INDENT_MM + (4 if block.quote else 0)
        colour = GREY if block.quote else None
        top = self.pdf.get_y()
        if block.kind == "heading":
            heading = HEADING_SIZES.get(block.level, size + 0.5)
            self._flow(block.spans, heading, heading * 0.55, indent, fill, colour, bold=True)
        elif block.kind == "item":
            marker_indent = indent - INDENT_MM + 1 if block.indent else indent
            if self.pdf.will_page_break(5):
                self.pdf.add_page()
            page, y = self.pdf.page, self.pdf.get_y()
            self._flow(block.spans, size, 5, max(indent, INDENT_MM), fill, colour)
            after = self.pdf.get_y()
            if self.pdf.page == page and after > y:  # the marker beside the item's first line
                self.pdf.set_xy(self.pdf.l_margin + marker_indent, y)
                self.pdf.set_font("Noto", size=size)
                self.pdf.cell(INDENT_MM, 5, text=block.marker)
                self.pdf.set_xy(self.pdf.l_margin, after)
        elif block.kind == "code":
            self._flow(block.spans, size - 1.5, 4.2, indent + 1, CODE_FILL, colour)
        elif block.kind == "rule":
            y = self.pdf.get_y() + 2
            self.pdf.set_draw_color(200, 200, 200)
            self.pdf.line(self.pdf.l_margin, y, self.pdf.l_margin + self.pdf.epw, y)
            self.pdf.set_draw_color(0, 0, 0)
            self.pdf.ln(4)
        elif block.kind == "row":
            self._row(block, indent, size)
        else:
            self._flow(block.spans, size, 5, indent, fill, colour)
        if block.quote and self.pdf.get_y() > top:  # a bar beside quoted text (on the page it ends)
            self.pdf.set_draw_color(190, 190, 190)
            self.pdf.set_line_width(0.6)
            x = self.pdf.l_margin + indent - 2.5
            self.pdf.line(x, top, x, self.pdf.get_y())
            self.pdf.set_line_width(0.2)
            self.pdf.set_draw_color(0, 0, 0)

    def _row(self, block: Block, indent: float, size: float) -> None:
        """A table row: equal columns, each cell wrapped, bordered; a head row in bold."""
        columns = max(1, len(block.cells))
        width = (self.pdf.epw - indent) / columns
        cells = [self._lines(spans, size - 1, width - 2 * CELL_PADDING_MM) for spans in block.cells]
        height = 4.5 * max(len(lines) for lines in cells)
        if self.pdf.will_page_break(height):
            self.pdf.add_page()
        top = self.pdf.get_y()
        for index, lines in enumerate(cells):
            x = self.pdf.l_margin + indent + index * width
            self.pdf.set_fill_color(235, 235, 235)
            self.pdf.rect(x, top, width, height, style="DF" if block.header else "D")
            self.pdf.set_xy(x, top)
            for line in lines:
                self.pdf.set_x(x + CELL_PADDING_MM)
                self._draw(line, size - 1, 4.5, None, None, block.header)
        self.pdf.set_xy(self.pdf.l_margin, top + height)

    # -- the document -----------------------------------------------------------------------

    def begin(self, header: ExportHeader) -> None:
        snap = header.snapshot
        title = title_of(header)
        self.thumbnails = dict(header.thumbnails)
        self.pdf.running_title = drawable(title)
        self.pdf.set_title(title)
        self.pdf.set_creator("Time Machine")
        self.pdf.add_page()
        self._flow([Span(title)], 18, 9, bold=True)
        lines = [
            f"Version {snap.version} of the chat, {_human_time(snap.created_at)}"
            + (f" (changes since version {header.from_snapshot.version})" if header.from_snapshot else ""),
            f"{counted(snap.message_count, 'message')}, {counted(snap.file_count, 'file')} · "
            f"exported {_human_time(header.exported_at)}",
            f"Chat {header.chat_id} · snapshot {snap.id}",
            f"Checksum {snap.checksum}",
        ]
        for line in lines:
            self._plain(line, 8, 4, colour=GREY)
        self.pdf.set_draw_color(200, 200, 200)
        self.pdf.line(self.pdf.l_margin, self.pdf.get_y() + 2, self.pdf.l_margin + self.pdf.epw, self.pdf.get_y() + 2)
        self.pdf.set_draw_color(0, 0, 0)
        self.pdf.ln(4)
        if header.files:
            self._plain("Files", 12, 7, bold=True)
            for entry in header.files:
                f = entry.file
                state = "" if entry.current else " (earlier version)"
                self._plain(f"{f.original_name} — {_size(f.size_bytes)}, version {f.version}{state}", 8, 4)
                self._plain(f"SHA-256 {f.checksum_sha256}", 7, 3.5, colour=GREY)
            self.pdf.ln(3)
        self._plain("Messages", 12, 7, bold=True)

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
        deleted = " · deleted" if message.deleted else ""
        edited = f" · edited, {counted(len(message.versions), 'version')}" if len(message.versions) > 1 else ""
        self.pdf.ln(2)
        about = [Span(f"{self.count}. {role}", bold=True), Span(f"{model} · {_human_time(message.created_at)}{edited}")]
        self._flow([*about, Span(deleted, bold=True)], 8, 4, colour=GREY)
        fill = ROLE_COLOURS.get(message.role)
        if message.deleted:
            self._plain(message.content or "(empty)", 9, 4.5, colour=GREY, fill=fill)
        else:
            self._markdown(message.content, fill)
        for ref in message.attachments:
            self._attachment(ref)
        if len(message.versions) > 1:
            self._history(message)

    def _history(self, message: Message) -> None:
        """The versions before the one shown (a deleted message: all, to its deletion), oldest first, compact:
        when, why, and their words."""
        earlier = message.versions if message.deleted else message.versions[:-1]
        self._plain("History:" if message.deleted else f"Earlier {plural(len(earlier), 'version')}:", 7.5, 4,
                    colour=GREY)  # fmt: skip
        for v in earlier:
            what = "deleted" if v.is_deleted else f"version {v.version}"
            reason = f" — {v.edit_reason}" if v.edit_reason else ""
            self._plain(f"{what}, {_human_time(v.created_at)}{reason}", 7, 3.5, indent=INDENT_MM, colour=GREY)
            if not v.is_deleted:
                self._plain(v.content or "(empty)", 8, 4, indent=INDENT_MM)

    def _attachment(self, ref: AttachmentRow) -> None:
        """A file the message refers to: an image's thumbnail, then its name, version and size."""
        data = self.thumbnails.get(ref.file_id)
        if data is not None:
            if self.pdf.will_page_break(THUMBNAIL_MM + 2):
                self.pdf.add_page()
            try:
                left = self.pdf.l_margin + INDENT_MM
                self.pdf.image(io.BytesIO(data), x=left, w=THUMBNAIL_MM, keep_aspect_ratio=True)
            except Exception:
                logging.getLogger(__name__).warning("a thumbnail could not be drawn; listed by name only")
        self._plain(f"File: {reference_line(ref)}", 7.5, 4, indent=INDENT_MM, colour=GREY)

    def end(self) -> None:
        self.pdf.ln(3)
        self._plain(f"{counted(self.count, 'message')}.", 8, 4, colour=GREY)
        self.sink.write(bytes(self.pdf.output()))
        self.close()

    def close(self) -> None:
        """Close the font files fontTools keeps open for lazy reading (idempotent)."""
        for font in self.pdf.fonts.values():
            if isinstance(font, TTFFont):
                font.close()
