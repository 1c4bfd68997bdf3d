"""Inbound contact-center connectors: Twilio Media Streams and Genesys Cloud AudioHook.

Each connector is a client of the public Python SDK, like the WebRTC
bridge: it translates one platform's wire protocol into a StreamCall and
nothing else. See docs/connectors.md for set-up, `twilio.py` and
`audiohook.py` for the protocol handling, `alignment.py` for how Twilio's two
tracks share one timeline and `bridge.py` for the StreamCall side.

    POST /connectors/twilio/twiml   TwiML starting a both-tracks stream
    GET  /connectors/twilio         Twilio Media Streams websocket
    GET  /connectors/audiohook      Genesys AudioHook v2 websocket
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from callpilot.gateway.connectors.settings import ConnectorConfigError, ConnectorSettings
from callpilot.gateway.upstream import Upstream

__all__ = ["ConnectorConfigError", "ConnectorSettings", "add_routes"]


def add_routes(
    app: web.Application, server: str | Upstream, settings: ConnectorSettings | None = None
) -> None:
    """Register the connector endpoints; `server` is the Callpilot server (a gRPC target, or with TLS)."""
    from callpilot.gateway.connectors import audiohook, twilio
    from callpilot.gateway.connectors.bridge import ClientPool, Sessions

    config = settings or ConnectorSettings.from_env()
    pool = ClientPool(server)
    sessions = Sessions()

    async def pool_ctx(app: web.Application) -> AsyncIterator[None]:
        yield
        await pool.close()

    async def twiml(request: web.Request) -> web.StreamResponse:
        return await twilio.twiml(request, config)

    async def twilio_ws(request: web.Request) -> web.StreamResponse:
        return await twilio.websocket(request, config, pool, sessions)

    async def audiohook_ws(request: web.Request) -> web.StreamResponse:
        return await audiohook.websocket(request, config, pool, sessions)

    async def on_shutdown(app: web.Application) -> None:
        await sessions.shutdown()

    app.on_shutdown.append(on_shutdown)
    app.cleanup_ctx.append(pool_ctx)
    app.router.add_post("/connectors/twilio/twiml", twiml)
    app.router.add_get("/connectors/twilio", twilio_ws)
    app.router.add_get("/connectors/audiohook", audiohook_ws)
