"""The gateway's grpc-web proxy over raw HTTP, against a real server.

The gateway app runs in this process (so the tests can look at its open
upstream calls); the server is the real `callpilot serve` subprocess.
"""

from __future__ import annotations

import asyncio
import base64
import time
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web
from callpilot.client import AsyncCallpilot
from callpilot.gateway.app import create_app
from callpilot.gateway.config import GatewaySettings
from callpilot.gateway.grpcweb import ACTIVE
from callpilot.gateway.grpcweb.wire import (
    decode_binary_header,
    decode_text_body,
    encode_frame,
    parse_frames,
)
from callpilot.v1 import assist_service_pb2, directory_service_pb2
from google.rpc import error_details_pb2, status_pb2
from support import ServerProcess
from web.procs import FinishedCall, free_port

ALLOWED = "http://app.example.test"
PUBLIC = "http://desk.example.test:8443"  # where the agent app is served, behind a proxy
DIRECTORY = "/callpilot.v1.DirectoryService"
ASSIST = "/callpilot.v1.AssistService"
BINARY = {"Content-Type": "application/grpc-web+proto", "X-Grpc-Web": "1"}
TEXT = {"Content-Type": "application/grpc-web-text", "Accept": "application/grpc-web-text", "X-Grpc-Web": "1"}


@dataclass
class Proxy:
    url: str
    app: web.Application
    runner: web.AppRunner
    http: aiohttp.ClientSession


@pytest.fixture
async def proxy(web_server: ServerProcess) -> AsyncIterator[Proxy]:
    port = free_port()
    settings = GatewaySettings(
        host="127.0.0.1",
        port=port,
        server=web_server.address,
        allowed_origins=(ALLOWED,),
        public_origins=(PUBLIC,),
    )
    app = create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        yield Proxy(f"http://127.0.0.1:{port}", app, runner, http)
    if runner.server is not None:  # not cleaned up by the test itself
        await runner.cleanup()


@dataclass
class Reply:
    http_status: int
    headers: dict[str, str]
    messages: list[bytes]
    trailers: dict[str, str]  # from the trailer frame, or from the headers of a trailers-only reply
    trailers_only: bool

    @property
    def status(self) -> int:
        return int(self.trailers["grpc-status"])


def _parse_reply(status: int, headers: dict[str, str], body: bytes, text: bool) -> Reply:
    if text:
        body = decode_text_body(body)
    frames = parse_frames(body)
    messages = [f.payload for f in frames if not f.is_trailer]
    trailer_frames = [f for f in frames if f.is_trailer]
    if trailer_frames:
        assert len(trailer_frames) == 1 and frames[-1].is_trailer, "one trailer frame, last"
        lines = trailer_frames[0].payload.decode().split("\r\n")
        trailers = dict(line.split(":", 1) for line in lines if line)
        return Reply(status, headers, messages, trailers, trailers_only=False)
    assert not messages, "a reply without a trailer frame must be trailers-only"
    trailers = {k: v for k, v in headers.items() if k.startswith("grpc-")}
    return Reply(status, headers, messages, trailers, trailers_only=True)


async def call(
    proxy: Proxy, path: str, message: bytes, *, text: bool = False, headers: dict[str, str] | None = None
) -> Reply:
    body = encode_frame(message)
    if text:
        body = base64.b64encode(body)
    async with proxy.http.post(
        proxy.url + path, data=body, headers={**(TEXT if text else BINARY), **(headers or {})}
    ) as r:
        raw = await r.read()
        return _parse_reply(r.status, {k.lower(): v for k, v in r.headers.items()}, raw, text)


def _order(number: str) -> bytes:
    return directory_service_pb2.GetOrderRequest(order_number=number).SerializeToString()


