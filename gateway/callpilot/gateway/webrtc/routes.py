"""HTTP and websocket signalling for browser calls, and the two pages.

    POST /api/calls/start              {customer_hint?} -> {call_id, customer_id}
    GET  /api/webrtc/ice-servers       -> {iceServers: [...], expiresAt?, ttlSeconds?}
    POST /api/webrtc/offer             {call_id, role, sdp, type: "offer"} -> {sdp, type: "answer"}
    GET  /ws/ice-candidates/{call_id}?role=customer|agent   trickle ICE both ways + call state
    POST /api/webrtc/hangup            {call_id, role} -> {call}
    GET  /api/calls/waiting            -> {calls: [...]}  (customers waiting for an agent)
    GET  /api/calls/{call_id}          -> the call's legs and their states
    GET  /api/calls/{call_id}/events   WatchCall relayed as server-sent events
    GET  /call, /answer                the customer page and the minimal agent page

Every error is a JSON body `{"error": {"code", "message", "field?"}}`
(see `errors.py`). Cross-origin callers must be in CALLPILOT_ALLOWED_ORIGINS;
requests without an Origin header (programs, not browsers) are accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web
from callpilot.client import CallpilotError
from callpilot.gateway.grpcweb import cors
from callpilot.gateway.keys import SETTINGS
from callpilot.gateway.webrtc import access
from callpilot.gateway.webrtc.call import BridgedCall, api_error_from
from callpilot.gateway.webrtc.errors import ApiError, bad_request
from callpilot.gateway.webrtc.registry import CallRegistry
from callpilot.gateway.webrtc.turn import browser_ice_servers
from callpilot.gateway.webrtc.validation import (
    parse_candidate,
    parse_join,
    parse_json_object,
    parse_leg_ref,
    parse_offer,
    parse_start,
    validate_call_id,
    validate_offer_sdp,
    validate_role,
)
from callpilot.v1 import events_pb2
from google.protobuf import json_format

log = logging.getLogger("callpilot.gateway.webrtc")

REGISTRY = web.AppKey("webrtc_registry", CallRegistry)
EVENT_STREAMS = web.AppKey("webrtc_event_streams", asyncio.Semaphore)
STATIC_DIR = Path(__file__).with_name("static")

MAX_EVENT_STREAMS = 200
"""Concurrent `/api/calls/{id}/events` streams per gateway (each is one WatchCall)."""

EVENT_QUEUE = 256
"""Events buffered between WatchCall and one browser's event stream."""

SSE_KEEPALIVE_S = 15.0
"""An idle event stream sends a comment this often."""

WS_MAX_MESSAGES = 300
"""Messages a page may send on one websocket (candidates are a handful per call)."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# ------------------------------------------------------------------ plumbing


def _origin_headers(request: web.Request) -> dict[str, str]:
    """CORS headers for an allowed origin; raises 403 for a browser on a foreign origin."""
    origin = request.headers.get("Origin")
    if not origin:
        return {}
    settings = request.app[SETTINGS]
    # Never "Origin equals Host": a DNS-rebinding page controls both (see grpcweb/cors.py).
    if not settings.origin_allowed(origin, cors.local_port(request)):
        raise ApiError(
            403,
            "ORIGIN_NOT_ALLOWED",
            f"origin {origin} may not use this gateway; add it to CALLPILOT_PUBLIC_ORIGINS "
            "(where the pages are served) or CALLPILOT_ALLOWED_ORIGINS",
        )
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}


def api(handler: Callable[[web.Request, dict[str, str]], Awaitable[web.StreamResponse]]) -> Handler:
    """Origin check, CORS headers and JSON errors around a handler."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        cors: dict[str, str] = {}
        try:
            cors = _origin_headers(request)
            return await handler(request, cors)
        except ApiError as err:
            if err.status >= 500:
                log.warning("%s %s: %s", request.method, request.path, err.message)
            return err.response(cors)
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            return ApiError(500, "INTERNAL", "the gateway failed to handle this request").response(cors)

    return wrapped


async def _preflight(request: web.Request) -> web.Response:
    try:
        cors = _origin_headers(request)
    except ApiError as err:
        return err.response()
    return web.Response(
        status=204,
        headers={
            **cors,
            "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
            "Access-Control-Allow-Headers": "Content-Type, Authorization",
            "Access-Control-Max-Age": "600",
        },
    )


async def _body(request: web.Request, *, allow_empty: bool = False) -> dict[str, Any]:
    return parse_json_object(await request.read(), allow_empty=allow_empty)


def _registry(request: web.Request) -> CallRegistry:
    return request.app[REGISTRY]


# ------------------------------------------------------------------ handlers


