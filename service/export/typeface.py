"""The PDF export's fonts: one per script, chosen per character, and names for what none can draw.

Every font ships in a Python package, so a PDF looks the same on any
machine. Noto Sans covers Latin, Greek and Cyrillic; Noto Sans Arabic,
Heebo (Hebrew), Noto Sans Devanagari, Noto Sans Thai and Noto Sans CJK the
scripts it lacks; JetBrains Mono sets code. A character is drawn with the
first font of its style's chain that has it. Emoji (no font here draws
colour glyphs) and any other character no font has are written as their
names, ":slightly_smiling_face:" or "[U+E000]", so nothing is dropped.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import emoji
from fpdf import FPDF
from fpdf.fonts import TTFFont


@dataclass(frozen=True)
class Face:
    family: str  # the name the PDF's font is added under
    path: Path
    shaped: bool = False  # needs text shaping (joined or reordered glyphs) and right-to-left runs


@dataclass(frozen=True)
class Metrics:
    """What measuring text needs of a font: its characters and their widths."""

    codes: frozenset[int]
    widths: dict[int, float]  # thousandths of the font size


def _package_font(module: str, name: str) -> Path:
    imported = __import__(module)
    return Path(imported.ROOT) / "files" / name


@cache
def faces() -> dict[str, Face]:
    """Every face by family (paths resolved once)."""
    import noto_cjk_sans_jp_regular

    found = [
        Face("Noto", _package_font("fontpkg_noto_sans", "NotoSans[wdth,wght].ttf")),
        Face("NotoI", _package_font("fontpkg_noto_sans", "NotoSans-Italic[wdth,wght].ttf")),
        Face("Mono", _package_font("fontpkg_jetbrains_mono", "JetBrainsMono[wght].ttf")),
        Face("Arabic", _package_font("fontpkg_noto_sans_arabic", "NotoSansArabic[wdth,wght].ttf"), shaped=True),
        Face("Hebrew", _package_font("fontpkg_heebo", "Heebo[wght].ttf"), shaped=True),
        Face("Devanagari", _package_font("fontpkg_noto_sans_devanagari", "NotoSansDevanagari[wdth,wght].ttf"), True),
        Face("Thai", _package_font("fontpkg_noto_sans_thai", "NotoSansThai[wdth,wght].ttf"), shaped=True),
        Face("CJK", Path(str(noto_cjk_sans_jp_regular.FONT_PATH))),
    ]
    return {face.family: face for face in found}


# After a style's own font, the scripts' fonts in this order.
FALLBACK = ("Noto", "Arabic", "Hebrew", "Devanagari", "Thai", "CJK")


@cache
def metrics(family: str) -> Metrics:
    """A face's metrics, read once per process (the CJK font takes about half a second)."""
    probe = FPDF()
    probe.add_font(family, "", str(faces()[family].path))
    font = probe.fonts[family.lower()]
    assert isinstance(font, TTFFont)
    try:
        return Metrics(frozenset(font.cmap), {code: font.cw[code] for code in font.cmap})
    finally:
        font.close()


@cache
def chain(primary: str) -> tuple[tuple[str, Metrics], ...]:
    families = (primary, *(f for f in FALLBACK if f != primary))
    return tuple((family, metrics(family)) for family in families)


def face_of(code: int, primary: str) -> tuple[str, float] | None:
    """The family that draws `code` in a style whose own font is `primary`, and the glyph's width."""
    for family, found in chain(primary):
        if code in found.codes:
            return family, found.widths[code]
    return None


def drawable(text: str) -> str:
    """`text` with emoji named and characters no font has spelled out; invisible format characters go."""
    if text.isascii():
        return text
    named = emoji.demojize(text, delimiters=(":", ":")) if emoji.emoji_count(text) else text
    fallback = metrics("Noto").codes
    if all(ord(ch) in fallback for ch in named):
        return named
    out = []
    for ch in named:
        code = ord(ch)
        if code in fallback or face_of(code, "Noto") is not None or ch in "\n\t":
            out.append(ch)
        elif unicodedata.category(ch) == "Cf":  # joiners, variation selectors, direction marks: nothing to see
            continue
        else:
            out.append(f"[U+{code:04X}]")
    return "".join(out)
