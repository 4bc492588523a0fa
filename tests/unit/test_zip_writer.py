"""The streaming ZIP writer, read back by zipfile and by Info-ZIP's unzip."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import zipfile
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from service.export.archive import Entry, stream_zip

WHEN = datetime(2026, 11, 26, 14, 37, 53, tzinfo=UTC)


def chunks(data: bytes, size: int = 1000) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def sample() -> dict[str, bytes]:
    return {
        "chat.json": json.dumps({"text": "héllo " * 500}).encode(),
        "media/photo.jpg": os.urandom(5000),
        "media/legacy.bin": os.urandom(3000),
        "media/empty.txt": b"",
        "media/日本語.txt": "中文 текст".encode(),
    }


def entries(files: dict[str, bytes]) -> list[Entry]:
    out = []
    for name, data in files.items():
        if name == "chat.json":
            out.append(Entry(name, chunks(data), compress=True))
        elif name == "media/legacy.bin":  # an object stored before CRCs were recorded
            out.append(Entry(name, chunks(data), compress=False, sha256=hashlib.sha256(data).hexdigest()))
        else:
            out.append(
                Entry(
                    name,
                    chunks(data),
                    compress=False,
                    sha256=hashlib.sha256(data).hexdigest(),
                    crc32=zlib.crc32(data),
                    size=len(data),
                )
            )
    return out


@pytest.mark.parametrize("force_zip64", [False, True], ids=["plain", "zip64"])
def test_archive_reads_back_entry_for_entry(force_zip64: bool, tmp_path: Path) -> None:
    files = sample()
    data = b"".join(stream_zip(entries(files), WHEN, force_zip64=force_zip64))
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        assert archive.namelist() == [*files, "manifest.json"]
        for name, body in files.items():
            assert archive.read(name) == body
            info = archive.getinfo(name)
            assert info.date_time == (2026, 11, 26, 14, 37, 52)
            assert info.compress_type == (zipfile.ZIP_DEFLATED if name == "chat.json" else zipfile.ZIP_STORED)
            # Recorded CRCs go in the header; others follow the bytes in a descriptor.
            recorded = name.startswith("media/") and name != "media/legacy.bin"
            assert bool(info.flag_bits & 0x08) is not recorded
        manifest = json.loads(archive.read("manifest.json"))
        assert manifest["entries"] == [
            {"path": name, "size_bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}
            for name, body in files.items()
        ]
    path = tmp_path / "out.zip"
    path.write_bytes(data)
    if shutil.which("unzip") is None:
        pytest.skip("Info-ZIP unzip is not installed; zipfile alone checked the archive")
    tested = subprocess.run(["unzip", "-t", str(path)], capture_output=True, text=True, check=False)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "No errors detected" in tested.stdout


def test_recorded_media_passes_through_without_a_copy() -> None:
    pieces = [os.urandom(4096) for _ in range(3)]
    body = b"".join(pieces)
    entry = Entry("media/a.bin", pieces, compress=False, sha256="0" * 64, crc32=zlib.crc32(body), size=len(body))
    out = list(stream_zip([entry], WHEN))
    assert all(any(piece is chunk for chunk in out) for piece in pieces)


def test_a_wrong_recorded_crc_is_caught_by_readers() -> None:
    body = os.urandom(2000)
    entry = Entry("media/a.bin", [body], compress=False, crc32=zlib.crc32(body) ^ 1, size=len(body))
    data = b"".join(stream_zip([entry], WHEN))
    with zipfile.ZipFile(io.BytesIO(data)) as archive, pytest.raises(zipfile.BadZipFile, match="CRC"):
        archive.read("media/a.bin")


@pytest.mark.parametrize("actual", [999, 1001])
def test_bytes_that_differ_from_the_recorded_size_abort_the_archive(actual: int) -> None:
    body = os.urandom(actual)
    entry = Entry("media/a.bin", [body], compress=False, crc32=zlib.crc32(body), size=1000)
    with pytest.raises(ValueError, match="recorded"):
        b"".join(stream_zip([entry], WHEN))


def test_an_archive_past_4_gib_reads_back_through_zip64(tmp_path: Path) -> None:
    """A 4 GiB + 10 byte entry, then a small one at an offset past 4 GiB.

    The zero bytes are skipped with seek (a sparse file), so this is quick.
    """
    zeros = bytes(64 * 1024 * 1024)
    big = (1 << 32) + 10
    pieces = [zeros] * (big // len(zeros)) + [bytes(big % len(zeros))]
    after = b"after the big one"
    path = tmp_path / "big.zip"
    with path.open("wb") as sink:
        archive_entries = [
            Entry("media/zeros.bin", pieces, compress=False, sha256="0" * 64, crc32=0, size=big),
            Entry("media/after.txt", [after], compress=False, crc32=zlib.crc32(after), size=len(after)),
        ]
        for chunk in stream_zip(archive_entries, WHEN):
            if chunk is zeros:
                sink.seek(len(chunk), os.SEEK_CUR)
            else:
                sink.write(chunk)
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("media/zeros.bin")
        assert info.file_size == info.compress_size == big
        assert archive.getinfo("media/after.txt").header_offset > 1 << 32
        assert archive.read("media/after.txt") == after
        manifest = json.loads(archive.read("manifest.json"))
        assert [e["size_bytes"] for e in manifest["entries"]] == [big, len(after)]
    if shutil.which("unzip") is not None:  # Info-ZIP parses the ZIP64 records too
        listed = subprocess.run(["unzip", "-l", str(path)], capture_output=True, text=True, check=True)
        assert str(big) in listed.stdout and "media/after.txt" in listed.stdout
