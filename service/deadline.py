"""The deadline of the call being served, so database work never outlives it.

The gRPC layer binds the caller's remaining time (none when the caller set no
deadline); the database layer reads it to bound its statements and lock waits,
and refuses to start work for a call whose deadline has already passed.
"""

from __future__ import annotations

import contextvars
import time

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("deadline", default=None)


def bind(seconds_remaining: float | None) -> contextvars.Token[float | None]:
    return _deadline.set(None if seconds_remaining is None else time.monotonic() + seconds_remaining)


def unbind(token: contextvars.Token[float | None]) -> None:
    _deadline.reset(token)


def remaining() -> float | None:
    """Seconds left to the bound deadline (negative once passed), or None without one."""
    at = _deadline.get()
    return None if at is None else at - time.monotonic()
