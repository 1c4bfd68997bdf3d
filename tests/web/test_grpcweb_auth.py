"""grpc-web with auth on: the browser's own credential, and only that, reaches the server.

A real `callpilot serve` with CALLPILOT_AUTH=on (keys by `callpilot keys create`) and
the gateway app in this process. The gateway's environment holds an admin key
(CALLPILOT_API_KEY) on purpose: a browser without a credential must still be refused.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from callpilot.gateway.app import create_app
from callpilot.gateway.config import GatewaySettings
from callpilot.gateway.grpcweb.wire import decode_binary_header
from callpilot.v1 import assist_service_pb2, insights_service_pb2
from google.rpc import error_details_pb2, status_pb2
from web.auth_support import AuthServer
from web.auth_support import auth_server as start_auth_server
from web.procs import free_port
from web.test_grpcweb_proxy import ASSIST, Proxy, Reply, call

PUBLIC = "https://desk.example.com"


@pytest.fixture(scope="module")
def authed(tmp_path_factory: pytest.TempPathFactory, artifacts: Path) -> Iterator[AuthServer]:
    with start_auth_server(
        tmp_path_factory.mktemp("grpcweb-auth"), artifacts / "server-grpcweb-auth.log"
    ) as s:
        yield s


@pytest.fixture
async def proxy(authed: AuthServer, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Proxy]:
    monkeypatch.setenv("CALLPILOT_API_KEY", authed.admin)  # must never be lent to a browser
    port = free_port()
    settings = GatewaySettings(
        host="127.0.0.1", port=port, server=authed.proc.address, auth="on", public_origins=(PUBLIC,)
    )
    runner = web.AppRunner(create_app(settings))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        yield Proxy(f"http://127.0.0.1:{port}", runner.app, runner, http)
    await runner.cleanup()


def _reason(reply: Reply) -> str:
    details = status_pb2.Status.FromString(decode_binary_header(reply.trailers["grpc-status-details-bin"]))
    info = error_details_pb2.ErrorInfo()
    assert any(d.Unpack(info) for d in details.details), details
    assert details.code == reply.status
    return info.reason


LIST = assist_service_pb2.ListCallsRequest(page_size=5).SerializeToString()


async def test_the_browsers_key_is_forwarded_and_rejections_pass_through(
    proxy: Proxy, authed: AuthServer
) -> None:
    bearer = {"Authorization": f"Bearer {authed.agent}", "Origin": PUBLIC}
    for text in (False, True):
        ok = await call(proxy, f"{ASSIST}/ListCalls", LIST, text=text, headers=bearer)
        assert ok.status == 0, ok.trailers
        assist_service_pb2.ListCallsResponse.FromString(ok.messages[0])

    # No credential: the gateway's own CALLPILOT_API_KEY is not used on the browser's behalf.
    anonymous = await call(proxy, f"{ASSIST}/ListCalls", LIST)
    assert (anonymous.status, _reason(anonymous)) == (16, "MISSING_CREDENTIALS")  # UNAUTHENTICATED

    forged = authed.agent[:-3] + ("xyz" if not authed.agent.endswith("xyz") else "abc")
    bad = await call(proxy, f"{ASSIST}/ListCalls", LIST, headers={"Authorization": f"Bearer {forged}"})
    assert bad.status == 16 and _reason(bad) == "INVALID_API_KEY"
    assert bad.trailers["grpc-message"]

    # A valid key whose role may not call the method: PERMISSION_DENIED with its reason.
    wrong_role = await call(
        proxy, f"{ASSIST}/ListCalls", LIST, headers={"Authorization": f"Bearer {authed.integrator}"}
    )
    assert (wrong_role.status, _reason(wrong_role)) == (7, "ROLE_NOT_ALLOWED")

    # Server streaming with the agent's key reaches the server, which answers with its own status.
    watch = assist_service_pb2.WatchCallRequest(call_id="call-nope").SerializeToString()
    missing = await call(proxy, f"{ASSIST}/WatchCall", watch, headers=bearer)
    assert missing.status == 5


async def test_a_jwt_works_like_a_key(proxy: Proxy, authed: AuthServer) -> None:
    ok = await call(proxy, f"{ASSIST}/ListCalls", LIST, headers={"Authorization": f"Bearer {authed.jwt()}"})
    assert ok.status == 0, ok.trailers
    expired = authed.jwt(exp=int(time.time()) - 60)
    refused = await call(proxy, f"{ASSIST}/ListCalls", LIST, headers={"Authorization": f"Bearer {expired}"})
    assert (refused.status, _reason(refused)) == (16, "TOKEN_EXPIRED")


async def test_floor_and_insights_pass_with_the_agents_key(proxy: Proxy, authed: AuthServer) -> None:
    bearer = {"Authorization": f"Bearer {authed.agent}"}
    request = insights_service_pb2.GetInsightsRequest()
    now = int(time.time())
    request.start_time.FromSeconds(now - 86_400)
    request.end_time.FromSeconds(now + 60)
    insights = await call(
        proxy, "/callpilot.v1.InsightsService/GetInsights", request.SerializeToString(), headers=bearer
    )
    assert insights.status == 0, insights.trailers
    refused = await call(proxy, "/callpilot.v1.InsightsService/GetInsights", request.SerializeToString())
    assert (refused.status, _reason(refused)) == (16, "MISSING_CREDENTIALS")


async def test_cors_lets_an_allowed_origin_send_authorization(proxy: Proxy) -> None:
    preflight = {
        "Origin": "http://127.0.0.1:1",  # another loopback port: not this gateway
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type, x-grpc-web",
    }
    async with proxy.http.options(proxy.url + f"{ASSIST}/ListCalls", headers=preflight) as r:
        assert r.status == 403
    async with proxy.http.options(
        proxy.url + f"{ASSIST}/ListCalls", headers={**preflight, "Origin": proxy.url}
    ) as r:
        assert r.status == 204 and "authorization" in r.headers["Access-Control-Allow-Headers"]