async def test_unary_binary_and_text(proxy: Proxy) -> None:
    for text in (False, True):
        reply = await call(proxy, f"{DIRECTORY}/GetOrder", _order("78901"), text=text)
        assert reply.http_status == 200 and not reply.trailers_only
        assert reply.headers["content-type"] == (
            "application/grpc-web-text+proto" if text else "application/grpc-web+proto"
        )
        assert reply.status == 0 and reply.trailers["grpc-message"] == ""
        [message] = reply.messages
        order = directory_service_pb2.GetOrderResponse.FromString(message).order
        assert order.order_number == "78901" and order.items[0].name == "Wireless Headphones"


async def test_text_request_body_in_several_base64_chunks(proxy: Proxy) -> None:
    frame = encode_frame(_order("78901"))
    body = base64.b64encode(frame[:4]) + base64.b64encode(frame[4:])
    async with proxy.http.post(proxy.url + f"{DIRECTORY}/GetOrder", data=body, headers=TEXT) as r:
        reply = _parse_reply(r.status, dict(r.headers), await r.read(), text=True)
    assert reply.status == 0 and len(reply.messages) == 1


async def test_server_streaming_watch_call(proxy: Proxy, finished_call: FinishedCall) -> None:
    request = assist_service_pb2.WatchCallRequest(call_id=finished_call.call_id, from_sequence=1)
    for text in (False, True):
        reply = await call(proxy, f"{ASSIST}/WatchCall", request.SerializeToString(), text=text)
        assert reply.status == 0
        events = [assist_service_pb2.WatchCallResponse.FromString(m).event for m in reply.messages]
        assert events == finished_call.durable


async def test_errors_are_trailers_only_with_details(proxy: Proxy) -> None:
    missing = await call(proxy, f"{DIRECTORY}/GetOrder", _order("00000"))
    assert missing.http_status == 200 and missing.trailers_only and missing.messages == []
    assert missing.status == 5  # NOT_FOUND
    assert missing.trailers["grpc-message"] == "no order numbered '00000'"
    details = status_pb2.Status.FromString(decode_binary_header(missing.trailers["grpc-status-details-bin"]))
    info = error_details_pb2.ErrorInfo()
    assert details.code == 5 and any(d.Unpack(info) for d in details.details)
    assert info.reason == "ORDER_NOT_FOUND"

    bad = await call(proxy, f"{DIRECTORY}/GetOrder", _order(""), text=True)
    assert bad.status == 3 and bad.trailers_only  # INVALID_ARGUMENT
    details = status_pb2.Status.FromString(decode_binary_header(bad.trailers["grpc-status-details-bin"]))
    violations = error_details_pb2.BadRequest()
    assert any(d.Unpack(violations) for d in details.details)
    assert [v.field for v in violations.field_violations] == ["order_number"]

    unknown = await call(proxy, f"{ASSIST}/NoSuchMethod", b"")
    assert unknown.status == 12  # the server's own UNIMPLEMENTED


async def test_stream_call_is_unimplemented_with_a_pointer(proxy: Proxy) -> None:
    reply = await call(proxy, f"{ASSIST}/StreamCall", b"")
    assert reply.status == 12 and reply.trailers_only
    assert "WebRTC" in reply.trailers["grpc-message"]


