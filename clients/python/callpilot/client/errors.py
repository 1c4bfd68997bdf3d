"""SDK errors: a gRPC status unpacked into something a program can act on."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import cast

import grpc
from google.rpc import error_details_pb2, status_pb2

DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True, slots=True)
class FieldViolation:
    field: str
    description: str
    reason: str = ""


@dataclass(slots=True)
class CallpilotError(Exception):
    """A failed RPC, with the google.rpc details the server attached."""

    code: grpc.StatusCode
    message: str
    reason: str = ""
    violations: list[FieldViolation] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    # Seconds the server asks the client to wait before retrying (google.rpc.RetryInfo), if it said.
    retry_delay_s: float | None = None

    def __str__(self) -> str:
        text = f"{self.code.name}: {self.message}"
        if self.violations and not all(v.field in self.message for v in self.violations):
            text += " (" + "; ".join(f"{v.field}: {v.description}" for v in self.violations) + ")"
        return text

    @property
    def retryable(self) -> bool:
        return self.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)

    @classmethod
    def from_rpc_error(cls, err: grpc.aio.AioRpcError) -> CallpilotError:
        error = cls(code=err.code(), message=err.details() or err.code().name)
        # grpc.aio metadata iterates as (key, value) pairs; the stubs say otherwise.
        pairs = cast(Iterable[tuple[str, str | bytes]], err.trailing_metadata() or ())
        for key, value in pairs:
            if key == DETAILS_KEY and isinstance(value, bytes):
                error._read_details(value)
        return error

    def _read_details(self, raw: bytes) -> None:
        status = status_pb2.Status.FromString(raw)
        for detail in status.details:
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                self.violations.extend(
                    FieldViolation(v.field, v.description, v.reason) for v in bad.field_violations
                )
            elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                self.reason = info.reason
                self.metadata.update(info.metadata)
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry = error_details_pb2.RetryInfo()
                detail.Unpack(retry)
                self.retry_delay_s = retry.retry_delay.ToNanoseconds() / 1e9
