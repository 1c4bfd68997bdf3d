"""Browser calls: WebRTC signalling, the aiortc media bridge into StreamCall, and the call pages.

See docs/webrtc.md for the API and the design; `routes.py` lists the
endpoints, `call.py` explains how the two legs of a call reach one
StreamCall, `leg.py` the lifecycle of one party's connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web
from callpilot.gateway.keys import CLIENT, SETTINGS


def setup(app: web.Application) -> None:
    """Register the browser-call routes, the call registry and its clean shutdown."""
    from callpilot.gateway.webrtc import loopback
    from callpilot.gateway.webrtc.registry import CallRegistry
    from callpilot.gateway.webrtc.routes import EVENT_STREAMS, MAX_EVENT_STREAMS, REGISTRY, add_routes

    settings = app[SETTINGS]
    if settings.ice_loopback:
        loopback.enable()

    async def registry_ctx(app: web.Application) -> AsyncIterator[None]:
        app[REGISTRY] = CallRegistry(settings, lambda: app[CLIENT])
        app[EVENT_STREAMS] = asyncio.Semaphore(MAX_EVENT_STREAMS)
        yield

    async def on_shutdown(app: web.Application) -> None:
        # Runs before the cleanup contexts, so the SDK client is still open
        # while the calls flush their last finals.
        await app[REGISTRY].shutdown()

    app.cleanup_ctx.append(registry_ctx)
    app.on_shutdown.append(on_shutdown)
    add_routes(app)
