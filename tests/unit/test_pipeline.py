"""Prefetching and background hashing: same results, errors carried, no threads left."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator

import pytest

from service.pipeline import BackgroundDigest, Lookahead, prefetch


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


def test_lookahead_opens_ahead_in_order_and_close_discards_the_untaken() -> None:
    opened: list[int] = []
    discarded: list[str] = []
    started, gate = threading.Event(), threading.Event()

    def open_one(key: int) -> str:
        if key == 5:
            started.set()
            gate.wait(5)  # still opening when close() comes
        opened.append(key)
        return f"r{key}"

    ahead = Lookahead(list(range(10)), open_one, discarded.append, ahead=3)
    assert ahead.take(0) == "r0" and ahead.take(1) == "r1"
    deadline = time.monotonic() + 5
    while len(opened) < 5 and time.monotonic() < deadline:  # 2, 3 and 4 open while 1 is in use
        time.sleep(0.01)
    assert sorted(opened) == [0, 1, 2, 3, 4]
    assert ahead.take(2) == "r2"  # opened earlier; asks for 5 now
    assert started.wait(5)
    threading.Timer(0.2, gate.set).start()
    ahead.close()  # waits for the open in progress, then discards it too
    assert sorted(discarded) == ["r3", "r4", "r5"]  # opened, never taken
    assert not any(t.name.startswith("lookahead") for t in threading.enumerate())
