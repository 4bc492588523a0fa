"""Domain errors. One class each; server/ maps them to gRPC codes in one place.

Messages are meant for callers: they never carry SQL, driver text or stack traces.
"""

from __future__ import annotations

from dataclasses import dataclass


class ServiceError(Exception):
    """The request could not be served."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def message(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class FieldViolation:
    """One bad field of a request (google.rpc.BadRequest.FieldViolation)."""

    field: str
    description: str


class InvalidArgument(ServiceError):
    """The request is malformed."""

    def __init__(self, violations: list[FieldViolation]) -> None:
        self.violations = violations
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in violations))


class NotFound(ServiceError):
    """The resource does not exist."""


class AlreadyExists(ServiceError):
    """The resource exists already."""


class Aborted(ServiceError):
    """The chat changed since the version the caller expected; re-read and retry."""


class FailedPrecondition(ServiceError):
    """The resource is not in a state that allows this call."""


class ResourceExhausted(ServiceError):
    """A size limit was exceeded."""


class Unavailable(ServiceError):
    """A backing store is unreachable; retry later."""


class DataLoss(ServiceError):
    """Stored bytes differ from what was recorded: permanent, not worth a retry."""


class DeadlineExceeded(ServiceError):
    """The caller's deadline passed before the work could be done."""


class Cancelled(ServiceError):
    """The caller cancelled the call."""


class Unauthenticated(ServiceError):
    """The caller's identity is missing or malformed."""


class ConfigurationError(Exception):
    """The service's own configuration is wrong (raised at start, never to callers)."""
