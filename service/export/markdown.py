"""Chat text as Markdown: rendered to safe HTML, or to blocks a PDF lays out.

AI chats are written in Markdown (headings, lists, tables, fenced code), so
an export shows the text as it reads, not its source. markdown-it-py parses
(CommonMark with tables and strikethrough); raw HTML in a message is never
passed through: it is shown as text. The HTML is sanitised again by nh3 with
a short allow-list (no scripts, no styles, links only to http, https and
mailto), and images are links, never fetched: the export's own pictures are
the thumbnails of the files a message refers to.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.token import Token as CodeToken
from pygments.util import ClassNotFound

# What the HTML of a message may contain after rendering.
TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "s", "del", "code", "pre", "span",
    "blockquote", "ul", "ol", "li", "table", "thead", "tbody", "tr", "th", "td", "a",
}  # fmt: skip
ATTRIBUTES = {"a": {"href", "title"}, "span": {"class"}, "code": {"class"}, "ol": {"start"}, "th": {"style"},
              "td": {"style"}}  # fmt: skip
URL_SCHEMES = {"http", "https", "mailto"}
CODE_CSS_CLASS = "hl"


@cache
def _parser() -> MarkdownIt:
    parser = MarkdownIt("commonmark", {"html": False, "highlight": _highlight_html}).enable(["table", "strikethrough"])
    parser.add_render_rule("image", _image_as_link)
    return parser


def _highlight_html(code: str, language: str, _attrs: Any) -> str:
    """A fenced block's code with Pygments' classes (styled by the export's CSS), or "" for plain text."""
    lexer = _lexer(language)
    if lexer is None:
        return ""
    body: str = highlight(code, lexer, HtmlFormatter(nowrap=True, classprefix=f"{CODE_CSS_CLASS}-"))
    return f'<pre><code class="{CODE_CSS_CLASS}">{body}</code></pre>\n'


def _lexer(language: str) -> Any:
    name = language.strip().split()[0].lower() if language.strip() else ""
    return _lexer_named(name) if name else None


@cache
def _lexer_named(name: str) -> Any:
    """Pygments' lexer for a fence's language, found once per process (the lookup walks every plugin)."""
    try:
        return get_lexer_by_name(name, stripnl=False)
    except ClassNotFound:
        return None


def _image_as_link(self: Any, tokens: list[Token], idx: int, options: Any, env: Any) -> str:
    """![alt](src) as a link to src: an export fetches nothing."""
    token = tokens[idx]
    alt = self.renderInline(token.children or [], options, env) or "image"
    src = token.attrGet("src") or ""
    return f'<a href="{html.escape(str(src), quote=True)}">{alt}</a>'


def code_css() -> str:
    """The colours of highlighted code, for the HTML export's style sheet."""
    css: str = HtmlFormatter(classprefix=f"{CODE_CSS_CLASS}-").get_style_defs(f".{CODE_CSS_CLASS}")
    return css


def to_html(text: str) -> str:
    """A message's Markdown as sanitised HTML."""
    rendered = _parser().render(text)
    cleaned: str = nh3.clean(
        rendered,
        tags=TAGS,
        attributes=ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )
    return cleaned


# -- blocks for a PDF ------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    """A run of inline text in one style."""

    text: str
    bold: bool = False
    italic: bool = False
    code: bool = False
    strike: bool = False
    link: str = ""
    colour: tuple[int, int, int] | None = None  # highlighted code


@dataclass
class Block:
    """A paragraph-like unit: its kind, its nesting and its inline spans.

    kind: "paragraph", "heading" (level 1-6), "item" (marker "•" or "3."),
    "code" (spans per line, monospace), "rule", or "row" (cells, each a list
    of spans; `header` for a table's head row).
    """

    kind: str
    spans: list[Span] = field(default_factory=list)
    level: int = 0
    indent: int = 0  # list and quote depth
    quote: bool = False
    marker: str = ""
    cells: list[list[Span]] = field(default_factory=list)
    header: bool = False


def blocks(text: str) -> list[Block]:
    """A message's Markdown as blocks in reading order."""
    out: list[Block] = []
    lists: list[list[int]] = []  # per open list: [next number] or [] for bullets
    quotes = 0
    pending_marker = ""
    heading = 0
    row: Block | None = None
    in_head = False
    for token in _parser().parse(text):
        kind = token.type
        if kind == "heading_open":
            heading = int(token.tag[1])
        elif kind == "heading_close":
            heading = 0
        elif kind in ("bullet_list_open", "ordered_list_open"):
            start = token.attrGet("start")
            lists.append([int(start) if start is not None else 1] if kind == "ordered_list_open" else [])
        elif kind in ("bullet_list_close", "ordered_list_close"):
            lists.pop()
        elif kind == "list_item_open":
            numbering = lists[-1] if lists else []
            if numbering:
                pending_marker = f"{numbering[0]}."
                numbering[0] += 1
            else:
                pending_marker = "•"
        elif kind == "blockquote_open":
            quotes += 1
        elif kind == "blockquote_close":
            quotes -= 1
        elif kind == "thead_open":
            in_head = True
        elif kind == "thead_close":
            in_head = False
        elif kind == "tr_open":
            row = Block("row", header=in_head, indent=len(lists), quote=quotes > 0)
        elif kind == "tr_close" and row is not None:
            out.append(row)
            row = None
        elif kind == "inline":
            spans = _spans(token.children or [])
            if row is not None:
                row.cells.append(spans)
                continue
            block = Block("heading" if heading else "paragraph", spans, level=heading)
            block.indent, block.quote = len(lists), quotes > 0
            if pending_marker:
                block.kind, block.marker, pending_marker = "item", pending_marker, ""
            out.append(block)
        elif kind in ("fence", "code_block"):
            out.append(Block("code", _code_spans(token.content, token.info), indent=len(lists), quote=quotes > 0))
        elif kind == "hr":
            out.append(Block("rule"))
    return out


def _spans(children: list[Token]) -> list[Span]:
    spans: list[Span] = []
    bold = italic = strike = 0
    link: list[str] = []
    for child in children:
        kind = child.type
        if kind == "text" and child.content:
            spans.append(Span(child.content, bold > 0, italic > 0, False, strike > 0, link[-1] if link else ""))
        elif kind == "code_inline":
            spans.append(Span(child.content, code=True, link=link[-1] if link else ""))
        elif kind in ("softbreak",):
            spans.append(Span(" "))
        elif kind == "hardbreak":
            spans.append(Span("\n"))
        elif kind == "strong_open":
            bold += 1
        elif kind == "strong_close":
            bold -= 1
        elif kind == "em_open":
            italic += 1
        elif kind == "em_close":
            italic -= 1
        elif kind == "s_open":
            strike += 1
        elif kind == "s_close":
            strike -= 1
        elif kind == "link_open":
            link.append(str(child.attrGet("href") or ""))
        elif kind == "link_close" and link:
            href = link.pop()
            if href and href.split(":", 1)[0].lower() in URL_SCHEMES:
                spans.append(Span(f" ({href})", italic=True))
        elif kind == "image":
            alt = "".join(c.content for c in child.children or []) or "image"
            spans.append(Span(f"[{alt}] ({child.attrGet('src') or ''})", italic=True))
        elif kind == "html_inline":  # never parsed with html on; kept as text if it ever is
            spans.append(Span(child.content))
    return spans


# Colours of highlighted code in a PDF, by Pygments token type (a readable subset of its default style).
_CODE_COLOURS: list[tuple[Any, tuple[int, int, int]]] = [
    (CodeToken.Comment, (61, 122, 122)),
    (CodeToken.Keyword, (0, 128, 0)),
    (CodeToken.Name.Builtin, (0, 128, 0)),
    (CodeToken.Name.Function, (0, 0, 255)),
    (CodeToken.Name.Class, (0, 0, 255)),
    (CodeToken.Literal.String, (186, 33, 33)),
    (CodeToken.Literal.Number, (102, 102, 102)),
    (CodeToken.Operator.Word, (170, 34, 255)),
]


def _code_spans(code: str, language: str) -> list[Span]:
    """A code block's text, coloured by token where the language is known; "\\n" spans end lines."""
    lexer = _lexer(language)
    if lexer is None:
        return [Span(code.rstrip("\n"), code=True)]
    spans = []
    for token_type, value in lexer.get_tokens(code.rstrip("\n")):
        colour = next((c for t, c in _CODE_COLOURS if token_type in t), None)
        spans.append(Span(value, code=True, colour=colour))
    return spans
