"""Errors that become gRPC statuses with google.rpc details.

Pipeline stages raise these; the API layer turns them into a status whose
message a person can act on and whose details name the offending field, so
SDK users and grpcurl users see the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc


@dataclass(frozen=True, slots=True)
class Violation:
    """One bad field: a path like "config.audio.sample_rate_hertz", and why."""

    field: str
    description: str
    reason: str = "INVALID"


class CallpilotError(Exception):
    """Base class; carries the status code it maps to."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    reason: str = "INTERNAL"

    def __init__(
        self,
        message: str,
        *,
        metadata: dict[str, str] | None = None,
        violations: list[Violation] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.metadata = metadata or {}
        # Fields at fault; sent as a google.rpc.BadRequest detail whatever the code.
        self.violations: list[Violation] = violations or []


class InvalidArgument(CallpilotError):
    """Bad input; the violations become a google.rpc.BadRequest detail."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "INVALID_ARGUMENT"

    def __init__(self, violations: list[Violation] | Violation, message: str | None = None) -> None:
        vs = [violations] if isinstance(violations, Violation) else list(violations)
        super().__init__(message or "; ".join(f"{v.field}: {v.description}" for v in vs), violations=vs)


class NotFound(CallpilotError):
    code = grpc.StatusCode.NOT_FOUND
    reason = "NOT_FOUND"

    def __init__(
        self, message: str, *, reason: str = "NOT_FOUND", metadata: dict[str, str] | None = None
    ) -> None:
        super().__init__(message, metadata=metadata)
        self.reason = reason


class AlreadyExists(CallpilotError):
    code = grpc.StatusCode.ALREADY_EXISTS
    reason = "ALREADY_EXISTS"


class FailedPrecondition(CallpilotError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "FAILED_PRECONDITION"

    def __init__(
        self, message: str, *, reason: str = "FAILED_PRECONDITION", metadata: dict[str, str] | None = None
    ) -> None:
        super().__init__(message, metadata=metadata)
        self.reason = reason


class ResourceExhausted(CallpilotError):
    """Over a limit; `retry_delay_s`, when set, becomes a google.rpc.RetryInfo detail."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "RESOURCE_EXHAUSTED"

    def __init__(
        self,
        message: str,
        *,
        reason: str = "RESOURCE_EXHAUSTED",
        metadata: dict[str, str] | None = None,
        retry_delay_s: float | None = None,
    ) -> None:
        super().__init__(message, metadata=metadata)
        self.reason = reason
        self.retry_delay_s = retry_delay_s


class Unavailable(CallpilotError):
    """Try again later (or elsewhere); `retry_delay_s`, when set, becomes a RetryInfo."""

    code = grpc.StatusCode.UNAVAILABLE
    reason = "UNAVAILABLE"

    def __init__(
        self,
        message: str,
        *,
        reason: str = "UNAVAILABLE",
        metadata: dict[str, str] | None = None,
        retry_delay_s: float | None = None,
    ) -> None:
        super().__init__(message, metadata=metadata)
        self.reason = reason
        self.retry_delay_s = retry_delay_s


@dataclass(slots=True)
class ConfigError(Exception):
    """A bad server configuration, reported at start-up."""

    message: str
    hints: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return self.message
