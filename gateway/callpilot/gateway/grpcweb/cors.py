"""CORS for the gateway's browser APIs: an exact list of allowed origins.

The allowed origins come from `GatewaySettings.origin_allowed`: the
configured CALLPILOT_ALLOWED_ORIGINS and CALLPILOT_PUBLIC_ORIGINS, plus the
loopback origins at the gateway's own port (the port the connection reached,
read from the socket). Nothing is ever derived from the request's Host
header: a page on a DNS-rebinding domain sends Host and Origin both
`evil.example`, and "Origin equals Host" would let it read call data. A
request from a public origin (the agent app served by this gateway) needs no
CORS headers and gets none; a cross-origin request from an origin that is
not on the list is refused with 403, so it never reaches the server.
"""

from __future__ import annotations

import re
from enum import Enum

from aiohttp import web
from callpilot.gateway.config import GatewaySettings

# Response headers a browser script may read: the gRPC status travels in
# these on trailers-only responses.
EXPOSED_HEADERS = ("grpc-status", "grpc-message", "grpc-status-details-bin")
ALLOWED_METHODS = ("POST", "OPTIONS")
# Request headers the grpc-web clients send (connect-web, Google's grpc-web),
# plus metadata a caller may add; any other requested header is refused.
DEFAULT_ALLOWED_HEADERS = (
    "content-type",
    "x-grpc-web",
    "x-user-agent",
    "grpc-timeout",
    "authorization",
)
PREFLIGHT_MAX_AGE_S = 600

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


class OriginCheck(Enum):
    NONE = "none"  # no Origin header: not a browser's cross-origin request
    SAME = "same"  # the page was served by this gateway
    ALLOWED = "allowed"  # on the allowed list: answer with CORS headers
    DENIED = "denied"


def local_port(request: web.Request) -> int | None:
    """The port this request's connection reached (from the socket, not the Host header)."""
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    if isinstance(sockname, tuple) and len(sockname) >= 2 and isinstance(sockname[1], int):
        return sockname[1]
    return None


def check_origin(request: web.Request, settings: GatewaySettings) -> OriginCheck:
    origin = request.headers.get("Origin")
    if origin is None:
        return OriginCheck.NONE
    origin = origin.rstrip("/")
    if origin in settings.public_origins:
        return OriginCheck.SAME
    if settings.origin_allowed(origin, local_port(request)):
        return OriginCheck.ALLOWED
    return OriginCheck.DENIED


def response_headers(request: web.Request, check: OriginCheck) -> dict[str, str]:
    """CORS headers for an actual (non-preflight) response."""
    if check is not OriginCheck.ALLOWED:
        return {}
    return {
        "Access-Control-Allow-Origin": request.headers["Origin"],
        "Access-Control-Expose-Headers": ", ".join(EXPOSED_HEADERS),
        "Vary": "Origin",
    }


def _allowed_request_header(name: str) -> bool:
    name = name.lower()
    if name in DEFAULT_ALLOWED_HEADERS:
        return True
    # Custom metadata (x-...) is forwarded to the server; reserved and
    # hop-by-hop headers are not.
    return name.startswith("x-") and bool(_TOKEN.match(name))


def forbidden(reason: str) -> web.Response:
    return web.Response(status=403, text=reason + "\n", content_type="text/plain")


def preflight(request: web.Request, settings: GatewaySettings) -> web.Response:
    """Answer an OPTIONS preflight: 204 with the CORS grant, or 403."""
    check = check_origin(request, settings)
    if check is OriginCheck.DENIED:
        return forbidden(
            f"origin {request.headers.get('Origin')!r} is not allowed (CALLPILOT_ALLOWED_ORIGINS, CALLPILOT_PUBLIC_ORIGINS)"
        )
    if check is not OriginCheck.ALLOWED:
        # Not a CORS preflight (no Origin) or same-origin: nothing to grant.
        return web.Response(status=204, headers={"Allow": ", ".join(ALLOWED_METHODS)})
    method = request.headers.get("Access-Control-Request-Method", "").upper()
    if method not in ALLOWED_METHODS:
        return forbidden(f"method {method!r} is not allowed; grpc-web uses POST")
    requested = [
        h.strip().lower()
        for h in request.headers.get("Access-Control-Request-Headers", "").split(",")
        if h.strip()
    ]
    refused = [h for h in requested if not _allowed_request_header(h)]
    if refused:
        return forbidden(f"request headers not allowed: {', '.join(refused)}")
    allow_headers = list(DEFAULT_ALLOWED_HEADERS) + [h for h in requested if h not in DEFAULT_ALLOWED_HEADERS]
    return web.Response(
        status=204,
        headers={
            "Access-Control-Allow-Origin": request.headers["Origin"],
            "Access-Control-Allow-Methods": ", ".join(ALLOWED_METHODS),
            "Access-Control-Allow-Headers": ", ".join(allow_headers),
            "Access-Control-Expose-Headers": ", ".join(EXPOSED_HEADERS),
            "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE_S),
            "Vary": "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
        },
    )
