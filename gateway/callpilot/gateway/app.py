"""The gateway's aiohttp application.

Each feature (grpc-web proxy, WebRTC bridge, static pages and the agent app)
lives in its own module and registers its routes through `setup(app)`, so
the features evolve independently. The shared keys (`SETTINGS`, `CLIENT`)
live in `keys`, which the features import instead of this module, so there
is no import cycle (tests/gateway/test_import_cycles.py checks it).
"""

from __future__ import annotations

import logging

from aiohttp import web
from callpilot.gateway import connectors, grpcweb, pages, webrtc
from callpilot.gateway.config import GatewaySettings
from callpilot.gateway.keys import CLIENT, SETTINGS

__all__ = ["CLIENT", "SETTINGS", "create_app"]

log = logging.getLogger("callpilot.gateway")


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_app(settings: GatewaySettings) -> web.Application:
    app = web.Application(client_max_size=256 * 1024)
    app[SETTINGS] = settings

    async def client_ctx(app: web.Application):  # type: ignore[no-untyped-def]
        # api_key="": never the environment's CALLPILOT_API_KEY. This client acts for browsers, which
        # must bring their own credential (grpc-web) or a join token (browser calls).
        client = settings.upstream.client("")
        app[CLIENT] = client
        yield
        await client.close()

    app.cleanup_ctx.append(client_ctx)
    app.router.add_get("/healthz", _health)
    grpcweb.setup(app)
    webrtc.setup(app)
    connectors.add_routes(app, settings.upstream, connectors.ConnectorSettings.from_gateway(settings))
    pages.setup(app)  # last: it may add a catch-all for the agent app
    return app
