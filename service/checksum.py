"""The chat's state checksum, kept incrementally.

The state is a set of elements (each live message with its id, chat position,
role and content; the title; later each current file). The checksum is the sum
of the elements' SHA-256 values modulo 2**256: an additive multiset hash. One
changed element updates it in O(1) (subtract the old value, add the new one),
so a snapshot of a 10,000-message chat costs what a snapshot of a 1-message
chat costs. Equal states give equal checksums whatever their history, which is
what lets a FULL_CHAT restore reproduce its target's checksum exactly.
"""

from __future__ import annotations

import hashlib
import json
from uuid import UUID

MODULUS = 1 << 256
ZERO = "0" * 64


def _element(*parts: object) -> int:
    # JSON gives an unambiguous, length-safe encoding of the parts.
    encoded = json.dumps(parts, ensure_ascii=False, separators=(",", ":")).encode()
    return int.from_bytes(hashlib.sha256(encoded).digest(), "big")


def message_element(message_id: UUID, position: int, role: str, content: str) -> int:
    return _element("message", str(message_id), position, role, content)


def title_element(title: str) -> int:
    """An empty title is no element, so a fresh chat's checksum is ZERO."""
    return _element("title", title) if title else 0


def file_element(name: str, checksum_sha256: str, size_bytes: int, mime_type: str) -> int:
    return _element("file", name, checksum_sha256, size_bytes, mime_type)


def to_hex(value: int) -> str:
    return format(value % MODULUS, "064x")


def from_hex(text: str) -> int:
    return int(text, 16)


class StateSum:
    """A running multiset hash."""

    def __init__(self, value: int = 0) -> None:
        self.value = value % MODULUS

    @classmethod
    def parse(cls, text: str) -> StateSum:
        return cls(from_hex(text))

    def add(self, element: int) -> None:
        self.value = (self.value + element) % MODULUS

    def remove(self, element: int) -> None:
        self.value = (self.value - element) % MODULUS

    def replace(self, old: int, new: int) -> None:
        self.remove(old)
        self.add(new)

    @property
    def hex(self) -> str:
        return to_hex(self.value)


class LiveElements:
    """The live elements of a replayed history by key (message id, file name), with running sums.

    VerifyChat and ImportChat replay a chat's history version by version and
    compare these sums with each snapshot's recorded checksum and counts.
    """

    def __init__(self) -> None:
        self.elements: dict[object, tuple[int, int]] = {}  # key -> (element, tokens)
        self.sum = StateSum()
        self.tokens = 0

    def put(self, key: object, element: int | None, tokens: int = 0) -> None:
        """The element now live under `key`; None: nothing is (deleted)."""
        old = self.elements.pop(key, None)
        if old is not None:
            self.sum.remove(old[0])
            self.tokens -= old[1]
        if element is not None:
            self.elements[key] = (element, tokens)
            self.sum.add(element)
            self.tokens += tokens

    def __len__(self) -> int:
        return len(self.elements)
