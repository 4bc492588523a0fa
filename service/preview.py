"""Search text and thumbnails made at upload. Neither may ever fail an upload."""

from __future__ import annotations

import io
import logging
import time
import warnings

log = logging.getLogger(__name__)
MAX_EXTRACTED_CHARS = 100_000  # bounded: search text, not a copy of the file
MAX_PREVIEW_SOURCE = 16 * 1024 * 1024  # bytes kept in memory to make a preview
THUMBNAIL_SIZE = (256, 256)
# An image is decoded for a thumbnail only up to this many pixels: a 236 KB
# PNG of 9,000 x 9,000 decodes to ~243 MB (Pillow's own limit is 89 Mpx).
MAX_THUMBNAIL_PIXELS = 16_000_000  # 64 MB as RGBA at most
# Text extraction from a PDF stops at this many pages or seconds.
MAX_PDF_PAGES = 200
MAX_PDF_SECONDS = 5.0
TEXT_TYPES = frozenset(
    {
        "application/json",
        "application/x-ndjson",
        "application/xml",
        "application/x-yaml",
        "application/yaml",
        "application/markdown",
        "application/csv",
    }
)
TEXT_SUFFIXES = (".txt", ".md", ".markdown", ".csv", ".json", ".tsv", ".log", ".yaml", ".yml")
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp", "image/tiff"})


def _base(mime_type: str) -> str:
    return mime_type.split(";", 1)[0].strip().lower()


def is_text(mime_type: str, name: str) -> bool:
    base = _base(mime_type)
    return base.startswith("text/") or base in TEXT_TYPES or name.lower().endswith(TEXT_SUFFIXES)


def is_pdf(mime_type: str, name: str) -> bool:
    return _base(mime_type) == "application/pdf" or name.lower().endswith(".pdf")


def is_image(mime_type: str) -> bool:
    return _base(mime_type) in IMAGE_TYPES


def wants_bytes(mime_type: str, name: str) -> bool:
    """Whether the upload should keep (up to MAX_PREVIEW_SOURCE) bytes for a preview."""
    return is_text(mime_type, name) or is_pdf(mime_type, name) or is_image(mime_type)


def _clean(text: str) -> str:
    return text.replace("\x00", "")[:MAX_EXTRACTED_CHARS]


def extract_text(mime_type: str, name: str, data: bytes, complete: bool) -> str | None:
    """Searchable text of a text, JSON, Markdown, CSV or PDF file, or None."""
    try:
        if is_text(mime_type, name):
            return _clean(data[: MAX_EXTRACTED_CHARS * 4].decode("utf-8", errors="ignore"))
        if is_pdf(mime_type, name) and complete:
            from pypdf import PdfReader

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                reader = PdfReader(io.BytesIO(data))
                parts: list[str] = []
                length = 0
                deadline = time.monotonic() + MAX_PDF_SECONDS
                for number, page in enumerate(reader.pages):
                    text = page.extract_text() or ""
                    parts.append(text)
                    length += len(text)
                    if length >= MAX_EXTRACTED_CHARS or number + 1 >= MAX_PDF_PAGES or time.monotonic() > deadline:
                        break
            return _clean("\n".join(parts))
    except Exception:  # a broken file is the caller's business; the upload still succeeds
        log.info("text extraction failed for a %s upload", _base(mime_type), exc_info=True)
    return None


def thumbnail(mime_type: str, data: bytes, complete: bool) -> bytes | None:
    """A PNG thumbnail of a common image type, or None."""
    if not (is_image(mime_type) and complete):
        return None
    try:
        from PIL import Image

        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:  # reads the header only
                width, height = image.size
                if width * height > MAX_THUMBNAIL_PIXELS:
                    log.info("no thumbnail: a %d x %d image is larger than the decoding limit", width, height)
                    return None
                image.thumbnail(THUMBNAIL_SIZE)
                out = io.BytesIO()
                image.convert("RGBA" if image.mode in ("RGBA", "LA", "P") else "RGB").save(out, format="PNG")
                return out.getvalue()
    except Exception:
        log.info("thumbnail failed for a %s upload", _base(mime_type), exc_info=True)
        return None