async def test_malformed_requests(proxy: Proxy) -> None:
    """Client mistakes are INVALID_ARGUMENT (never INTERNAL) with a message a person can act on."""
    json_codec = await call(
        proxy, f"{DIRECTORY}/GetOrder", b"{}", headers={"Content-Type": "application/grpc-web+json"}
    )
    assert json_codec.status == 12 and "json" in json_codec.trailers["grpc-message"]

    async with proxy.http.post(
        proxy.url + f"{DIRECTORY}/GetOrder", data=b"x", headers={"Content-Type": "text/plain"}
    ) as r:
        assert r.status == 415

    async with proxy.http.post(
        proxy.url + f"{DIRECTORY}/GetOrder", data=b"\x00\x00\x00\x00\x09ab", headers=BINARY
    ) as r:
        reply = _parse_reply(r.status, {k.lower(): v for k, v in r.headers.items()}, await r.read(), False)
    assert reply.status == 3 and "declares 9 bytes" in reply.trailers["grpc-message"]

    two = encode_frame(_order("1")) + encode_frame(_order("2"))
    async with proxy.http.post(proxy.url + f"{DIRECTORY}/GetOrder", data=two, headers=BINARY) as r:
        reply = _parse_reply(r.status, {k.lower(): v for k, v in r.headers.items()}, await r.read(), False)
    assert reply.status == 3 and "exactly one request message" in reply.trailers["grpc-message"]

    async with proxy.http.post(
        proxy.url + f"{DIRECTORY}/GetOrder", data=b"AAAA", headers={**TEXT, "Accept": "*/*"}
    ) as r:
        reply = _parse_reply(r.status, {k.lower(): v for k, v in r.headers.items()}, await r.read(), True)
    assert reply.status == 3 and "grpc-web" in reply.trailers["grpc-message"]  # truncated frame header

    compressed = encode_frame(_order("1"), flag=0x01)
    async with proxy.http.post(proxy.url + f"{DIRECTORY}/GetOrder", data=compressed, headers=BINARY) as r:
        reply = _parse_reply(r.status, {k.lower(): v for k, v in r.headers.items()}, await r.read(), False)
    assert reply.status == 12 and "uncompressed" in reply.trailers["grpc-message"]

    not_ascii = await call(proxy, f"{DIRECTORY}/GetOrder", _order("78901"), headers={"x-note": "naïve"})
    assert not_ascii.status == 3 and "x-note-bin" in not_ascii.trailers["grpc-message"]

    bad_timeout = await call(
        proxy, f"{DIRECTORY}/GetOrder", _order("78901"), headers={"grpc-timeout": "soon"}
    )
    assert bad_timeout.status == 3 and "grpc-timeout" in bad_timeout.trailers["grpc-message"]


async def test_undecodable_message_is_invalid_argument_in_the_contracts_terms(proxy: Proxy) -> None:
    for body in (b"\xff\xff\xff\xff", b"\x0a\x05ab"):  # a bad tag; a string field cut short
        reply = await call(proxy, f"{DIRECTORY}/GetOrder", body)
        assert reply.status == 3 and reply.trailers_only, reply.trailers
        message = urllib.parse.unquote(reply.trailers["grpc-message"])
        assert "callpilot.v1.GetOrderRequest" in message and "decoding failed" in message
        for internals in ("Error", "Exception", "Traceback", "_pb2", "DecodeError"):
            assert internals not in message, message
    # An empty body is a valid (all-default) request: the server answers for it.
    empty = await call(proxy, f"{DIRECTORY}/GetOrder", b"")
    assert empty.status == 3 and "order_number" in urllib.parse.unquote(empty.trailers["grpc-message"])


