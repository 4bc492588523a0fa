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
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from service.errors import Unavailable
from service.slots import Slots

# VerifyChat too: it reads every object of the chat (each one's bytes, when asked).
TRANSFERS = frozenset(
    {"UploadFile", "DownloadFile", "ExportChat", "DownloadExport", "VerifyChat", "ImportChat", "EraseTenant"}
)


class Admission:
    def __init__(self, transfer_slots: int) -> None:
        self.limit = transfer_slots
        self.slots = Slots(transfer_slots)

    @contextmanager
    def admit(self, method_name: str) -> Iterator[None]:
        """Hold a transfer slot for the call's life (nothing for other calls)."""
        if method_name not in TRANSFERS:
            yield
            return
        if not self.slots.take():
            raise Unavailable(f"this server is busy with {self.limit} transfers; retry shortly")
        try:
            yield
        finally:
            self.slots.give_back()


class IdleGuard:
    """Cancels a call whose client sends nothing for `seconds` while we wait for it.

    A client that stays connected (so it answers keepalive pings) but stops
    sending mid-upload would hold a transfer slot and an S3 multipart upload
    for ever. Only time spent waiting on the client counts: a slow store on
    our side never trips it. Cancelling ends the call as a client's cancel
    does, and the upload cleans up after itself.
    """

    def __init__(self, cancel: Callable[[], object], seconds: float) -> None:
        self._cancel = cancel
        self._seconds = seconds
        self._waiting_since: float | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="idle-guard", daemon=True)
        self._thread.start()

    def waiting(self) -> None:
        self._waiting_since = time.monotonic()

    def received(self) -> None:
        self._waiting_since = None

    def _run(self) -> None:
        while not self._done.wait(min(1.0, self._seconds / 4)):
            since = self._waiting_since
            if since is not None and time.monotonic() - since > self._seconds:
                self._cancel()
                return

    def close(self) -> None:
        self._done.set()
        self._thread.join(timeout=5)
