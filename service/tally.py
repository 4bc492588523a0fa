"""Counts kept by the parts that do the work, read by the metrics at scrape time (server/metrics.py)."""

from __future__ import annotations

import threading


class Tally:
    """Monotonic counts by name, safe to add to from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + amount

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)
