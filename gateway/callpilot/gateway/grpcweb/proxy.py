"""grpc-web for browsers: a small, method-agnostic grpc-web → gRPC proxy.

Routes: `POST /callpilot.v1.<Service>/<Method>` (and its `OPTIONS` preflight).
The request body (binary `application/grpc-web+proto`, or base64
`application/grpc-web-text`) holds one framed message; its bytes are sent
unchanged to the server through the gateway's gRPC channel with a generic
`unary_stream` callable (no serializer: bytes in, bytes out), which on the
wire is exactly a unary or a server-streaming call. Every response message
is written as a data frame as soon as it arrives, then a trailer frame
(flag 0x80) with `grpc-status`, the percent-encoded `grpc-message`,
`grpc-status-details-bin` and the server's trailing metadata. A call that
fails before its first message gets a trailers-only response: HTTP 200 with
the status in the headers and an empty body, as the protocol says.

* Deadlines: `grpc-timeout` becomes the upstream call's timeout.
* Cancellation: when the browser goes away (connection closed, or the
  handler is cancelled) the upstream call is cancelled at once.
* Shutdown: open streams end with UNAVAILABLE ("the gateway is restarting"),
  which resumable clients (the TypeScript SDK's `watchCall`) retry.
* Client-streaming and bidirectional methods (`StreamCall`) cannot work over
  grpc-web (fetch cannot stream a request body) and get UNIMPLEMENTED with a
  pointer to what to use instead.
* Limits: no per-message compression (flag 0x01) in either direction; only
  the `proto` codec (`+json` is UNIMPLEMENTED); the request body is bounded
  by the app's `client_max_size`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import cast

import callpilot.client  # noqa: F401 - registers callpilot.v1 in the default descriptor pool
import grpc
import grpc.aio
from aiohttp import web
from callpilot.gateway.grpcweb import cors
from callpilot.gateway.grpcweb.wire import (
    BINARY_CONTENT_TYPE,
    TEXT_CONTENT_TYPE,
    Unsupported,
    WireError,
    accepts_text,
    decode_binary_header,
    decode_text_body,
    encode_frame,
    encode_text,
    encode_trailers,
    metadata_value,
    parse_content_type,
    parse_frames,
    parse_timeout,
    single_request_message,
    status_fields,
    valid_metadata_key,
)
from callpilot.gateway.keys import CLIENT, SETTINGS
from callpilot.v1 import floor_service_pb2, insights_service_pb2  # noqa: F401 - services the client does not wrap
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.message import DecodeError
from multidict import CIMultiDict

log = logging.getLogger("callpilot.gateway.grpcweb")

_EOF: object = grpc.aio.EOF  # type: ignore[attr-defined]

# Only the Callpilot contract is proxied.
PATH_PATTERN = r"/{service:callpilot\.v1\.[A-Za-z][A-Za-z0-9_]*}/{method:[A-Za-z][A-Za-z0-9_]*}"
# How long response headers wait for the first message (see `_relay`).
HEADERS_GRACE_S = 0.3
# How often an idle stream checks whether the browser is still connected.
DISCONNECT_POLL_S = 0.25
# Request headers never forwarded as metadata (the grpc-web clients' own,
# and ones a browser page could use to spoof the gateway's view).
_NOT_FORWARDED = {
    "x-grpc-web",
    "x-user-agent",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
}


@dataclass(eq=False)
class _Upstream:
    """One proxied call in flight, with why it was cancelled, if it was."""

    call: grpc.aio.UnaryStreamCall  # type: ignore[type-arg]
    path: str
    reason: str = ""  # "disconnected" | "shutdown"
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def cancel(self, reason: str) -> None:
        if not self.reason:
            self.reason = reason
        self.call.cancel()


ACTIVE: web.AppKey[set[_Upstream]] = web.AppKey("grpcweb_active")


def setup(app: web.Application) -> None:
    """Register the grpc-web routes and the shutdown hook on the gateway app."""
    app[ACTIVE] = set()
    app.router.add_route("POST", PATH_PATTERN, _handle)
    app.router.add_route("OPTIONS", PATH_PATTERN, _preflight)
    app.on_shutdown.append(_on_shutdown)


async def _on_shutdown(app: web.Application) -> None:
    registry: set[_Upstream] = app[ACTIVE]
    active = list(registry)
    for upstream in active:
        upstream.cancel("shutdown")
    if active:
        log.info("ending %d open grpc-web call(s) for shutdown", len(active))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(u.done.wait() for u in active)), 5.0)


async def _preflight(request: web.Request) -> web.Response:
    return cors.preflight(request, request.app[SETTINGS])


# ---------------------------------------------------------------- responses


class _Responder:
    """Writes one grpc-web response in the format the client asked for."""

    def __init__(self, request: web.Request, cors_headers: Mapping[str, str], *, text: bool) -> None:
        self.request = request
        self.cors_headers = dict(cors_headers)
        self.text = text
        self.content_type = TEXT_CONTENT_TYPE if text else BINARY_CONTENT_TYPE
        self.stream: web.StreamResponse | None = None

    def _base_headers(self) -> CIMultiDict[str]:
        headers: CIMultiDict[str] = CIMultiDict(self.cors_headers)
        headers["Content-Type"] = self.content_type
        headers["Cache-Control"] = "no-store"
        headers["X-Accel-Buffering"] = "no"  # let reverse proxies stream
        return headers

    def trailers_only(
        self,
        code: grpc.StatusCode,
        message: str,
        details: bytes | None = None,
        trailing: Iterable[tuple[str, str | bytes]] = (),
    ) -> web.Response:
        headers = self._base_headers()
        for name, value in status_fields(code.value[0], message, details, trailing):
            headers.add(name, value)
        return web.Response(status=200, headers=headers)

    async def start(self, initial: Iterable[tuple[str, str | bytes]]) -> web.StreamResponse:
        headers = self._base_headers()
        for key, value in initial:
            if valid_metadata_key(key):
                headers.add(key, metadata_value(key, value))
        self.stream = web.StreamResponse(status=200, headers=headers)
        await self.stream.prepare(self.request)
        return self.stream

    async def write(self, frame: bytes) -> None:
        assert self.stream is not None
        await self.stream.write(encode_text(frame) if self.text else frame)

    async def finish(
        self,
        code: grpc.StatusCode,
        message: str,
        details: bytes | None = None,
        trailing: Iterable[tuple[str, str | bytes]] = (),
    ) -> web.StreamResponse:
        assert self.stream is not None
        await self.write(encode_trailers(status_fields(code.value[0], message, details, trailing)))
        await self.stream.write_eof()
        return self.stream


# ------------------------------------------------------------------ helpers


def _method_streams_requests(service: str, method: str) -> bool:
    """True for client-streaming and bidi methods known to the SDK's descriptors."""
    try:
        descriptor = descriptor_pool.Default().FindMethodByName(f"{service}.{method}")
    except KeyError:
        return False  # unknown here: the server answers UNIMPLEMENTED itself
    return bool(descriptor.client_streaming)


