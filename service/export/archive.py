"""A ZIP written as a stream: entries go out as they are produced.

We write the format ourselves (PKWARE APPNOTE 6.3, ZIP64 where sizes or
offsets need it) instead of through the standard library's zipfile, because
zipfile computes every entry's CRC-32 as it writes: a full extra pass over
every media byte, on the path that streams to the caller. A media file's
CRC-32 and size are recorded in the vault when it is uploaded, so its local
header carries them and its bytes pass from S3 to the caller untouched.
Entries whose CRC-32 is not known in advance (the rendered documents, objects
stored before the CRC was recorded) get it computed on the way and written in
a data descriptor after their bytes, as any streaming writer does.

manifest.json comes last, listing every entry with the sha256 of its bytes
(the vault's recorded hash for media, computed here for the rest).
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import unicodedata
import zlib
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

_UNSAFE = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]+')

LIMIT_32 = 0xFFFFFFFF  # a size or offset at or above this goes into a ZIP64 field
LIMIT_16 = 0xFFFF
VERSION_DEFAULT = 20  # 2.0: deflate, directories
VERSION_ZIP64 = 45  # 4.5: ZIP64 extensions
MADE_BY = 3 << 8 | VERSION_ZIP64  # Unix, so the external attributes are permission bits
FLAG_DESCRIPTOR = 0x0008  # CRC-32 and sizes follow the data
FLAG_UTF8 = 0x0800  # names are UTF-8
STORED, DEFLATED = 0, 8
FILE_MODE = 0o100644 << 16

_LOCAL = struct.Struct("<IHHHHHIIIHH")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_DESCRIPTOR_64 = struct.Struct("<IIQQ")
_END_64 = struct.Struct("<IQHHIIQQQQ")
_LOCATOR_64 = struct.Struct("<IIQI")
_END = struct.Struct("<IHHHHIIH")


@dataclass
class Entry:
    name: str
    chunks: Iterable[bytes]
    compress: bool
    # Known already (a vault object's recorded, verified hash): not recomputed.
    sha256: str | None = None
    # Known together (recorded at upload): the bytes pass through unread.
    crc32: int | None = None
    size: int | None = None


@dataclass(frozen=True)
class _Written:
    """What the central directory says of an entry."""

    name: bytes
    flags: int
    method: int
    version: int
    crc32: int
    compressed: int
    size: int
    offset: int


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


def _dos_stamp(when: datetime) -> tuple[int, int]:
    """MS-DOS time and date (2-second resolution; the format starts in 1980)."""
    year = min(max(when.year, 1980), 2107)
    time = when.hour << 11 | when.minute << 5 | when.second // 2
    date = (year - 1980) << 9 | when.month << 5 | when.day
    return time, date


def _zip64_extra(*values: int) -> bytes:
    return struct.pack(f"<HH{len(values)}Q", 0x0001, 8 * len(values), *values) if values else b""


class ZipWriter:
    """Produces an archive's bytes entry by entry; `position` is bytes so far."""

    def __init__(self, when: datetime, force_zip64: bool = False) -> None:
        self.time, self.date = _dos_stamp(when)
        self.force_zip64 = force_zip64  # every ZIP64 field, whatever the sizes (tests use it)
        self.position = 0
        self.written: list[_Written] = []

    def _out(self, data: bytes) -> bytes:
        self.position += len(data)
        return data

    def entry(self, entry: Entry) -> Generator[bytes, None, str]:
        """The entry's local header, bytes and (if needed) data descriptor.

        Returns (through StopIteration) the sha256 of the uncompressed bytes.
        """
        name = entry.name.encode()
        offset = self.position
        method = DEFLATED if entry.compress else STORED
        known = entry.crc32 is not None and entry.size is not None and not entry.compress
        digest = hashlib.sha256() if entry.sha256 is None else None
        if known:
            assert entry.crc32 is not None and entry.size is not None
            crc, size = entry.crc32, entry.size
            wide = size >= LIMIT_32 or self.force_zip64
            flags = FLAG_UTF8
            extra = _zip64_extra(size, size) if wide else b""
            stated = LIMIT_32 if wide else size
            version = VERSION_ZIP64 if wide else VERSION_DEFAULT
        else:
            # Sizes unknown until the end: ZIP64 descriptor, so any size fits.
            crc, size, flags, version = 0, 0, FLAG_UTF8 | FLAG_DESCRIPTOR, VERSION_ZIP64
            extra, stated = _zip64_extra(0, 0), LIMIT_32
        header = _LOCAL.pack(
            0x04034B50, version, flags, method, self.time, self.date, crc if known else 0,
            stated, stated, len(name), len(extra),
        )  # fmt: skip
        yield self._out(header + name + extra)
        compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15) if entry.compress else None
        seen = compressed = 0
        for data in entry.chunks:
            seen += len(data)
            if digest is not None:
                digest.update(data)
            if not known:
                crc = zlib.crc32(data, crc)
            out = compressor.compress(data) if compressor is not None else data
            if out:
                compressed += len(out)
                yield self._out(out)
        if compressor is not None:
            tail = compressor.flush()
            compressed += len(tail)
            yield self._out(tail)
        if known and seen != size:
            raise ValueError(f"{entry.name}: {seen} bytes read, {size} recorded")
        if not known:
            size = seen
            yield self._out(_DESCRIPTOR_64.pack(0x08074B50, crc, compressed, size))
        self.written.append(_Written(name, flags, method, version, crc, compressed, size, offset))
        return entry.sha256 or (digest.hexdigest() if digest is not None else "")

    def finish(self) -> bytes:
        """The central directory and end records."""
        start = self.position
        central = bytearray()
        for w in self.written:
            wide = [
                value for value in (w.size, w.compressed, w.offset) if value >= LIMIT_32 or self.force_zip64
            ]  # APPNOTE 4.5.3: only the overflowing fields, in this order
            extra = _zip64_extra(*wide)
            central += _CENTRAL.pack(
                0x02014B50, MADE_BY, VERSION_ZIP64 if extra else w.version, w.flags, w.method,
                self.time, self.date, w.crc32,
                LIMIT_32 if w.compressed >= LIMIT_32 or self.force_zip64 else w.compressed,
                LIMIT_32 if w.size >= LIMIT_32 or self.force_zip64 else w.size,
                len(w.name), len(extra), 0, 0, 0, FILE_MODE,
                LIMIT_32 if w.offset >= LIMIT_32 or self.force_zip64 else w.offset,
            )  # fmt: skip
            central += w.name + extra
        count, size = len(self.written), len(central)
        tail = bytearray(central)
        if count >= LIMIT_16 or size >= LIMIT_32 or start >= LIMIT_32 or self.force_zip64:
            end64 = start + size
            tail += _END_64.pack(0x06064B50, 44, MADE_BY, VERSION_ZIP64, 0, 0, count, count, size, start)
            tail += _LOCATOR_64.pack(0x07064B50, 0, end64, 1)
        tail += _END.pack(
            0x06054B50, 0, 0, min(count, LIMIT_16), min(count, LIMIT_16),
            min(size, LIMIT_32), min(start, LIMIT_32), 0,
        )  # fmt: skip
        return self._out(bytes(tail))


def _manifest(entries: list[dict[str, object]]) -> Entry:
    body = json.dumps({"format_version": 1, "entries": entries}, indent=1).encode()
    return Entry("manifest.json", [body], compress=True)


def stream_zip(entries: Iterable[Entry], when: datetime, force_zip64: bool = False) -> Iterator[bytes]:
    writer = ZipWriter(when, force_zip64)
    manifest: list[dict[str, object]] = []
    for entry in entries:
        sha256 = yield from writer.entry(entry)
        manifest.append({"path": entry.name, "size_bytes": writer.written[-1].size, "sha256": sha256})
    yield from writer.entry(_manifest(manifest))  # last, once every hash is known
    yield writer.finish()
