"""Overlap I/O and hashing with the work that consumes them.

Socket reads and SHA-256 over large buffers release the GIL, so running them
in a helper thread lets a stream read from S3, hash and send at the same
time instead of one after the other. Queues are bounded: memory stays at a
few chunks whatever the stream's length.
"""

from __future__ import annotations

import contextlib
import hashlib
import queue
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Generic, TypeVar

T = TypeVar("T")
K = TypeVar("K")
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


class Lookahead(Generic[K, T]):
    """Opens resources a few positions ahead of their use, in helper threads.

    Taken in order, resource i was usually opened while i-1 was in use, so an
    open's latency (an S3 round trip) overlaps the work instead of adding to
    it. At most `ahead` resources are open and unused at a time; `close`
    discards those never taken.
    """

    def __init__(
        self, keys: Sequence[K], opener: Callable[[K], T], discard: Callable[[T], None], ahead: int = 4
    ) -> None:
        self._keys = keys
        self._open = opener
        self._discard = discard
        self._ahead = ahead
        self._pool = ThreadPoolExecutor(max_workers=ahead, thread_name_prefix="lookahead")
        self._opening: dict[int, Future[T]] = {}
        self._submitted = 0

    def take(self, index: int) -> T:
        """The resource for keys[index], waiting for its open if it is still running."""
        while self._submitted < min(index + 1 + self._ahead, len(self._keys)):
            if self._submitted >= index:
                self._opening[self._submitted] = self._pool.submit(self._open, self._keys[self._submitted])
            self._submitted += 1
        opening = self._opening.pop(index, None)
        return opening.result() if opening is not None else self._open(self._keys[index])

    def close(self) -> None:
        for opening in self._opening.values():
            if not opening.cancel():
                with contextlib.suppress(Exception):  # an open that failed has nothing to discard
                    self._discard(opening.result())
        self._opening.clear()
        self._pool.shutdown(wait=True)