async def test_cors(proxy: Proxy) -> None:
    path = proxy.url + f"{DIRECTORY}/GetOrder"
    preflight = {
        "Origin": ALLOWED,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-grpc-web,x-user-agent,grpc-timeout",
    }
    async with proxy.http.options(path, headers=preflight) as r:
        assert r.status == 204
        assert r.headers["Access-Control-Allow-Origin"] == ALLOWED
        assert "POST" in r.headers["Access-Control-Allow-Methods"]
        allowed = {h.strip() for h in r.headers["Access-Control-Allow-Headers"].split(",")}
        assert {"content-type", "x-grpc-web", "x-user-agent", "grpc-timeout"} <= allowed
        assert "Origin" in r.headers["Vary"]

    for origin in ("http://evil.example.test", "null", ALLOWED + ".evil.test"):
        async with proxy.http.options(path, headers={**preflight, "Origin": origin}) as r:
            assert r.status == 403 and "Access-Control-Allow-Origin" not in r.headers
        async with proxy.http.post(
            path, data=encode_frame(_order("78901")), headers={**BINARY, "Origin": origin}
        ) as r:
            assert r.status == 403 and "Access-Control-Allow-Origin" not in r.headers

    async with proxy.http.options(
        path, headers={**preflight, "Access-Control-Request-Headers": "cookie"}
    ) as r:
        assert r.status == 403

    # The actual request from an allowed origin: the status headers are exposed.
    async with proxy.http.post(
        path, data=encode_frame(_order("00000")), headers={**BINARY, "Origin": ALLOWED}
    ) as r:
        assert r.headers["Access-Control-Allow-Origin"] == ALLOWED
        exposed = {h.strip() for h in r.headers["Access-Control-Expose-Headers"].split(",")}
        assert {"grpc-status", "grpc-message", "grpc-status-details-bin"} <= exposed
        assert r.headers["grpc-status"] == "5"

    # The gateway's own origin is always allowed.
    async with proxy.http.post(
        path, data=encode_frame(_order("78901")), headers={**BINARY, "Origin": proxy.url}
    ) as r:
        assert r.status == 200 and r.headers["Access-Control-Allow-Origin"] == proxy.url

    # The configured public origin (behind a proxy): let through, no CORS grant needed.
    same = {"Origin": PUBLIC, "Host": "desk.example.test:8443"}
    async with proxy.http.post(path, data=encode_frame(_order("78901")), headers={**BINARY, **same}) as r:
        assert r.status == 200 and "Access-Control-Allow-Origin" not in r.headers

    # DNS rebinding: a page on evil.example whose name now resolves to the gateway sends Host and
    # Origin both evil.example. "Origin equals Host" is no proof of anything: refused.
    rebinding = {"Origin": "http://evil.example:8443", "Host": "evil.example:8443"}
    async with proxy.http.post(
        path, data=encode_frame(_order("78901")), headers={**BINARY, **rebinding}
    ) as r:
        assert r.status == 403 and "Access-Control-Allow-Origin" not in r.headers
        assert "CALLPILOT_PUBLIC_ORIGINS" in await r.text()
    async with proxy.http.options(path, headers={**rebinding, "Access-Control-Request-Method": "POST"}) as r:
        assert r.status == 403


@pytest.fixture
async def live_call_id(web_server: ServerProcess) -> AsyncIterator[str]:
    """A call created ahead of its stream: WatchCall on it stays open until it ends."""
    async with AsyncCallpilot(web_server.address) as cp:
        created = await cp.create_call()
        yield created.call_id
        await cp.end_call(created.call_id)


async def test_deadline_from_grpc_timeout(proxy: Proxy, live_call_id: str) -> None:
    request = assist_service_pb2.WatchCallRequest(call_id=live_call_id).SerializeToString()
    reply = await call(proxy, f"{ASSIST}/WatchCall", request, headers={"grpc-timeout": "500m"})
    assert reply.status == 4  # DEADLINE_EXCEEDED, from the server side of the proxied call


async def _wait_for(condition: object, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_browser_disconnect_cancels_the_upstream_call(proxy: Proxy, live_call_id: str) -> None:
    request = encode_frame(assist_service_pb2.WatchCallRequest(call_id=live_call_id).SerializeToString())
    async with aiohttp.ClientSession() as http:
        response = await http.post(proxy.url + f"{ASSIST}/WatchCall", data=request, headers=BINARY)
        assert response.status == 200  # headers arrive although no event has yet
        [upstream] = list(proxy.app[ACTIVE])
        assert not upstream.call.done()
        response.close()  # the browser goes away
    await _wait_for(lambda: not proxy.app[ACTIVE], "the proxied call to end")
    assert upstream.reason == "disconnected" and upstream.call.cancelled()


async def test_shutdown_ends_open_streams_with_unavailable(proxy: Proxy, live_call_id: str) -> None:
    request = encode_frame(assist_service_pb2.WatchCallRequest(call_id=live_call_id).SerializeToString())
    response = await proxy.http.post(proxy.url + f"{ASSIST}/WatchCall", data=request, headers=BINARY)
    assert response.status == 200
    cleanup = asyncio.create_task(proxy.runner.cleanup())
    body = await asyncio.wait_for(response.read(), 15)
    reply = _parse_reply(200, {k.lower(): v for k, v in response.headers.items()}, body, text=False)
    assert reply.status == 14 and "restarting" in reply.trailers["grpc-message"]
    await asyncio.wait_for(cleanup, 15)
