"""Why a credential was refused, as the reason an ErrorInfo carries."""

from __future__ import annotations

import grpc
from callpilot.server.errors import CallpilotError


class CredentialRejected(Exception):
    """A credential that is missing, malformed, unknown, revoked, expired or
    otherwise unacceptable. `reason` goes into the status's ErrorInfo (e.g.
    ``INVALID_API_KEY``, ``TOKEN_EXPIRED``); `message` is for a person and never
    contains the credential itself."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class Unauthenticated(CallpilotError):
    """No credential, or one that identifies nobody: UNAUTHENTICATED."""

    code = grpc.StatusCode.UNAUTHENTICATED

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class PermissionDenied(CallpilotError):
    """A valid credential whose role may not call this method: PERMISSION_DENIED."""

    code = grpc.StatusCode.PERMISSION_DENIED

    def __init__(self, reason: str, message: str, metadata: dict[str, str]) -> None:
        super().__init__(message, metadata=metadata)
        self.reason = reason


class RateLimited(CallpilotError):
    """Over the tenant's request rate: RESOURCE_EXHAUSTED with a RetryInfo."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "RATE_LIMITED"

    def __init__(self, retry_delay_s: float, rate: float) -> None:
        super().__init__(
            f"this tenant is over its limit of {rate:g} requests per second; retry in {retry_delay_s:.2f}s",
            metadata={"limit_per_second": f"{rate:g}"},
        )
        self.retry_delay_s = retry_delay_s