@api
async def start_call(request: web.Request, cors: dict[str, str]) -> web.Response:
    body = await _body(request, allow_empty=True)
    hint = parse_start(body)
    join_token, call_id = parse_join(body)
    call = await _registry(request).start(
        hint, join_token=join_token, call_id=call_id, client_addr=_client_address(request)
    )
    return web.json_response(
        {"call_id": call.call_id, "customer_id": call.customer_id, "customer_token": call.customer_token},
        headers=cors,
    )


def _client_address(request: web.Request) -> str:
    """The browser's address, for the per-client limit: the connection's peer, or with
    CALLPILOT_TRUST_FORWARDED_FOR the last X-Forwarded-For entry (the one our proxy added;
    earlier entries are the client's own claims)."""
    if request.app[SETTINGS].trust_forwarded_for:
        forwarded = [a.strip() for a in request.headers.get("X-Forwarded-For", "").split(",") if a.strip()]
        if forwarded:
            return forwarded[-1]
    return request.remote or ""


async def _check_leg(request: web.Request, call: BridgedCall, role: str) -> None:
    """With auth on: the customer's leg needs the call's customer token, the agent's the agent's key."""
    if role == "customer":
        access.require_customer(request, call.customer_token)
    else:
        await access.require_agent(request, call.call_id)


@api
async def ice_servers(request: web.Request, cors: dict[str, str]) -> web.Response:
    body = browser_ice_servers(request.app[SETTINGS])
    return web.json_response(body, headers={**cors, "Cache-Control": "no-store"})


@api
async def offer(request: web.Request, cors: dict[str, str]) -> web.Response:
    parsed = parse_offer(await _body(request))
    call = _registry(request).get(parsed.call_id)  # 404 / 409 before the SDP is looked at
    await _check_leg(request, call, parsed.role)
    validate_offer_sdp(parsed.sdp)
    answer = await call.join(parsed.role, parsed.sdp)
    return web.json_response({"sdp": answer, "type": "answer"}, headers=cors)


@api
async def hangup(request: web.Request, cors: dict[str, str]) -> web.Response:
    call_id, role = parse_leg_ref(await _body(request))
    call = _registry(request).get(call_id)
    await _check_leg(request, call, role)
    call.hang_up(role)
    return web.json_response({"call": call.snapshot()}, headers=cors)


@api
async def waiting(request: web.Request, cors: dict[str, str]) -> web.Response:
    await access.require_agent(request, None)
    return web.json_response({"calls": _registry(request).waiting()}, headers=cors)


@api
async def describe(request: web.Request, cors: dict[str, str]) -> web.Response:
    call_id = validate_call_id(request.match_info["call_id"])
    live = _registry(request).calls.get(call_id)
    try:
        if live is None:
            raise ApiError(401, "INVALID_CUSTOMER_TOKEN", "not this call's customer")
        access.require_customer(request, live.customer_token)
    except ApiError:
        await access.require_agent(request, call_id)
    return web.json_response(_registry(request).describe(call_id), headers=cors)


@api
async def events(request: web.Request, cors: dict[str, str]) -> web.StreamResponse:
    """The call's events (WatchCall) as server-sent events, one canonical-JSON CallEvent each.

    The SSE `id` is the event's sequence, so a reconnecting EventSource
    resumes with `Last-Event-ID` without gaps or duplicates.
    """
    call_id = validate_call_id(request.match_info["call_id"])
    last_id = request.headers.get("Last-Event-ID")
    try:
        from_sequence = int(last_id) + 1 if last_id else int(request.query.get("from_sequence", "1"))
    except ValueError:
        raise bad_request("from_sequence must be a whole number", field="from_sequence") from None
    slots = request.app[EVENT_STREAMS]
    if slots.locked():
        raise ApiError(503, "TOO_MANY_WATCHERS", "too many event streams on this gateway; try again later")
    token = await access.require_agent(request, call_id)
    async with slots:
        return await _relay_events(request, cors, token, call_id, from_sequence)


async def _relay_events(
    request: web.Request, cors: dict[str, str], token: str, call_id: str, from_sequence: int
) -> web.StreamResponse:
    """WatchCall (with the agent's credential when auth is on) relayed as server-sent events."""
    stream = access.watch_as(request, token, call_id, max(from_sequence, 1))
    # A bounded hand-off from WatchCall to the browser: when the browser
    # reads slowly the reader waits, which backs WatchCall up, and the
    # server then skips only ephemeral events for this watcher.
    queue: asyncio.Queue[Any] = asyncio.Queue(EVENT_QUEUE)
    reader = asyncio.create_task(_read_events(stream, queue))
    try:
        first = await queue.get()
        if isinstance(first, CallpilotError):
            raise api_error_from(first)
        response = web.StreamResponse(
            headers={**cors, "Content-Type": "text/event-stream", "Cache-Control": "no-store"}
        )
        await response.prepare(request)
        item = first
        with contextlib.suppress(ConnectionResetError):
            while isinstance(item, events_pb2.CallEvent):
                await _write_event(response, item)
                item = await _next_event(queue, response)
            await response.write(b"event: end\ndata: {}\n\n")
        return response
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader


