"""`callpilot gateway`: run the HTTP edge."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys

from aiohttp import web
from callpilot.gateway.accesslog import RedactingAccessLogger
from callpilot.gateway.app import create_app
from callpilot.gateway.config import GatewayConfigError, GatewaySettings

# The WebRTC bridge ends each call cleanly on shutdown (finals flushed into
# the server); this bounds how long that may take.
SHUTDOWN_TIMEOUT_S = 30.0


def run(args: argparse.Namespace) -> int:
    try:
        settings = GatewaySettings.from_env(
            host=args.host,
            port=args.port,
            server=args.server,
            ice_loopback=True if getattr(args, "ice_loopback", None) else None,
        )
    except GatewayConfigError as exc:
        print(f"callpilot: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        return asyncio.run(_serve(settings))
    except KeyboardInterrupt:
        return 0


async def _serve(settings: GatewaySettings) -> int:
    runner = web.AppRunner(
        create_app(settings), shutdown_timeout=SHUTDOWN_TIMEOUT_S, access_log_class=RedactingAccessLogger
    )
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    try:
        await site.start()
    except OSError as exc:
        # One line a person can act on (asyncio's own text repeats the address).
        await runner.cleanup()
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        print(
            f"callpilot: cannot listen on {settings.host}:{settings.port}: {reason} "
            "(another program or another callpilot gateway holds it; set CALLPILOT_GATEWAY_PORT or --port)",
            file=sys.stderr,
        )
        return 1
    # With --port 0 the system picks the port: report the one actually bound.
    sockets = getattr(site._server, "sockets", None) or ()  # aiohttp keeps the asyncio server here
    port = int(sockets[0].getsockname()[1]) if sockets else settings.port
    print(f"callpilot gateway: serving on {settings.host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()
    return 0