def _undecodable(service: str, method: str, message: bytes) -> str | None:
    """Why `message` is not the method's request type, or None (also for methods unknown here).

    Checked here because the server, handed bytes it cannot parse, answers
    with a status naming its Python internals; a browser gets a message in
    the contract's terms instead.
    """
    try:
        descriptor = descriptor_pool.Default().FindMethodByName(f"{service}.{method}")
    except KeyError:
        return None  # the server answers UNIMPLEMENTED itself
    request_type = descriptor.input_type
    try:
        message_factory.GetMessageClass(request_type).FromString(message)
    except DecodeError:
        return (
            f"the request body is not a valid {request_type.full_name} message "
            "(protobuf decoding failed); send the serialized request in one grpc-web frame"
        )
    return None


def _forwarded_metadata(headers: Mapping[str, str]) -> list[tuple[str, str | bytes]]:
    metadata: list[tuple[str, str | bytes]] = []
    for raw_name, value in headers.items():
        name = raw_name.lower()
        if name in _NOT_FORWARDED or not (name == "authorization" or name.startswith("x-")):
            continue
        if not valid_metadata_key(name):
            continue
        if name.endswith("-bin"):
            metadata.append((name, decode_binary_header(value)))
        elif all(0x20 <= ord(c) <= 0x7E for c in value):
            metadata.append((name, value))
        else:
            raise WireError(f"header {name} is not printable ASCII; send binary metadata as {name}-bin")
    return metadata


def _pairs(metadata: object) -> list[tuple[str, str | bytes]]:
    """gRPC metadata (a grpc.aio.Metadata, a tuple of pairs, or None) as (key, value) pairs."""
    if metadata is None:
        return []
    return [(str(k), v) for k, v in cast(Iterable[tuple[str, str | bytes]], metadata)]


def _split_trailing(metadata: object) -> tuple[bytes | None, list[tuple[str, str | bytes]]]:
    """(grpc-status-details-bin, the other trailing metadata)."""
    details: bytes | None = None
    rest: list[tuple[str, str | bytes]] = []
    for key, value in _pairs(metadata):
        if key == "grpc-status-details-bin":
            details = value if isinstance(value, bytes) else value.encode("latin-1")
        else:
            rest.append((key, value))
    return details, rest


def _cancelled_by_us(upstream: _Upstream) -> bool:
    task = asyncio.current_task()
    return bool(upstream.reason) and (task is None or task.cancelling() == 0)


async def _watch_disconnect(request: web.Request, upstream: _Upstream) -> None:
    """Cancel the upstream call as soon as the browser's connection closes."""
    while not upstream.call.done():
        transport = request.transport
        if transport is None or transport.is_closing():
            upstream.cancel("disconnected")
            return
        await asyncio.sleep(DISCONNECT_POLL_S)


# ------------------------------------------------------------------ handler


