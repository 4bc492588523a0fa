"""Background loops: the export workers and the sweeper, each in a daemon thread."""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable

from service.errors import ServiceError

log = logging.getLogger(__name__)
BACKOFF_SECONDS = 5.0


def worker_name() -> str:
    """Who holds a lease: host, process and a random part, unique across replicas and restarts."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Loop:
    """Runs `step` in a thread until stopped; `step` returns the seconds to pause before the next run.

    A step that fails is logged and run again after a pause: a store that is
    down gets a warning, a bug a stack trace, and neither kills the loop.
    """

    def __init__(self, name: str, step: Callable[[], float]) -> None:
        self.name = name
        self.step = step
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                pause = self.step()
            except ServiceError as exc:  # a store is down: say so, back off, retry
                log.warning("%s waiting: %s", self.name, exc.message)
                pause = BACKOFF_SECONDS
            except Exception:
                log.exception("%s failed; retrying", self.name)
                pause = BACKOFF_SECONDS
            if pause > 0:
                self.stopping.wait(pause)
