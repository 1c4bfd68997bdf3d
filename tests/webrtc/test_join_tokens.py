"""Browser calls with auth on: a real `callpilot serve` (CALLPILOT_AUTH=on, keys made by
`callpilot keys create`) and the gateway app in this process, over real HTTP.

What is checked: starting a browser call needs a join token minted by CreateCall; the
token names its call, is spent by the first start and refused afterwards (reused,
expired, forged) with 401 and the server's reason; the customer's leg needs the call's
customer token and the agent's endpoints the agent's key; slots are limited per client
and per tenant (429 with Retry-After); origins are never trusted from the Host header.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from callpilot.client import AsyncCallpilot
from callpilot.gateway.app import create_app
from callpilot.gateway.config import GatewaySettings
from web.auth_support import AuthServer
from web.auth_support import auth_server as start_auth_server
from web.procs import free_port

JOIN_TTL_S = 8.0
PUBLIC = "https://desk.example.com"


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory, artifacts: Path) -> Iterator[AuthServer]:
    with start_auth_server(
        tmp_path_factory.mktemp("webrtc-auth"),
        artifacts / "server-webrtc-auth.log",
        CALLPILOT_JOIN_TOKEN_TTL_S=str(JOIN_TTL_S),
    ) as server:
        yield server


@dataclass
class Gateway:
    url: str
    http: aiohttp.ClientSession


@pytest.fixture
async def make_gateway(auth_server: AuthServer) -> AsyncIterator[object]:
    runners: list[web.AppRunner] = []
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))

    async def make(**overrides: object) -> Gateway:
        port = free_port()
        settings = GatewaySettings(
            host="127.0.0.1",
            port=port,
            server=auth_server.proc.address,
            auth="on",
            public_origins=(PUBLIC,),
            **overrides,  # type: ignore[arg-type]
        )
        runner = web.AppRunner(create_app(settings))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        return Gateway(f"http://127.0.0.1:{port}", http)

    yield make
    await http.close()
    for runner in runners:
        await asyncio.wait_for(runner.cleanup(), 60)


async def _mint(auth_server: AuthServer) -> tuple[str, str]:
    async with AsyncCallpilot(auth_server.proc.address, api_key=auth_server.integrator) as sdk:
        from callpilot.v1 import assist_service_pb2

        response = await sdk.assist.CreateCall(assist_service_pb2.CreateCallRequest())
    assert response.join_token.startswith("cpj_")
    return response.call.call_id, response.join_token


async def _post(gw: Gateway, path: str, body: object, **headers: str) -> tuple[int, dict[str, str], dict]:  # type: ignore[type-arg]
    async with gw.http.post(gw.url + path, json=body, headers=headers) as r:
        return r.status, dict(r.headers), await r.json()


async def _get(gw: Gateway, path: str, **headers: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    async with gw.http.get(gw.url + path, headers=headers) as r:
        return r.status, await r.json()


async def test_a_browser_call_needs_a_join_token_used_once(auth_server: AuthServer, make_gateway) -> None:  # type: ignore[no-untyped-def]
    gw: Gateway = await make_gateway()
    status, _, body = await _post(gw, "/api/calls/start", {})
    assert status == 401 and body["error"]["code"] == "JOIN_TOKEN_REQUIRED"

    call_id, token = await _mint(auth_server)
    status, _, started = await _post(gw, "/api/calls/start", {"join_token": token})
    assert status == 200, started
    assert started["call_id"] == call_id and started["customer_token"]

    # Spent: the same link cannot start (or take over) the call again.
    status, _, body = await _post(gw, "/api/calls/start", {"join_token": token, "call_id": call_id})
    assert (status, body["error"]["code"]) == (401, "JOIN_TOKEN_USED")

    forged = "cpj_" + "A" * 43
    status, _, body = await _post(gw, "/api/calls/start", {"join_token": forged})
    assert (status, body["error"]["code"]) == (401, "INVALID_JOIN_TOKEN")

    # A token names its call: presenting it for another call is refused.
    other_id, other_token = await _mint(auth_server)
    status, _, body = await _post(gw, "/api/calls/start", {"join_token": other_token, "call_id": call_id})
    assert status == 403 and body["error"]["code"] == "JOIN_TOKEN_OTHER_CALL"

    # The customer's leg needs the call's customer token; the agent's needs an agent key.
    offer = {"call_id": call_id, "role": "customer", "sdp": "v=0\r\n", "type": "offer"}
    status, _, body = await _post(gw, "/api/webrtc/offer", offer)
    assert (status, body["error"]["code"]) == (401, "INVALID_CUSTOMER_TOKEN")
    status, _, body = await _post(gw, "/api/webrtc/offer", {**offer, "role": "agent"})
    assert (status, body["error"]["code"]) == (401, "MISSING_CREDENTIALS")
    status, _, body = await _post(
        gw, "/api/webrtc/offer", {**offer, "role": "agent"}, Authorization=f"Bearer {auth_server.integrator}"
    )
    assert (status, body["error"]["code"]) == (403, "ROLE_NOT_ALLOWED")
    # Past the credential checks, the (bad) SDP is what is refused.
    customer = {"Authorization": f"Bearer {started['customer_token']}"}
    status, _, body = await _post(gw, "/api/webrtc/offer", offer, **customer)
    assert (status, body["error"]["code"]) == (400, "INVALID_SDP")

    # The call's state: its customer or an agent of its tenant, nobody else.
    assert (await _get(gw, f"/api/calls/{call_id}", **customer))[0] == 200
    assert (await _get(gw, f"/api/calls/{call_id}", Authorization=f"Bearer {auth_server.agent}"))[0] == 200
    status, body = await _get(gw, f"/api/calls/{call_id}")
    assert (status, body["error"]["code"]) == (401, "MISSING_CREDENTIALS")
    status, body = await _get(gw, f"/api/calls/{call_id}", Authorization=f"Bearer {auth_server.other_agent}")
    assert status == 404

    # The waiting list is for agents.
    status, body = await _get(gw, "/api/calls/waiting")
    assert status == 401
    status, body = await _get(gw, "/api/calls/waiting", Authorization="Bearer cp_not_a_real_key")
    assert status == 401 and body["error"]["code"]
    status, body = await _get(gw, f"/api/calls/waiting?access_token={auth_server.agent}")
    assert status == 200 and body == {"calls": []}

    # An agent's event stream is WatchCall with the agent's own key.
    async with gw.http.get(
        f"{gw.url}/api/calls/{call_id}/events", headers={"Authorization": f"Bearer {auth_server.agent}"}
    ) as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/event-stream")
        first = await asyncio.wait_for(r.content.readline(), 20)
        assert first.startswith(b"id: ")
    status, _, body = await _post(gw, "/api/webrtc/hangup", {"call_id": other_id, "role": "customer"})
    assert status == 404  # never started here


async def test_an_expired_join_token_is_refused(auth_server: AuthServer, make_gateway) -> None:  # type: ignore[no-untyped-def]
    _, token = await _mint(auth_server)
    await asyncio.sleep(JOIN_TTL_S + 1)
    gw: Gateway = await make_gateway()
    status, _, body = await _post(gw, "/api/calls/start", {"join_token": token})
    assert (status, body["error"]["code"]) == (401, "JOIN_TOKEN_EXPIRED")
    assert "expired" in body["error"]["message"]


async def test_browser_call_slots_are_limited_per_client_and_per_tenant(  # type: ignore[no-untyped-def]
    auth_server: AuthServer, make_gateway
) -> None:
    gw: Gateway = await make_gateway(browser_calls_per_client=2)
    for _ in range(2):
        status, _, body = await _post(gw, "/api/calls/start", {"join_token": (await _mint(auth_server))[1]})
        assert status == 200, body
    _, spare = await _mint(auth_server)
    status, headers, body = await _post(gw, "/api/calls/start", {"join_token": spare})
    assert (status, body["error"]["code"]) == (429, "TOO_MANY_CALLS")
    assert int(headers["Retry-After"]) > 0 and "this client" in body["error"]["message"]

    tenant_gw: Gateway = await make_gateway(browser_calls_per_client=10, browser_calls_per_tenant=1)
    status, _, body = await _post(tenant_gw, "/api/calls/start", {"join_token": spare})
    assert status == 200, body
    status, headers, body = await _post(
        tenant_gw, "/api/calls/start", {"join_token": (await _mint(auth_server))[1]}
    )
    assert (status, body["error"]["code"]) == (429, "TOO_MANY_CALLS") and "Retry-After" in headers
    assert "tenant" in body["error"]["message"]


async def test_behind_a_proxy_the_client_is_the_last_forwarded_address(  # type: ignore[no-untyped-def]
    auth_server: AuthServer, make_gateway
) -> None:
    gw: Gateway = await make_gateway(browser_calls_per_client=1, trust_forwarded_for=True)

    async def start(forwarded: str) -> int:
        token = (await _mint(auth_server))[1]
        status, _, _ = await _post(
            gw, "/api/calls/start", {"join_token": token}, **{"X-Forwarded-For": forwarded}
        )
        return status

    assert await start("203.0.113.1") == 200
    assert await start("203.0.113.2") == 200  # another browser behind the same proxy
    # The first entries are the client's own claims; the proxy's (last) entry decides.
    assert await start("198.51.100.9, 203.0.113.1") == 429


async def test_origins_come_from_settings_never_from_the_host_header(make_gateway) -> None:  # type: ignore[no-untyped-def]
    gw: Gateway = await make_gateway()
    rebinding = {"Origin": "http://evil.example", "Host": "evil.example"}
    status, _, body = await _post(gw, "/api/calls/start", {}, **rebinding)
    assert (status, body["error"]["code"]) == (403, "ORIGIN_NOT_ALLOWED")
    status, body = await _get(gw, "/api/calls/waiting", **rebinding)
    assert status == 403
    # The configured public origin gets as far as the credential check.
    status, _, body = await _post(gw, "/api/calls/start", {}, Origin=PUBLIC, Host="desk.example.com")
    assert (status, body["error"]["code"]) == (401, "JOIN_TOKEN_REQUIRED")
    # On a loopback listener its own loopback origin is the gateway's.
    status, _, body = await _post(gw, "/api/calls/start", {}, Origin=gw.url)
    assert status == 401
