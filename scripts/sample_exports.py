"""Write a sample chat's PDF and HTML exports, for looking at them as a person would.

    PYTHONPATH=. .venv/bin/python scripts/sample_exports.py out/
    pdftoppm -r 70 -png -f 1 -l 1 out/sample.pdf out/page  # then out/page-1.png -> docs/images/export-pdf.png
    chromium --headless --no-sandbox --hide-scrollbars --window-size=900,1180 \\
        --screenshot=docs/images/export-html.png out/sample.html

The chat goes through the same renderers the service streams exports with;
the pictures in docs/images were made this way.
"""

from __future__ import annotations

import io
import sys
import uuid
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from service.attachments import AttachmentRow
from service.export.content import ExportHeader, Message, Version
from service.export.pdf import PdfRenderer
from service.export.webpage import HtmlRenderer
from service.models import Snapshot

START = datetime(2026, 5, 2, 9, 30, tzinfo=UTC)
QUESTION = "Plan a **3-day** trip to Lisbon for two in May. We like food, views and old trams 🙂"
ANSWER = """# Lisbon in 3 days

## Day 1: Alfama and the castle
- Ride **Tram 28** from Martim Moniz early, before the queues
- Walk up to *Castelo de São Jorge*
- Sunset at the `Miradouro da Senhora do Monte`

> Tip: a Viva Viagem card covers trams, buses and the metro.

| Day | Area | Budget for two |
|---|---|---|
| 1 | Alfama | €60 |
| 2 | Belém | €80 |
| 3 | Sintra | €110 |

```python
def budget(days: list[int]) -> int:
    # euros for two, without hotel
    return sum(days)
```
"""
WORLD = (
    "Notes from friends: Ελληνικά — καλό ταξίδι · Русский — хорошей поездки · 日本語 — よい旅を · "
    "العربية — رحلة سعيدة · עברית — נסיעה טובה · हिन्दी — शुभ यात्रा · ไทย — เดินทางปลอดภัย 🎉"
)


def _snapshot(count: int) -> Snapshot:
    values: dict[str, Any] = {f.name: None for f in fields(Snapshot)}
    values |= {"id": uuid.uuid4(), "tenant_id": uuid.uuid4(), "version": 7, "created_at": START + timedelta(hours=1)}
    values |= {"checksum": "5f0c9a3e" * 8, "message_count": count, "file_count": 1}
    return Snapshot(**values)


def _message(position: int, role: str, content: str, minutes: int, **more: Any) -> Message:
    at = START + timedelta(minutes=minutes)
    return Message(uuid.uuid4(), position, role, content, more.pop("model_id", ""), 10, {}, 1, at, at, False, **more)


def _thumbnail() -> bytes:
    image = Image.new("RGB", (200, 130), (70, 130, 180))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 90, 200, 130), fill=(230, 200, 120))
    draw.ellipse((140, 15, 180, 55), fill=(255, 220, 90))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    photo = uuid.uuid4()
    exported = START + timedelta(days=1)
    header = ExportHeader(uuid.uuid4(), "Trip to Lisbon", _snapshot(3), None, True, False, exported, [])
    header.thumbnails = {photo: _thumbnail()}
    ref = AttachmentRow(uuid.uuid4(), 0, photo, "inline", "tram-28.jpg", 3, "image/jpeg", 1_843_200)
    history = [
        Version(1, 1, "user", "Plan a trip to Lisbon for two.", "", 10, False, "", START, {}, None),
        Version(2, 3, "user", QUESTION, "", 20, False, "more detail", START + timedelta(minutes=2), {}, None),
    ]
    messages = [
        _message(1, "user", QUESTION, 0, versions=history),
        _message(2, "assistant", ANSWER, 3, model_id="gpt-x", attachments=[ref]),
        _message(3, "user", WORLD, 9),
    ]
    for name, renderer in (("sample.pdf", PdfRenderer(io.BytesIO())), ("sample.html", HtmlRenderer(io.BytesIO()))):
        renderer.begin(header)
        for message in messages:
            renderer.message(message)
        renderer.end()
        (out / name).write_bytes(renderer.sink.getvalue())  # type: ignore[attr-defined]


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "out"))
