"""Overlap I/O and hashing with the work that consumes them.

Socket reads and SHA-256 over large buffers release the GIL, so running them
in a helper thread lets a stream read from S3, hash and send at the same
time instead of one after the other. Queues are bounded: memory stays at a
few chunks whatever the stream's length.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Generator, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
_DONE = object()


def prefetch(source: Iterator[T], depth: int = 4) -> Generator[T, None, None]:
    """Yield what `source` yields, produced in a thread up to `depth` items ahead.

    An exception in the source is raised here; a consumer that stops early
    stops the producer too.
    """
    items: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: Any) -> bool:
        """Hand an item over unless the consumer has gone; False when it has."""
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in source:
                if not offer(item):
                    return
            offer(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            offer(exc)
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


class BackgroundDigest:
    """SHA-256 computed in a helper thread as data is handed to it."""

    def __init__(self, depth: int = 8) -> None:
        self._digest = hashlib.sha256()
        self._items: queue.Queue[bytes | None] = queue.Queue(maxsize=depth)
        self._thread = threading.Thread(target=self._run, name="digest", daemon=True)
        self._thread.start()
        self._closed = False

    def _run(self) -> None:
        while (data := self._items.get()) is not None:
            self._digest.update(data)

    def update(self, data: bytes) -> None:
        self._items.put(data)

    def hexdigest(self) -> str:
        self.close()
        return self._digest.hexdigest()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._items.put(None)
            self._thread.join()
