"""The PDF renderer's own line breaking (fpdf2's multi_cell is quadratic per line)."""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator

import pytest

from service.export.pdf import PdfRenderer

SIZE = 10


@pytest.fixture(scope="module")
def renderer() -> Iterator[PdfRenderer]:
    renderer = PdfRenderer(io.BytesIO())
    yield renderer
    renderer.close()


def limit(renderer: PdfRenderer) -> float:
    return (renderer.pdf.epw - 2 * renderer.pdf.c_margin) * renderer.pdf.k * 1000 / SIZE


def test_words_stay_whole_in_order_and_every_line_fits(renderer: PdfRenderer) -> None:
    text = "A long English paragraph, Ελληνικά γράμματα and русский текст, wrapping at the margin. " * 12
    lines = renderer._lines(text, SIZE)
    assert len(lines) > 5
    assert " ".join(lines).split() == text.split()
    assert all(renderer._width(line) <= limit(renderer) for line in lines)
    assert all(line == line.lstrip() for line in lines)  # no line starts with the space it broke at
    # Full lines: the next line's first word would not have fitted.
    for line, following in itertools.pairwise(lines):
        first_word = following.split()[0]
        assert renderer._width(line + " " + first_word) > limit(renderer)


def test_text_without_spaces_breaks_between_characters(renderer: PdfRenderer) -> None:
    cjk = "日本語のテキストはスペースなしで書かれるので、文字単位で折り返す必要があります。" * 6
    lines = renderer._lines(cjk, SIZE)
    assert len(lines) > 2 and "".join(lines) == cjk
    assert all(renderer._width(line) <= limit(renderer) for line in lines)
    word = "https://example.com/" + "a" * 400
    cut = renderer._lines(f"see {word} end", SIZE)
    assert "".join(cut).replace(" ", "") == f"see{word}end"
    assert all(renderer._width(line) <= limit(renderer) for line in cut)


def test_paragraphs_blank_lines_and_indentation_are_kept(renderer: PdfRenderer) -> None:
    assert renderer._lines("def f(x):\r\n    return x\n\n\tdone", SIZE) == [
        "def f(x):",
        "    return x",
        "",
        "    done",
    ]
    assert renderer._lines("", SIZE) == [""]


def test_characters_no_font_has_take_no_width(renderer: PdfRenderer) -> None:
    assert renderer._width("\U0001f600") == 0  # fpdf2 skips the glyph, so it must not push text
    assert renderer._width("ab") == renderer._width("a") + renderer._width("b") > 0
