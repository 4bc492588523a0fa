"""Prefetching and background hashing: same results, errors carried, no threads left."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator

import pytest

from service.pipeline import BackgroundDigest, prefetch


def test_prefetch_yields_everything_in_order() -> None:
    assert list(prefetch(iter(range(1000)), depth=3)) == list(range(1000))


def test_prefetch_raises_the_sources_error_after_its_items() -> None:
    def failing() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("broken source")

    seen = []
    with pytest.raises(ValueError, match="broken source"):
        for item in prefetch(failing()):
            seen.append(item)
    assert seen == [1, 2]


def test_an_early_stop_stops_and_closes_the_source() -> None:
    closed = threading.Event()

    def endless() -> Iterator[int]:
        try:
            n = 0
            while True:
                n += 1
                yield n
        finally:
            closed.set()

    stream = prefetch(endless(), depth=2)
    assert next(stream) == 1
    stream.close()
    assert closed.wait(5)
    deadline = time.monotonic() + 5
    while any(t.name == "prefetch" for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not any(t.name == "prefetch" for t in threading.enumerate())


def test_background_digest_equals_hashlib() -> None:
    chunks = [bytes([i]) * (100_000 + i) for i in range(20)]
    digest = BackgroundDigest(depth=2)
    for chunk in chunks:
        digest.update(chunk)
    assert digest.hexdigest() == hashlib.sha256(b"".join(chunks)).hexdigest()
    digest.close()  # closing twice is harmless
