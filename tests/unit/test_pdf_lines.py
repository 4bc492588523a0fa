"""The PDF renderer's own line breaking (fpdf2's multi_cell is quadratic per line)."""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator

import pytest

from service.export.markdown import Span
from service.export.pdf import PdfRenderer

SIZE = 10
PLAIN = Span("")


@pytest.fixture(scope="module")
def renderer() -> Iterator[PdfRenderer]:
    renderer = PdfRenderer(io.BytesIO())
    yield renderer
    renderer.close()


def limit(renderer: PdfRenderer) -> float:
    return (renderer.pdf.epw - 2 * renderer.pdf.c_margin) * renderer.pdf.k * 1000 / SIZE


def lines(renderer: PdfRenderer, text: str, code: bool = False) -> list[str]:
    """The text of each line the renderer breaks `text` into, across the page's width."""
    broken = renderer._lines([Span(text, code=code)], SIZE, renderer.pdf.epw)
    return ["".join(piece for piece, _ in line) for line in broken]


def width(renderer: PdfRenderer, text: str) -> float:
    return renderer._width(text, PLAIN)


def test_words_stay_whole_in_order_and_every_line_fits(renderer: PdfRenderer) -> None:
    text = "A long English paragraph, Ελληνικά γράμματα and русский текст, wrapping at the margin. " * 12
    broken = lines(renderer, text)
    assert len(broken) > 5
    assert " ".join(broken).split() == text.split()
    assert all(width(renderer, line) <= limit(renderer) for line in broken)
    assert all(line == line.lstrip() for line in broken)  # no line starts with the space it broke at
    # Full lines: the next line's first word would not have fitted.
    for line, following in itertools.pairwise(broken):
        first_word = following.split()[0]
        assert width(renderer, line + " " + first_word) > limit(renderer)


def test_text_without_spaces_breaks_between_characters(renderer: PdfRenderer) -> None:
    cjk = "日本語のテキストはスペースなしで書かれるので、文字単位で折り返す必要があります。" * 6
    broken = lines(renderer, cjk)
    assert len(broken) > 2 and "".join(broken) == cjk
    assert all(width(renderer, line) <= limit(renderer) for line in broken)
    word = "https://example.com/" + "a" * 400
    cut = lines(renderer, f"see {word} end")
    assert "".join(cut).replace(" ", "") == f"see{word}end"
    assert all(width(renderer, line) <= limit(renderer) for line in cut)


def test_code_keeps_its_lines_blank_lines_and_indentation(renderer: PdfRenderer) -> None:
    assert lines(renderer, "def f(x):\r\n    return x\n\n\tdone", code=True) == [
        "def f(x):",
        "    return x",
        "",
        "    done",
    ]
    assert lines(renderer, "") == [""]


def test_emoji_are_named_and_characters_no_font_has_are_spelled_out(renderer: PdfRenderer) -> None:
    assert lines(renderer, "ok \U0001f600 then \ue000 end") == ["ok :grinning_face: then [U+E000] end"]
    assert width(renderer, "ab") == width(renderer, "a") + width(renderer, "b") > 0