async def _handle(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    origin = cors.check_origin(request, settings)
    if origin is cors.OriginCheck.DENIED:
        return cors.forbidden(
            f"origin {request.headers.get('Origin')!r} is not allowed (CALLPILOT_ALLOWED_ORIGINS, CALLPILOT_PUBLIC_ORIGINS)"
        )
    cors_headers = cors.response_headers(request, origin)
    ctype = parse_content_type(request.headers.get("Content-Type"))
    if ctype is None:
        return web.Response(
            status=415,
            headers=cors_headers,
            text="grpc-web requests need Content-Type application/grpc-web+proto or application/grpc-web-text\n",
        )
    responder = _Responder(
        request, cors_headers, text=ctype.text or accepts_text(request.headers.get("Accept"))
    )
    if ctype.codec != "proto":
        return responder.trailers_only(
            grpc.StatusCode.UNIMPLEMENTED,
            f"the grpc-web codec {ctype.codec!r} is not supported; use application/grpc-web+proto",
        )
    service, method = request.match_info["service"], request.match_info["method"]
    if _method_streams_requests(service, method):
        return responder.trailers_only(
            grpc.StatusCode.UNIMPLEMENTED,
            f"{service}/{method} streams requests, which grpc-web cannot carry (browsers cannot stream a "
            "request body); send call audio over WebRTC through the gateway, or use a gRPC SDK",
        )
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        return responder.trailers_only(grpc.StatusCode.RESOURCE_EXHAUSTED, f"request too large: {exc.text}")
    try:
        if ctype.text:
            body = decode_text_body(body)
        message = single_request_message(parse_frames(body))
        timeout = parse_timeout(request.headers.get("grpc-timeout"))
        metadata = _forwarded_metadata(request.headers)
        problem = _undecodable(service, method, message)
    except Unsupported as exc:
        return responder.trailers_only(grpc.StatusCode.UNIMPLEMENTED, str(exc))
    except WireError as exc:
        return responder.trailers_only(grpc.StatusCode.INVALID_ARGUMENT, f"malformed grpc-web request: {exc}")
    if problem is not None:
        return responder.trailers_only(grpc.StatusCode.INVALID_ARGUMENT, problem)

    try:
        channel = request.app[CLIENT].channel
        callable_ = channel.unary_stream(request.path, None, None)
        call = callable_(message, metadata=metadata, timeout=timeout)
    except Exception:
        log.exception("cannot start the upstream call %s", request.path)
        return responder.trailers_only(grpc.StatusCode.INTERNAL, "the gateway could not start the call")
    upstream = _Upstream(call, request.path)
    active = request.app[ACTIVE]
    active.add(upstream)
    watcher = asyncio.create_task(_watch_disconnect(request, upstream))
    try:
        return await _relay(upstream, responder)
    finally:
        watcher.cancel()
        active.discard(upstream)
        if not call.done():
            call.cancel()
        upstream.done.set()


def _gone(responder: _Responder) -> web.StreamResponse:
    """The response of a call whose browser went away (aiohttp notes the disconnection quietly)."""
    if responder.stream is not None:
        return responder.stream
    return web.Response(status=499, text="client closed the request\n")


async def _relay(upstream: _Upstream, responder: _Responder) -> web.StreamResponse:
    call = upstream.call
    read: asyncio.Future[object] = asyncio.ensure_future(call.read())
    headers: asyncio.Future[object] = asyncio.ensure_future(call.initial_metadata())
    try:
        # Hold the response headers back briefly: a call that fails at once
        # gets a trailers-only response, one that answers at once gets its
        # initial metadata; a quiet stream still gets its headers soon, so
        # the browser knows it is connected.
        await asyncio.wait({read, headers}, timeout=HEADERS_GRACE_S, return_when=asyncio.FIRST_COMPLETED)
        if not read.done() and call.done():
            await asyncio.wait({read})
        if not read.done():
            await responder.start(_pairs(headers.result()) if headers.done() else [])
        while True:
            message = await read
            if message is _EOF:
                break
            if responder.stream is None:
                await responder.start(_pairs(await headers))
            assert isinstance(message, bytes)
            await responder.write(encode_frame(message))
            read = asyncio.ensure_future(call.read())
    except grpc.aio.AioRpcError as err:
        details, trailing = _split_trailing(err.trailing_metadata())
        if responder.stream is None:
            return responder.trailers_only(err.code(), err.details() or "", details, trailing)
        return await responder.finish(err.code(), err.details() or "", details, trailing)
    except asyncio.CancelledError:
        if not _cancelled_by_us(upstream):
            raise
        if upstream.reason != "shutdown":
            log.debug("browser went away: cancelled %s", upstream.path)
            return _gone(responder)
        message = "the gateway is restarting; reconnect and resume"
        if responder.stream is None:
            return responder.trailers_only(grpc.StatusCode.UNAVAILABLE, message)
        return await responder.finish(grpc.StatusCode.UNAVAILABLE, message)
    except ConnectionError:
        upstream.cancel("disconnected")
        log.debug("browser went away while writing: cancelled %s", upstream.path)
        return _gone(responder)
    finally:
        for task in (read, headers):
            if not task.done():
                task.cancel()
    if responder.stream is None:
        await responder.start(_pairs(await headers))
    _, trailing = _split_trailing(await call.trailing_metadata())
    return await responder.finish(grpc.StatusCode.OK, "", None, trailing)
