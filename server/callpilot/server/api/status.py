"""Turning Callpilot errors into gRPC statuses with google.rpc details.

Clients get the status code, a message a person can act on, and a
google.rpc.Status carrying BadRequest field violations, an ErrorInfo and,
for an error with a `retry_delay_s` attribute (rate limits, admission,
drain), a RetryInfo, the way Google APIs report errors. grpcio-status (`grpc_status.rpc_status`) puts
that Status in the `grpc-status-details-bin` trailer, keeping its code and
message equal to the call's (the invariant rich-status clients check).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import wraps
from typing import Any, NoReturn, TypeVar

import grpc
from callpilot.server.errors import CallpilotError
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

log = logging.getLogger("callpilot.api")

DOMAIN = "callpilot.dev"

T = TypeVar("T")


def rich_status(err: CallpilotError) -> status_pb2.Status:
    details: list[any_pb2.Any] = []
    if err.violations:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=v.field, description=v.description, reason=v.reason
                )
                for v in err.violations
            ]
        )
        packed = any_pb2.Any()
        packed.Pack(bad)
        details.append(packed)
    info = error_details_pb2.ErrorInfo(reason=err.reason, domain=DOMAIN, metadata=err.metadata)
    packed_info = any_pb2.Any()
    packed_info.Pack(info)
    details.append(packed_info)
    # Any error that knows when to come back (rate limits, admission, drain) says so.
    delay = getattr(err, "retry_delay_s", None)
    if isinstance(delay, int | float) and delay > 0:
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromNanoseconds(int(delay * 1e9))
        packed_retry = any_pb2.Any()
        packed_retry.Pack(retry)
        details.append(packed_retry)
    code = err.code.value[0]
    return status_pb2.Status(code=code, message=err.message, details=details)


async def _abort_with(context: grpc.aio.ServicerContext[Any, Any], status: status_pb2.Status) -> NoReturn:
    """End the call with `status` as its code, message and details (grpc_status builds the trailer)."""
    rich: grpc.Status = rpc_status.to_status(status)
    await context.abort(rich.code, rich.details, trailing_metadata=rich.trailing_metadata)
    raise AssertionError("unreachable")  # context.abort always raises


async def abort(context: grpc.aio.ServicerContext[Any, Any], err: CallpilotError) -> NoReturn:
    await _abort_with(context, rich_status(err))


async def abort_internal(context: grpc.aio.ServicerContext[Any, Any], exc: BaseException) -> NoReturn:
    log.error("internal error", exc_info=exc)
    status = status_pb2.Status(
        code=code_pb2.INTERNAL, message="internal server error; the server log has details"
    )
    await _abort_with(context, status)


def unary(
    fn: Callable[[Any, Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[T]],
) -> Callable[[Any, Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[T]]:
    """Map Callpilot errors raised by a unary handler to rich statuses."""

    @wraps(fn)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> T:
        try:
            return await fn(self, request, context)
        except CallpilotError as err:
            await abort(context, err)
        except (grpc.aio.AbortError, grpc.aio.UsageError):
            raise
        except Exception as exc:
            await abort_internal(context, exc)

    return wrapper


def streaming(
    fn: Callable[[Any, Any, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[T]],
) -> Callable[[Any, Any, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[T]]:
    """Map Callpilot errors raised by a server-streaming handler to rich statuses."""

    @wraps(fn)
    async def wrapper(
        self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[T]:
        try:
            async for item in fn(self, request, context):
                yield item
        except CallpilotError as err:
            await abort(context, err)
        except (grpc.aio.AbortError, grpc.aio.UsageError):
            raise
        except Exception as exc:
            await abort_internal(context, exc)

    return wrapper
