"""PDF rendering: our line breaking against fpdf2's multi_cell, same messages.

multi_cell re-measures the whole line for each character it adds; the
renderer breaks lines itself from the fonts' width tables. Both draw the same
messages (a mix of Latin, Greek, Cyrillic and CJK text, or Latin only) in the
same run, so the ratio holds on a noisy machine.
"""

from __future__ import annotations

import io
import statistics
import time
import uuid
from dataclasses import fields
from datetime import UTC, datetime
from typing import IO, Any

from service.export.content import ExportHeader, Message
from service.export.markdown import Span
from service.export.pdf import PdfRenderer
from service.models import Snapshot

MESSAGES = 200
ROUNDS = 3
TEXTS = {
    "latin": "The quick brown fox jumps over the lazy dog, again and again. ",
    "mixed": "The quick brown fox; Ελληνικά γράμματα, русский текст, 日本語のテキスト. ",
}


class MultiCellRenderer(PdfRenderer):
    """Our layout with fpdf2 breaking the lines and picking fonts (CJK always embedded)."""

    def __init__(self, sink: IO[bytes]) -> None:
        super().__init__(sink)
        self._use("CJK")

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
        self.pdf.set_fallback_fonts(["CJK"])
        self.pdf.set_font("Noto", size=size)
        if fill:
            self.pdf.set_fill_color(*fill)
        self.pdf.set_x(self.pdf.l_margin + indent)
        text = "".join(span.text for span in spans)
        self.pdf.multi_cell(0, height, text=text, fill=fill is not None, new_x="LMARGIN", new_y="NEXT")


def _header() -> ExportHeader:
    values: dict[str, Any] = {f.name: None for f in fields(Snapshot)}
    values |= {"version": 1, "created_at": datetime.now(UTC), "checksum": "0" * 64, "tenant_id": uuid.uuid4()}
    values |= {"id": uuid.uuid4(), "message_count": MESSAGES, "file_count": 0}
    return ExportHeader(uuid.uuid4(), "Bench", Snapshot(**values), None, False, False, datetime.now(UTC), [])


def _render(kind: type[PdfRenderer], text: str) -> float:
    now = datetime.now(UTC)
    start = time.perf_counter()
    renderer = kind(io.BytesIO())
    renderer.begin(_header())
    for i in range(MESSAGES):
        role = "user" if i % 2 else "assistant"
        renderer.message(Message(uuid.uuid4(), i, role, text, "model", 1, {}, 1, now, now, False))
    renderer.end()
    return time.perf_counter() - start


def measure() -> dict[str, Any]:
    results: dict[str, Any] = {"pdf_messages": MESSAGES, "pdf_message_chars": 1000}
    for name, sentence in TEXTS.items():
        text = (sentence * 40)[:1000]
        ours, theirs = [], []
        for _ in range(ROUNDS):
            ours.append(_render(PdfRenderer, text))
            theirs.append(_render(MultiCellRenderer, text))
        results[f"pdf_ms_per_message_{name}"] = round(1000 * statistics.median(ours) / MESSAGES, 2)
        results[f"pdf_multi_cell_ms_per_message_{name}"] = round(1000 * statistics.median(theirs) / MESSAGES, 2)
        results[f"pdf_speedup_vs_multi_cell_{name}"] = round(statistics.median(theirs) / statistics.median(ours), 2)
    return results
