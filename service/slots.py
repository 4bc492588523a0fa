"""A fixed number of slots, taken without waiting, and counted (for metrics)."""

from __future__ import annotations

import threading


class Slots:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        """A slot if one is free; False at once when all are taken."""
        with self._lock:
            if self.in_use >= self.limit:
                return False
            self.in_use += 1
            return True

    def give_back(self) -> None:
        with self._lock:
            if self.in_use <= 0:
                raise RuntimeError("a slot was given back that was never taken")
            self.in_use -= 1
