"""A ZIP written as a stream: entries go out as they are produced.

The standard library's zipfile writes to a sink that cannot seek by using
data descriptors; our sink only collects what it is given until the generator
hands it on. Media bytes pass straight from S3 into the archive, so memory
stays bounded whatever the media size. manifest.json comes last, listing every
entry with the sha256 of its bytes as they were written.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import unicodedata
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

CHUNK = 1024 * 1024
_UNSAFE = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]+')


class _Sink(io.RawIOBase):
    """Collects the archive's bytes until they are drained.

    It keeps the pieces zipfile hands it (media chunks pass through without
    a copy) rather than joining them.
    """

    def __init__(self) -> None:
        self.pieces: list[bytes] = []
        self.pending = 0
        self.position = 0

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        return self.position

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.pieces.append(bytes(data))
        self.pending += len(data)
        self.position += len(data)
        return len(data)

    def drain(self) -> list[bytes]:
        pieces, self.pieces, self.pending = self.pieces, [], 0
        return pieces


@dataclass
class Entry:
    name: str
    chunks: Iterable[bytes]
    compress: bool
    # Known already (a vault object's recorded, verified hash): not recomputed.
    sha256: str | None = None


def safe_name(name: str, taken: set[str], suffix: str = "") -> str:
    """A file name safe on every file system and unique within `taken`.

    Directories, control characters and characters Windows forbids go; the
    extension is kept; a clash gets " (2)", " (3)" …
    """
    base = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    base = _UNSAFE.sub("_", base).strip(" .") or "file"
    stem, dot, ext = base.rpartition(".")
    if not dot or not stem:
        stem, ext = base, ""
    stem = stem[:100] + suffix
    ext = ext[:20]
    candidate = f"{stem}.{ext}" if ext else stem
    counter = 2
    while candidate.lower() in taken:
        candidate = f"{stem} ({counter}).{ext}" if ext else f"{stem} ({counter})"
        counter += 1
    taken.add(candidate.lower())
    return candidate


def _manifest(entries: list[dict[str, object]]) -> Entry:
    body = json.dumps({"format_version": 1, "entries": entries}, indent=1).encode()
    return Entry("manifest.json", [body], compress=True)


def stream_zip(entries: Iterable[Entry], when: datetime) -> Iterator[bytes]:
    sink = _Sink()
    manifest: list[dict[str, object]] = []
    stamp = (when.year, when.month, when.day, when.hour, when.minute, when.second)
    with zipfile.ZipFile(sink, mode="w") as archive:
        for item in [*entries, None]:
            entry = item or _manifest(manifest)  # the manifest last, once every hash is known
            info = zipfile.ZipInfo(entry.name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED if entry.compress else zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            digest, size = hashlib.sha256(), 0
            with archive.open(info, mode="w", force_zip64=True) as out:
                for chunk in entry.chunks:
                    out.write(chunk)
                    if entry.sha256 is None:
                        digest.update(chunk)
                    size += len(chunk)
                    if sink.pending >= CHUNK:
                        yield from sink.drain()
            if entry.name != "manifest.json":
                manifest.append({"path": entry.name, "size_bytes": size, "sha256": entry.sha256 or digest.hexdigest()})
            yield from sink.drain()
    yield from sink.drain()
