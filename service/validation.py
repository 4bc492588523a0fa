"""Request checks that collect every bad field before failing (AIP-193 BadRequest)."""

from __future__ import annotations

import json
import re
from datetime import date
from functools import cache
from typing import Any, TypeVar
from uuid import UUID
from zoneinfo import available_timezones

from service.errors import FieldViolation, InvalidArgument

T = TypeVar("T")
# Matched with fullmatch: `$` would also match before a trailing newline.
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# A media type as RFC 6838 names them, with optional parameters; no spaces
# or control characters around the type, so it is safe in an HTTP header.
_TOKEN = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
_MIME = re.compile(rf"{_TOKEN}/{_TOKEN}(?: *; *{_TOKEN}=(?:{_TOKEN}|\"[^\"\x00-\x1f\x7f]*\"))*")
MAX_SHORT_TEXT = 1000  # titles, reasons, descriptions, model ids (bytes)
MAX_METADATA_BYTES = 64 * 1024
MAX_REQUEST_ID = 200
MAX_IDS = 10_000


@cache
def _zones() -> frozenset[str]:
    # "localtime" names the server's own zone, not an IANA zone; PostgreSQL rejects it.
    return frozenset(available_timezones()) - {"localtime"}


def parse_uuid(value: str) -> UUID | None:
    return UUID(value) if _UUID.fullmatch(value) else None


class Checker:
    """Collects field violations; `done()` raises them all at once."""

    def __init__(self) -> None:
        self.violations: list[FieldViolation] = []

    def fail(self, field: str, description: str) -> None:
        self.violations.append(FieldViolation(field, description))

    def done(self) -> None:
        if self.violations:
            raise InvalidArgument(self.violations)

    def uuid(self, field: str, value: str, *, required: bool = True) -> UUID | None:
        if value == "":
            if required:
                self.fail(field, "is required")
            return None
        parsed = parse_uuid(value)
        if parsed is None:
            self.fail(field, "must be a UUID such as 123e4567-e89b-12d3-a456-426614174000")
        return parsed

    def uuids(self, field: str, values: list[str]) -> list[UUID]:
        if len(values) > MAX_IDS:
            self.fail(field, f"must hold at most {MAX_IDS} ids")
            return []
        parsed = [self.uuid(f"{field}[{i}]", v) for i, v in enumerate(values)]
        return [p for p in parsed if p is not None]

    def text(self, field: str, value: str, *, max_bytes: int = MAX_SHORT_TEXT, required: bool = False) -> str:
        if required and value.strip() == "":
            self.fail(field, "is required")
        elif "\x00" in value:
            self.fail(field, "must not contain NUL characters")
        elif len(value.encode()) > max_bytes:
            self.fail(field, f"must be at most {max_bytes} bytes of UTF-8")
        return value

    def request_id(self, value: str) -> str | None:
        if value == "":
            return None
        self.text("request_id", value, max_bytes=MAX_REQUEST_ID)
        return value

    def enum(self, field: str, value: T | None) -> T | None:
        if value is None:
            self.fail(field, "is required and must be one of the enum's named values")
        return value

    def non_negative(self, field: str, value: int) -> int:
        if value < 0:
            self.fail(field, "must not be negative")
        return value

    def expected_version(self, value: int | None) -> int | None:
        if value is not None and value < 0:
            self.fail("expected_version", "must not be negative")
        return value

    def metadata(self, field: str, value: dict[str, Any]) -> dict[str, Any]:
        try:
            encoded = json.dumps(value, ensure_ascii=False, allow_nan=False)
        except ValueError:  # JSON (and PostgreSQL's jsonb) has no NaN or Infinity
            self.fail(field, "numbers must be finite (no NaN or Infinity)")
            return value
        if "\\u0000" in encoded:
            self.fail(field, "must not contain NUL characters")
        elif len(encoded.encode()) > MAX_METADATA_BYTES:
            self.fail(field, f"must encode to at most {MAX_METADATA_BYTES} bytes of JSON")
        return value

    def time_zone(self, field: str, value: str) -> str:
        if value == "":
            return "UTC"
        if value not in _zones() and value != "UTC":
            self.fail(field, "must be an IANA time zone such as Europe/Berlin")
            return "UTC"
        return value

    def date(self, field: str, value: str) -> date | None:
        if not _DATE.fullmatch(value):
            self.fail(field, "must be a date YYYY-MM-DD")
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            self.fail(field, "is not a calendar date")
            return None

    def mime_type(self, field: str, value: str) -> str:
        if value and not _MIME.fullmatch(value):
            self.fail(field, "must be a media type such as text/plain or application/pdf")
        return value

    def page_size(self, field: str, value: int, *, default: int, maximum: int) -> int:
        if value < 0:
            self.fail(field, "must not be negative")
            return default
        return min(value, maximum) if value else default