_END = object()


async def _next_event(queue: asyncio.Queue[Any], response: web.StreamResponse) -> Any:
    """The next queued item; an idle stream sends a comment now and then, which keeps
    proxies from timing it out and fails fast once the browser has gone."""
    while True:
        try:
            return await asyncio.wait_for(queue.get(), SSE_KEEPALIVE_S)
        except TimeoutError:
            await response.write(b": keepalive\n\n")


async def _read_events(stream: Any, queue: asyncio.Queue[Any]) -> None:
    """WatchCall -> queue; ends with `_END`, or the CallpilotError that ended it."""
    try:
        async for event in stream:
            await queue.put(event)
        await queue.put(_END)
    except CallpilotError as err:
        await queue.put(err)
    finally:
        aclose = getattr(stream, "aclose", None)  # an async generator: stop its WatchCall now
        if aclose is not None:
            await aclose()


async def _write_event(response: web.StreamResponse, event: Any) -> None:
    data = json_format.MessageToJson(event, indent=None)
    await response.write(f"id: {event.sequence}\ndata: {data}\n\n".encode())


async def ice_candidates(request: web.Request) -> web.StreamResponse:
    """Trickle ICE both ways, plus the call's state, for one page (one role) of a call.

    Page -> gateway: {"type": "candidate", candidate, sdpMid, sdpMLineIndex, usernameFragment},
                     {"type": "end-of-candidates"}, {"type": "hangup"}.
    Gateway -> page: {"type": "candidate", ...} and {"type": "end-of-candidates"} for the
                     gateway's side, {"type": "state", "call": {...}} on every change,
                     {"type": "ended", "call": {...}}, {"type": "error", "error": {...}}.
    Candidates sent before the offer are kept (bounded) until the offer arrives.
    """
    try:
        _origin_headers(request)
        call_id = validate_call_id(request.match_info["call_id"])
        role = validate_role(request.query.get("role"), field="role (query parameter)")
        call = _registry(request).get(call_id)
        await _check_leg(request, call, role)
    except ApiError as err:
        return err.response()
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=16 * 1024)
    await ws.prepare(request)
    sub = call.subscribe(role)

    async def pump() -> None:
        while True:
            message = await sub.outbox.get()
            if message is None:
                await ws.close(code=1008, message=b"too slow")
                return
            await ws.send_json(message)
            if message.get("type") == "ended":
                await ws.close()
                return

    sender = asyncio.create_task(pump())
    received = 0
    try:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            received += 1
            if received > WS_MAX_MESSAGES:
                await ws.close(code=1008, message=b"too many messages")
                break
            try:
                await _ws_message(call, role, msg.data)
            except ApiError as err:
                sub.send({"type": "error", **err.body()})
    finally:
        call.unsubscribe(sub)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionResetError):
            await sender
    return ws


async def _ws_message(call: Any, role: str, data: str) -> None:
    try:
        message = json.loads(data)
    except json.JSONDecodeError:
        raise bad_request("websocket messages must be JSON objects", code="INVALID_JSON") from None
    if not isinstance(message, dict):
        raise bad_request("websocket messages must be JSON objects", code="INVALID_JSON")
    kind = message.get("type")
    if kind == "candidate":
        await call.add_remote_candidate(role, parse_candidate(message))
    elif kind == "end-of-candidates":
        await call.add_remote_candidate(role, parse_candidate({}))
    elif kind == "hangup":
        call.hang_up(role)
    else:
        raise bad_request(
            f"unknown message type {kind!r}; send candidate, end-of-candidates or hangup", field="type"
        )


# The pages load only their own scripts and styles and talk only to this gateway.
PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; media-src 'self' blob: mediastream:; object-src 'none'; "
        "base-uri 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "microphone=(self)",
}


def _page(name: str) -> Handler:
    path = STATIC_DIR / name

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(path, headers=PAGE_HEADERS)

    return handler


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/api/calls/start", start_call)
    r.add_get("/api/calls/waiting", waiting)
    r.add_get("/api/calls/{call_id}/events", events)
    r.add_get("/api/calls/{call_id}", describe)
    r.add_get("/api/webrtc/ice-servers", ice_servers)
    r.add_post("/api/webrtc/offer", offer)
    r.add_post("/api/webrtc/hangup", hangup)
    for path in ("/api/calls/start", "/api/webrtc/offer", "/api/webrtc/hangup"):
        r.add_route("OPTIONS", path, _preflight)
    r.add_get("/ws/ice-candidates/{call_id}", ice_candidates)
    r.add_get("/call", _page("call.html"))
    r.add_get("/answer", _page("answer.html"))
    r.add_static("/webrtc/", STATIC_DIR, append_version=False)
