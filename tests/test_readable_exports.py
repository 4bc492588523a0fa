"""Exports a person reads: Markdown rendered, every character kept, files shown, a document not a dump."""

from __future__ import annotations

import io
import re
import unicodedata
from html.parser import HTMLParser

import emoji
from pypdf import PdfReader

from generated.timemachine.v1 import resources_pb2 as pb
from tests.conftest import Caller, save_with_image
from tests.test_export import export

SCRIPTS = [
    "Latin: naïve façade, Œuvre 🙂",
    "Ελληνικά: καλημέρα κόσμε",
    "Кириллица: съешь же ещё этих булок",
    "中文：你好世界，日本語：こんにちは、한국어: 안녕하세요",  # noqa: RUF001 - full-width punctuation is CJK text
    "العربية: مرحبا بالعالم",
    "עברית: שלום עולם",
    "हिन्दी: नमस्ते दुनिया",
    "ภาษาไทย: สวัสดีชาวโลก",
    "Emoji: 👩‍💻 🇩🇪 ❤️ 🎉 done",
]

ANSWER = """# Lisbon in 3 days

**Day 1**: Tram 28 through *Alfama*.

- Tram 28
- Castelo de São Jorge

| Day | Area |
|---|---|
| 1 | Alfama |

```python
def budget(days: int) -> int:
    return days * 50
```
"""


def _letters(text: str) -> str:
    """What reading order compares: compatibility forms folded, no spaces, controls or format marks."""
    folded = unicodedata.normalize("NFKC", text)
    return "".join(ch for ch in folded if not ch.isspace() and unicodedata.category(ch) not in ("Cc", "Cf"))


def _in_order(needle: str, haystack: str) -> bool:
    """Every character of `needle` in `haystack`, in order (a shaped PDF may add marks between them)."""
    position = 0
    for ch in needle:
        position = haystack.find(ch, position)
        if position < 0:
            return False
        position += 1
    return True


def _pdf_text(data: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(data)).pages]


def test_a_pdf_keeps_every_character_of_every_script_and_names_emoji(caller: Caller, chat_id: str) -> None:
    for text in SCRIPTS:
        caller.save(chat_id, text)
    _, data = export(caller, chat_id, pb.EXPORT_FORMAT_PDF)
    raw = "\n".join(_pdf_text(data))
    found = _letters(raw)
    for text in SCRIPTS:
        expected = _letters(emoji.replace_emoji(text, ""))
        assert _in_order(expected, found), text
        for item in emoji.emoji_list(text):
            name = emoji.demojize(item["emoji"], delimiters=(":", ":"))
            assert item["emoji"] in raw or name in raw, (item["emoji"], name)


def test_a_pdf_renders_markdown_and_numbers_its_pages(caller: Caller, chat_id: str) -> None:
    caller.rename(chat_id, "Trip to Lisbon")
    caller.save(chat_id, "Plan **three** days, please")
    for _ in range(12):  # enough to fill more than one page
        caller.save(chat_id, ANSWER, role=pb.MESSAGE_ROLE_ASSISTANT, model_id="gpt-x")
    _, data = export(caller, chat_id, pb.EXPORT_FORMAT_PDF)
    pages = _pdf_text(data)
    text = "\n".join(pages)
    assert "Lisbon in 3 days" in text and "Day 1" in text and "def budget(days: int) -> int:" in text
    for source in ("**", "# Lisbon", "- Tram 28", "```", "|---|", "*Alfama*"):
        assert source not in text, source
    assert len(pages) > 1
    for number, page in enumerate(pages, start=1):
        assert f"Page {number} of {len(pages)}" in page
    assert pages[1].lstrip().startswith("Trip to Lisbon")  # the running header
    assert "13 messages" in pages[-1] and "1 message" not in pages[0].replace("13 messages", "")


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def test_html_renders_markdown_and_runs_nothing(caller: Caller, chat_id: str) -> None:
    hostile = (
        "<script>alert(1)</script> <img src=x onerror=alert(2)> [click](javascript:alert(3)) "
        "![pixel](https://tracker.example/p.png) [fine](https://example.com/a)"
    )
    caller.save(chat_id, ANSWER, role=pb.MESSAGE_ROLE_ASSISTANT)
    caller.save(chat_id, hostile)
    _, data = export(caller, chat_id, pb.EXPORT_FORMAT_HTML)
    page = data.decode()
    parsed = _Elements()
    parsed.feed(page)
    tags = [tag for tag, _ in parsed.tags]
    for tag in ("h1", "strong", "em", "ul", "li", "table", "th", "td", "pre", "code"):
        assert tag in tags, tag
    assert "<strong>Day 1</strong>" in page and "<li>Tram 28</li>" in page
    assert re.search(r'<pre><code class="hl"><span class="hl-k">def</span>', page)  # highlighted
    assert "script" not in tags and "<script>" not in page and "&lt;script&gt;" in page  # shown, not run
    for tag, attrs in parsed.tags:
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        assert not (attrs.get("href") or "").startswith("javascript:"), attrs
        if tag == "img":
            assert (attrs.get("src") or "").startswith("data:"), attrs  # nothing is fetched
    assert 'href="https://tracker.example/p.png"' in page and 'href="https://example.com/a"' in page


def test_html_shows_each_edit_as_a_word_diff_and_counts_in_words(caller: Caller, chat_id: str) -> None:
    saved = caller.save(chat_id, "Meet at the old harbour at noon")
    caller.edit(chat_id, saved.message.message_id, "Meet at the new harbour at noon", edit_reason="moved")
    _, data = export(caller, chat_id, pb.EXPORT_FORMAT_HTML, include_version_history=True)
    page = data.decode()
    assert "<del>old</del><ins>new</ins>" in page
    assert "History: 2 versions" in page and "1 message," in page and "1 messages" not in page
    assert "moved" in page


def test_markdown_keeps_the_source_and_plurals_read_right(caller: Caller, chat_id: str) -> None:
    caller.save(chat_id, ANSWER)
    _, data = export(caller, chat_id, pb.EXPORT_FORMAT_MARKDOWN)
    text = data.decode()
    assert "**Day 1**" in text and "```python" in text
    assert text.rstrip().endswith("1 message.")


def test_a_pdf_shows_a_referenced_image_as_its_thumbnail(caller: Caller, chat_id: str) -> None:
    save_with_image(caller, chat_id, "harbour.png", (640, 480), "the harbour")
    _, data = export(caller, chat_id, pb.EXPORT_FORMAT_PDF)
    reader = PdfReader(io.BytesIO(data))
    pictures = [picture for page in reader.pages for picture in page.images]
    assert len(pictures) == 1
    shown = pictures[0].image
    assert shown is not None and max(shown.size) < 640  # the thumbnail, not the image
    assert "harbour.png (version 1" in "\n".join(_pdf_text(data))
