"""Who may use a browser call, when the gateway runs with auth on.

The gateway holds no credential of its own that a browser could borrow
(its SDK client is keyless). With `CALLPILOT_AUTH` on:

* **Customer** (`/call`): starting a call needs a join token minted by an
  integrator (CreateCall returns one). The gateway streams the call with that
  token, so the server checks it, consumes it (single use) and refuses an
  expired or reused one; `POST /api/calls/start` then answers 401 with the
  server's reason (JOIN_TOKEN_EXPIRED, JOIN_TOKEN_USED, INVALID_JOIN_TOKEN).
  The start's answer carries a `customer_token`, a random secret of that one
  call, which the page presents for its own leg (offer, hangup, websocket).
* **Agent** (`/answer`, the waiting list, a call's state and events): the
  agent's key or JWT, checked by the server on each request (GetCall on the
  call, ListCalls for the list), so roles and tenants are the server's.

A credential travels as `Authorization: Bearer …`, or as `access_token` in
the query string where a browser cannot set headers (WebSocket, EventSource,
sendBeacon). With auth off (a loopback development gateway) nothing is asked.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator

import grpc
import grpc.aio
from aiohttp import web
from callpilot.client import CallpilotError
from callpilot.gateway.keys import CLIENT, SETTINGS
from callpilot.gateway.webrtc.errors import ApiError
from callpilot.v1 import assist_service_pb2, assist_service_pb2_grpc, events_pb2

CHECK_TIMEOUT_S = 10.0
"""How long a credential check waits for the server."""


def auth_on(request: web.Request) -> bool:
    return request.app[SETTINGS].auth_enabled


def credential(request: web.Request) -> str:
    """The bearer credential the request carries ("" when none)."""
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise ApiError(401, "MALFORMED_CREDENTIALS", "the Authorization header must read: Bearer <key>")
        return value.strip()
    return request.query.get("access_token", "").strip()


def rejection(err: grpc.aio.AioRpcError) -> ApiError | None:
    """The page's error for an authentication/authorization failure (with the server's reason), else None."""
    parsed = CallpilotError.from_rpc_error(err)
    if parsed.code == grpc.StatusCode.UNAUTHENTICATED:
        return ApiError(401, parsed.reason or "UNAUTHENTICATED", parsed.message or "not signed in")
    if parsed.code == grpc.StatusCode.PERMISSION_DENIED:
        return ApiError(403, parsed.reason or "PERMISSION_DENIED", parsed.message or "not allowed")
    return None


async def require_agent(request: web.Request, call_id: str | None) -> str:
    """With auth on: the request's agent credential, checked by the server; "" with auth off.

    `call_id` given: GetCall on it (the agent's tenant must own the call); else ListCalls.
    """
    if not auth_on(request):
        return ""
    token = credential(request)
    if not token:
        raise ApiError(
            401, "MISSING_CREDENTIALS", "sign in: send the agent's key or token as Authorization: Bearer"
        )
    stub = assist_service_pb2_grpc.AssistServiceStub(request.app[CLIENT].channel)
    metadata = (("authorization", f"Bearer {token}"),)
    try:
        if call_id is None:
            await stub.ListCalls(
                assist_service_pb2.ListCallsRequest(page_size=1), metadata=metadata, timeout=CHECK_TIMEOUT_S
            )
        else:
            await stub.GetCall(
                assist_service_pb2.GetCallRequest(call_id=call_id), metadata=metadata, timeout=CHECK_TIMEOUT_S
            )
    except grpc.aio.AioRpcError as err:
        refused = rejection(err)
        if refused is not None:
            raise refused from None
        if err.code() == grpc.StatusCode.NOT_FOUND:
            raise ApiError(404, "CALL_NOT_FOUND", f"no call {call_id} for this agent") from None
        raise ApiError(503, "SERVER_UNAVAILABLE", f"cannot check the credential: {err.details()}") from None
    return token


def require_customer(request: web.Request, expected: str) -> None:
    """With auth on, the request must carry the call's customer token (constant-time compare)."""
    if not auth_on(request):
        return
    token = credential(request)
    if not token or not hmac.compare_digest(token.encode(), expected.encode()):
        raise ApiError(
            401,
            "INVALID_CUSTOMER_TOKEN",
            "this page's call token is missing or wrong; open the call link again",
        )


async def watch_as(
    request: web.Request, token: str, call_id: str, from_sequence: int
) -> AsyncIterator[events_pb2.CallEvent]:
    """WatchCall on the gateway's channel with the agent's credential as this call's metadata
    (no channel per request); without a credential (auth off), the SDK's resuming watch.

    The browser's EventSource resumes a dropped stream itself (Last-Event-ID), so the
    credentialed path does not retry. Errors come out as CallpilotError.
    """
    client = request.app[CLIENT]
    if not token:
        async for event in client.watch_call(call_id, from_sequence=from_sequence):
            yield event
        return
    stub = assist_service_pb2_grpc.AssistServiceStub(client.channel)
    stream = stub.WatchCall(
        assist_service_pb2.WatchCallRequest(call_id=call_id, from_sequence=from_sequence),
        metadata=(("authorization", f"Bearer {token}"),),
    )
    try:
        async for response in stream:
            yield response.event
    except grpc.aio.AioRpcError as err:
        raise CallpilotError.from_rpc_error(err) from None
    finally:
        stream.cancel()
