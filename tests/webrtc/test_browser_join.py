"""A browser call with auth on, in headless Chromium: the customer opens the integrator's
link (`/call#join=<token>`), the agent signs in on `/answer` with an agent key and
answers; opening the spent link again shows why it cannot be used.

Real parts: `callpilot serve` (CALLPILOT_AUTH=on, null STT, keys by `callpilot keys
create`), `callpilot gateway` (auth on, loopback ICE), two Chromium processes with fake
microphones. Marked slow (two browsers, real media).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from callpilot.client import AsyncCallpilot
from callpilot.v1 import assist_service_pb2
from web.auth_support import AuthServer
from web.auth_support import auth_server as start_auth_server
from webrtc.browser import room_noise_wav
from webrtc.processes import GatewayProcess
from webrtc.test_browser_call import party

pytestmark = [pytest.mark.chromium, pytest.mark.slow]


@pytest.fixture(scope="module")
def authed(tmp_path_factory: pytest.TempPathFactory, artifacts: Path) -> Iterator[AuthServer]:
    with start_auth_server(
        tmp_path_factory.mktemp("join-browser"), artifacts / "server-join-browser.log"
    ) as s:
        yield s


@pytest.fixture(scope="module")
def auth_gateway(authed: AuthServer, artifacts: Path) -> Iterator[GatewayProcess]:
    proc = GatewayProcess(
        authed.proc.address,
        {"CALLPILOT_AUTH": "on", "CALLPILOT_ICE_LOOPBACK": "1"},
        artifacts / "gateway-join-browser.log",
    ).start()
    yield proc
    proc.stop()


async def test_join_link_and_agent_sign_in(
    auth_gateway: GatewayProcess, authed: AuthServer, tmp_path: Path, artifacts: Path
) -> None:
    async with AsyncCallpilot(authed.proc.address, api_key=authed.integrator) as sdk:
        created = await sdk.assist.CreateCall(assist_service_pb2.CreateCallRequest())
    call_id, token = created.call.call_id, created.join_token
    quiet = room_noise_wav(tmp_path / "quiet.wav", 30)
    async with (
        party(quiet, "join-customer", tmp_path, artifacts) as customer,
        party(quiet, "join-agent", tmp_path, artifacts) as agent,
    ):
        await customer.goto(f"{auth_gateway.base}/call#join={token}")
        assert await customer.eval("window.location.href") == f"{auth_gateway.base}/call"
        await customer.click("#call")
        assert await customer.wait_for("window.callpilotPage.callId", 20) == call_id
        await customer.wait_for("window.callpilotPage.states.includes('connected')", 20)

        # The agent page asks for a key (the waiting list is for agents), then lists the customer.
        await agent.goto(f"{auth_gateway.base}/answer")
        await agent.wait_for("!document.querySelector('#signin').hidden", 20)
        await agent.command("fill", selector="#agent-key", value=authed.agent)
        await agent.click("#signin-form button")
        await agent.wait_for("document.querySelector('#waiting button') !== null", 20)
        assert await agent.eval("document.querySelector('#signin').hidden")
        await agent.click("#waiting button")
        await agent.wait_for("window.callpilotPage.states.includes('connected')", 20)
        assert await agent.eval("window.callpilotPage.callId") == call_id
        await agent.wait_for("window.callpilotPage.events > 0", 20)  # its event stream, with its key

        await agent.click("#hangup")
        await customer.click("#hangup")
        await customer.wait_for("window.callpilotPage.ended !== ''", 20)

        # The link again: spent.
        await customer.goto(f"{auth_gateway.base}/call?join={token}")
        await customer.click("#call")
        await customer.wait_for("window.callpilotPage.errors.length > 0", 20)
        [error] = await customer.eval("window.callpilotPage.errors")
        assert error.startswith("This call link cannot be used") and "already used" in error

    # The credentials that travelled in query strings (websocket, EventSource, the link) are not logged.
    log = (artifacts / "gateway-join-browser.log").read_text()
    assert "access_token=%5Bredacted%5D" in log
    assert authed.agent not in log and token not in log
