"""Fixtures of the web tests: a real server, a real gateway, the built JS.

One `callpilot serve` (Whisper, SQLite) serves the whole group; the gateway
runs as `callpilot gateway` subprocesses, exactly as users run them. The
TypeScript SDK, the agent app and the third-party test page are built from
the working tree once per session, so the tests always see current sources.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import ROOT, ServerProcess
from web.procs import (
    APP_DIR,
    JS_DIR,
    NODE_MODULES,
    SDK_DIR,
    FinishedCall,
    GatewayProcess,
    JsBuild,
    StaticSite,
    camel,
    node_tool,
    run_checked,
    text_call,
)


@pytest.fixture(scope="session")
def js_build(tmp_path_factory: pytest.TempPathFactory) -> JsBuild:
    """Build the SDK (tsc), the agent app and the third-party test page (Vite) from the working tree."""
    for package in ("typescript", "vite", "playwright-core", "grpc-web", "xhr2", "@connectrpc/connect-web"):
        assert (NODE_MODULES / package).is_dir(), f"node_modules/{package} is missing: run scripts/bootstrap"
    assert shutil.which("node"), "node is not installed"
    out = tmp_path_factory.mktemp("js")
    run_checked([*node_tool("typescript", "bin", "tsc"), "-p", "tsconfig.json"], SDK_DIR, "building the SDK")
    vite = node_tool("vite", "bin", "vite.js")
    app = out / "agent-ui"
    run_checked(
        [*vite, "build", "--outDir", str(app), "--emptyOutDir", "--logLevel", "warn"],
        APP_DIR,
        "building the app",
    )
    page = out / "thirdparty"
    options = ["--outDir", str(page), "--emptyOutDir", "--base", "./", "--logLevel", "warn"]
    run_checked(
        [*vite, "build", str(JS_DIR / "thirdparty"), *options],
        ROOT,
        "building the third-party test page",
    )
    return JsBuild(app_dir=app, thirdparty_dir=page)


@pytest.fixture(scope="session")
def web_server(tmp_path_factory: pytest.TempPathFactory, artifacts: Path) -> Iterator[ServerProcess]:
    """A real `callpilot serve` (Whisper, local assistant) on a fresh SQLite database."""
    data = tmp_path_factory.mktemp("web-server")
    proc = ServerProcess(
        {
            "CALLPILOT_DATABASE_URL": f"sqlite+aiosqlite:///{data / 'callpilot.db'}",
            "CALLPILOT_DATA_DIR": str(data),
            "CALLPILOT_SHUTDOWN_GRACE_S": "5",
        },
        artifacts / "server-web.log",
    ).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def finished_call(web_server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> FinishedCall:
    events = asyncio.run(text_call(web_server.address))
    assert events and events[-1].HasField("call_ended"), events[-1:]
    durable = [e for e in events if e.durable]
    path = tmp_path_factory.mktemp("finished") / "finished.json"
    path.write_text(
        json.dumps(
            {
                "callId": events[0].call_id,
                "sequences": [e.sequence for e in durable],
                "cases": [camel(e.WhichOneof("payload") or "") for e in durable],
            }
        )
    )
    return FinishedCall(events[0].call_id, events, path)


@pytest.fixture(scope="session")
def other_site(js_build: JsBuild) -> Iterator[StaticSite]:
    """The third-party test page on an origin of its own."""
    site = StaticSite(js_build.thirdparty_dir)
    yield site
    site.close()


@pytest.fixture(scope="session")
def gateway(
    web_server: ServerProcess, js_build: JsBuild, other_site: StaticSite, artifacts: Path
) -> Iterator[GatewayProcess]:
    """`callpilot gateway` serving the built app; the test page's origin is allowed."""
    proc = GatewayProcess(
        web_server.address,
        artifacts / "gateway-web.log",
        static_dir=js_build.app_dir,
        allowed_origins=(other_site.origin,),
    ).start()
    yield proc
    proc.stop()
