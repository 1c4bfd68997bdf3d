"""The signalling API and the call lifecycle, driven by aiortc peers (non-trickle, no websocket).

Browsers are exercised in test_browser_call.py; here the "pages" are
scripted aiortc peers, which makes the faults (silence, a peer that never
connects, a gateway stopped mid-call) cheap to produce.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import inspect
import json
import re
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from callpilot.client import AsyncCallpilot
from callpilot.v1 import call_pb2, common_pb2, events_pb2
from support import ServerProcess
from webrtc.peer import Party, WavTrack, ahttp_json, http_json
from webrtc.processes import TURN_SECRET, TURN_TTL_S, GatewayProcess

CUSTOMER = common_pb2.SPEAKER_ROLE_CUSTOMER
AGENT = common_pb2.SPEAKER_ROLE_AGENT


async def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll `check` (plain or async) until it returns something truthy; bounded."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.2)


async def leg_state(gw: GatewayProcess, call_id: str, role: str) -> dict[str, Any] | None:
    status, body = await ahttp_json(f"{gw.base}/api/calls/{call_id}")
    assert status == 200, body
    leg = body["legs"][role]
    return leg if isinstance(leg, dict) else None


async def start_call(gw: GatewayProcess, body: dict[str, Any] | None = None) -> str:
    status, started = await ahttp_json(f"{gw.base}/api/calls/start", body or {})
    assert status == 200, started
    return str(started["call_id"])


async def watch(server: ServerProcess, call_id: str, timeout: float = 90.0) -> list[events_pb2.CallEvent]:
    """Every event of the call until call_ended (bounded)."""

    async def collect() -> list[events_pb2.CallEvent]:
        async with AsyncCallpilot(server.address) as cp:
            return [event async for event in cp.watch_call(call_id)]

    return await asyncio.wait_for(collect(), timeout)


def finals(events: list[events_pb2.CallEvent]) -> list[events_pb2.TranscriptUpdate]:
    return [e.transcript for e in events if e.HasField("transcript") and e.transcript.is_final]


def words(items: list[events_pb2.TranscriptUpdate]) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", " ".join(t.text for t in items).lower()))


# ------------------------------------------------------------- validation


def test_bad_requests_get_4xx_json_a_page_can_show(quick_gateway: GatewayProcess) -> None:
    base = quick_gateway.base
    status, started = http_json(f"{base}/api/calls/start", {})
    assert status == 200 and started["call_id"].startswith("call-") and started["customer_id"] == ""
    call_id = started["call_id"]

    def offer(body: Any, raw: bytes | None = None) -> tuple[int, Any]:
        data = raw if raw is not None else json.dumps(body).encode()
        request = urllib.request.Request(f"{base}/api/webrtc/offer", data=data)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    cases = [
        (offer(None, raw=b"{not json"), 400, "INVALID_JSON"),
        (offer([1, 2]), 400, "INVALID_JSON"),
        (
            offer({"call_id": call_id, "role": "customer", "sdp": "garbage", "type": "offer"}),
            400,
            "INVALID_SDP",
        ),
        (offer({"call_id": call_id, "role": "boss", "sdp": "v=0", "type": "offer"}), 400, "INVALID_ROLE"),
        (
            offer({"call_id": "no such/call", "role": "agent", "sdp": "v=0", "type": "offer"}),
            400,
            "INVALID_CALL_ID",
        ),
        (
            offer({"call_id": call_id, "role": "agent", "sdp": "v=0", "type": "answer"}),
            400,
            "INVALID_ARGUMENT",
        ),
        (offer({"call_id": call_id, "role": "agent", "type": "offer"}), 400, "REQUIRED"),
        # An unknown call is 404 whatever the SDP (the call is looked up before the SDP is parsed).
        (
            offer({"call_id": "call-unknown", "role": "agent", "sdp": "garbage", "type": "offer"}),
            404,
            "CALL_NOT_FOUND",
        ),
        (
            offer({"call_id": "call-unknown", "role": "agent", "sdp": "v=0", "type": "offer"}),
            404,
            "CALL_NOT_FOUND",
        ),
        (
            offer({"call_id": call_id, "role": "agent", "sdp": "v=0", "type": "offer", "x": 1}),
            400,
            "UNKNOWN_FIELD",
        ),
    ]
    for (status, body), want_status, want_code in cases:
        assert status == want_status and body["error"]["code"] == want_code, body
        assert body["error"]["message"]
        assert set(body) == {"error"}  # the same JSON error body for every status
    status, body = http_json(f"{base}/api/calls/call-unknown")
    assert status == 404 and body["error"]["code"] == "CALL_NOT_FOUND"
    status, body = http_json(f"{base}/api/calls/start", {"customer_hint": {"nickname": "Mo"}})
    assert status == 400 and body["error"]["field"] == "customer_hint.nickname"
    status, body = http_json(f"{base}/api/webrtc/hangup", {"call_id": call_id, "role": "nobody"})
    assert status == 400 and body["error"]["code"] == "INVALID_ROLE"


async def test_unknown_call_and_second_customer_are_refused(
    quick_gateway: GatewayProcess, webrtc_server: ServerProcess
) -> None:
    base = quick_gateway.base
    stranger = Party(base, "call-doesnotexist", "customer", WavTrack(None))
    status, body = await stranger.join()
    assert status == 404 and body["error"]["code"] == "CALL_NOT_FOUND", body
    await stranger.close()

    call_id = await start_call(quick_gateway, {"customer_hint": {"customer_id": "C-1001"}})
    first = Party(base, call_id, "customer", WavTrack(None))
    second = Party(base, call_id, "customer", WavTrack(None))
    try:
        assert (await first.join())[0] == 200
        status, body = await second.join()
        assert status == 409 and body["error"]["code"] == "ROLE_TAKEN", body
        assert "already has a customer" in body["error"]["message"]
        status, body = await ahttp_json(f"{base}/api/calls/waiting")
        assert any(c["call_id"] == call_id and c["customer_id"] == "C-1001" for c in body["calls"])
    finally:
        await first.hang_up()
        await first.close()
        await second.close()
    events = await watch(webrtc_server, call_id)
    assert events[-1].call_ended.reason == call_pb2.CALL_END_REASON_CLIENT_ENDED
    # The call is over: a late offer is told so, not "not found".
    late = Party(base, call_id, "agent", WavTrack(None))
    status, body = await late.join()
    assert status == 409 and body["error"]["code"] == "CALL_ENDED", body
    await late.close()


async def test_origins_are_checked(quick_gateway: GatewayProcess) -> None:
    async with aiohttp.ClientSession() as http:
        url = f"{quick_gateway.base}/api/calls/start"
        async with http.post(url, json={}, headers={"Origin": "https://evil.example.net"}) as r:
            assert r.status == 403 and (await r.json())["error"]["code"] == "ORIGIN_NOT_ALLOWED"
        async with http.post(url, json={}, headers={"Origin": "https://agents.example.com"}) as r:
            assert (
                r.status == 200 and r.headers["Access-Control-Allow-Origin"] == "https://agents.example.com"
            )
            call_id = (await r.json())["call_id"]
        async with http.options(
            f"{quick_gateway.base}/api/webrtc/offer", headers={"Origin": "https://agents.example.com"}
        ) as r:
            assert r.status == 204 and "POST" in r.headers["Access-Control-Allow-Methods"]
        ws_url = f"{quick_gateway.base}/ws/ice-candidates/{call_id}?role=agent"
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await http.ws_connect(ws_url, headers={"Origin": "https://evil.example.net"})
        assert info.value.status == 403
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await http.ws_connect(f"{quick_gateway.base}/ws/ice-candidates/call-nope?role=agent")
        assert info.value.status == 404
        async with http.ws_connect(ws_url) as ws:
            first = await ws.receive_json(timeout=5)
            assert first["type"] == "state" and first["call"]["state"] == "waiting"
            await ws.send_json({"type": "candidate", "candidate": "candidate:bad", "sdpMid": "0"})
            error = await ws.receive_json(timeout=5)
            assert error["type"] == "error" and error["error"]["field"] == "candidate"


def test_ice_servers_carry_turn_credentials_that_expire_as_configured(quick_gateway: GatewayProcess) -> None:
    before = int(time.time())
    status, body = http_json(f"{quick_gateway.base}/api/webrtc/ice-servers")
    after = int(time.time())
    assert status == 200
    stun, turn = body["iceServers"]
    assert stun == {"urls": ["stun:127.0.0.1:3478"]}
    assert turn["urls"] == ["turn:127.0.0.1:3478?transport=udp", "turn:127.0.0.1:3478?transport=tcp"]
    expiry, _, user = turn["username"].partition(":")
    assert before + TURN_TTL_S <= int(expiry) <= after + TURN_TTL_S and user
    assert body["expiresAt"] == int(expiry) and body["ttlSeconds"] == TURN_TTL_S
    digest = hmac.new(TURN_SECRET.encode(), turn["username"].encode(), hashlib.sha1).digest()
    assert turn["credential"] == base64.b64encode(digest).decode()
    # Every page gets its own credential.
    assert (
        http_json(f"{quick_gateway.base}/api/webrtc/ice-servers")[1]["iceServers"][1]["username"]
        != turn["username"]
    )


# -------------------------------------------------------------- lifecycle


@pytest.mark.slow
async def test_two_parties_without_trickle_talk_and_are_transcribed_with_their_roles(
    gateway: GatewayProcess, webrtc_server: ServerProcess, voices: dict[str, Path]
) -> None:
    call_id = await start_call(gateway)
    customer = Party(gateway.base, call_id, "customer", WavTrack(voices["customer"], lead_silence_s=0.5))
    agent = Party(gateway.base, call_id, "agent", WavTrack(voices["agent"], lead_silence_s=1.0))
    watcher = asyncio.create_task(watch(webrtc_server, call_id, timeout=120))
    try:
        assert (await customer.join())[0] == 200
        assert (await agent.join())[0] == 200
        await asyncio.wait_for(asyncio.gather(customer.connected.wait(), agent.connected.wait()), 20)
        await wait_until(lambda: customer.track.done and agent.track.done, 60, "both parties to finish")
        # Each party heard the other (the relay), not just silence.
        assert agent.loud_frames_received > 50 and customer.loud_frames_received > 50
        # The agent hangs up through the API; the customer closes its connection (DTLS close).
        status, body = await agent.hang_up()
        assert status == 200 and body["call"]["legs"]["agent"]["reason"] == "hangup"
        assert (await leg_state(gateway, call_id, "customer") or {}).get("state") == "connected"
        await customer.close()
        await wait_until(
            lambda: _ended(gateway, call_id, "customer"), 20, "the customer's leg to end on DTLS close"
        )
        events = await watcher
    finally:
        watcher.cancel()
        await customer.close()
        await agent.close()
    said = finals(events)
    assert {"order", "78901", "refund"} <= words([t for t in said if t.role == CUSTOMER]), said
    assert {"look", "order"} <= words([t for t in said if t.role == AGENT]), said
    assert events[-1].call_ended.reason == call_pb2.CALL_END_REASON_CLIENT_ENDED


async def _ended(gw: GatewayProcess, call_id: str, role: str) -> str:
    leg = await leg_state(gw, call_id, role)
    return str(leg["reason"]) if leg and leg["state"] == "ended" else ""


async def test_silent_and_unconnected_legs_end_after_the_timeout(
    quick_gateway: GatewayProcess, webrtc_server: ServerProcess
) -> None:
    # A leg that sends only digital silence (a dead or muted microphone).
    call_id = await start_call(quick_gateway)
    mute = Party(quick_gateway.base, call_id, "customer", WavTrack(None))
    # A leg that offers but never connects (it ignores the answer).
    other_id = await start_call(quick_gateway)
    ghost = Party(quick_gateway.base, other_id, "customer", WavTrack(None))
    try:
        assert (await mute.join())[0] == 200
        await asyncio.wait_for(mute.connected.wait(), 10)
        sdp = await ghost.offer_sdp()
        status, _ = await ahttp_json(
            f"{quick_gateway.base}/api/webrtc/offer",
            {"call_id": other_id, "role": "customer", "sdp": sdp, "type": "offer"},
        )
        assert status == 200
        assert (
            await wait_until(lambda: _ended(quick_gateway, call_id, "customer"), 20, "silence") == "silence"
        )
        assert (
            await wait_until(lambda: _ended(quick_gateway, other_id, "customer"), 20, "no ICE")
            == "ice-failed"
        )
        # The last leg of each call is gone, so each call ended on the server.
        for cid in (call_id, other_id):
            events = await watch(webrtc_server, cid, timeout=30)
            assert events[-1].HasField("call_ended")
    finally:
        await mute.close()
        await ghost.close()


@pytest.mark.slow
async def test_stopping_the_gateway_mid_call_keeps_the_last_words(
    webrtc_server: ServerProcess, voices: dict[str, Path], artifacts: Path
) -> None:
    gw = GatewayProcess(
        webrtc_server.address, {"CALLPILOT_ICE_LOOPBACK": "1"}, artifacts / "gateway-webrtc-stop.log"
    ).start()
    customer: Party | None = None
    try:
        call_id = await start_call(gw)
        customer = Party(gw.base, call_id, "customer", WavTrack(voices["agent"], lead_silence_s=0.3))
        assert (await customer.join())[0] == 200
        watcher = asyncio.create_task(watch(webrtc_server, call_id, timeout=90))
        await wait_until(lambda: customer.track.done, 30, "the sentence to be said")
        # SIGTERM right after the last word: no pause for end-of-speech detection yet.
        assert await asyncio.to_thread(gw.stop) == 0
        events = await watcher
    finally:
        gw.stop()
        if customer is not None:
            await customer.close()
    said = finals(events)
    assert {"look", "order"} <= words(said), said
    assert events[-1].call_ended.reason == call_pb2.CALL_END_REASON_CLIENT_ENDED
