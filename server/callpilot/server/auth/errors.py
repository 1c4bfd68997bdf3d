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
