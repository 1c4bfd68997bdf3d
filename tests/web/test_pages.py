"""The gateway serves the built agent app at / (and at the app's own paths)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from callpilot.gateway.app import create_app
from callpilot.gateway.config import GatewaySettings
from web.procs import free_port


async def _serve(static_dir: Path) -> tuple[web.AppRunner, str]:
    port = free_port()
    # No server behind it: pages need none.
    app = create_app(GatewaySettings(port=port, server="127.0.0.1:9", static_dir=static_dir))
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[str]:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text("<!doctype html><title>app</title>")
    (tmp_path / "assets" / "index-abc123.js").write_text("console.log(1)")
    (tmp_path / "favicon.svg").write_text("<svg/>")
    (tmp_path.parent / "secret.txt").write_text("no")
    runner, url = await _serve(tmp_path)
    yield url
    await runner.cleanup()


async def test_app_paths_serve_index(site: str) -> None:
    async with aiohttp.ClientSession() as http:
        for path in ("/", "/calls", "/calls/call-1", "/orders/78901", "/policies/refund"):
            async with http.get(site + path) as r:
                assert r.status == 200, path
                assert "<title>app</title>" in await r.text()
                assert r.headers["Cache-Control"] == "no-cache"
                assert "default-src 'self'" in r.headers["Content-Security-Policy"]
        async with http.get(site + "/assets/index-abc123.js") as r:
            assert r.status == 200 and "immutable" in r.headers["Cache-Control"]
        async with http.get(site + "/favicon.svg") as r:
            assert r.status == 200
        for path in (
            "/assets/../../secret.txt",
            "/assets/%2e%2e/%2e%2e/secret.txt",
            "/assets/nope.js",
            "/nope/x/y",
        ):
            async with http.get(site + path) as r:
                assert r.status == 404, path


async def test_unbuilt_app_says_how_to_build_it(tmp_path: Path) -> None:
    runner, url = await _serve(tmp_path / "missing")
    try:
        async with aiohttp.ClientSession() as http, http.get(url + "/") as r:
            assert r.status == 503
            assert "npm run build" in await r.text()
    finally:
        await runner.cleanup()
