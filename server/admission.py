"""Admission for calls that hold a worker thread for long: byte transfers.

Each gRPC call runs on one worker thread for its whole life, and an upload,
download or export over a slow link can take minutes. Without a cap a burst
of them would take every thread, and SaveMessage would wait behind them.
Transfers get at most half the threads (open watches a quarter, see
service/events.py), so short calls always find one free; a transfer over the
cap is told UNAVAILABLE, with a retry delay, at once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from service.errors import Unavailable

TRANSFERS = frozenset({"UploadFile", "DownloadFile", "ExportChat", "DownloadExport"})


class Admission:
    def __init__(self, transfer_slots: int) -> None:
        self.limit = transfer_slots
        self._slots = threading.BoundedSemaphore(transfer_slots)

    @contextmanager
    def admit(self, method_name: str) -> Iterator[None]:
        """Hold a transfer slot for the call's life (nothing for other calls)."""
        if method_name not in TRANSFERS:
            yield
            return
        if not self._slots.acquire(blocking=False):
            raise Unavailable(f"this server is busy with {self.limit} transfers; retry shortly")
        try:
            yield
        finally:
            self._slots.release()
