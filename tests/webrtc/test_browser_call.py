"""Browser calls in headless Chromium: the customer page and the agent page on one call.

Each party is its own Chromium (the fake microphone file is per process)
playing synthesised speech; the test watches the call through WatchCall
with the Python SDK, exactly as a CRM would.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from callpilot.client import AsyncCallpilot
from callpilot.v1 import call_pb2, common_pb2, events_pb2
from google.protobuf import json_format
from support import ServerProcess
from webrtc.browser import Browser, capture_wav, room_noise_wav
from webrtc.processes import GatewayProcess

pytestmark = [pytest.mark.chromium, pytest.mark.slow]

CUSTOMER = common_pb2.SPEAKER_ROLE_CUSTOMER
AGENT = common_pb2.SPEAKER_ROLE_AGENT


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


class CallWatcher:
    """Collects a call's events from WatchCall in the background."""

    def __init__(self, server: ServerProcess, call_id: str) -> None:
        self.events: list[events_pb2.CallEvent] = []
        self.call_id = call_id
        self._task = asyncio.create_task(self._run(server.address))

    async def _run(self, address: str) -> None:
        async with AsyncCallpilot(address) as cp:
            async for event in cp.watch_call(self.call_id):
                self.events.append(event)

    def finals(self, role: int) -> list[events_pb2.TranscriptUpdate]:
        return [
            e.transcript
            for e in self.events
            if e.HasField("transcript") and e.transcript.is_final and e.transcript.role == role
        ]

    def said(self, role: int) -> set[str]:
        return words(" ".join(t.text for t in self.finals(role)))

    async def until(self, check: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            if self._task.done() or time.monotonic() > deadline:
                said = {role: self.said(role) for role in (CUSTOMER, AGENT)}
                raise AssertionError(f"no {what} within {timeout:.0f}s (heard so far: {said})")
            await asyncio.sleep(0.2)

    async def ended(self, timeout: float) -> events_pb2.CallEvent:
        await asyncio.wait_for(asyncio.shield(self._task), timeout)
        assert self.events and self.events[-1].HasField("call_ended")
        return self.events[-1]

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(BaseException):
            await self._task


@contextlib.asynccontextmanager
async def party(audio: Path, name: str, tmp_path: Path, artifacts: Path) -> AsyncIterator[Browser]:
    browser = Browser(audio, tmp_path / f"profile-{name}", artifacts / f"chromium-{name}.log")
    try:
        yield await browser.start()
    finally:
        await browser.close()


async def inbound_audio(page: Browser) -> dict[str, float]:
    """What the page's RTCPeerConnection received: bytes and audio energy (0 for pure silence)."""
    result: dict[str, float] = await page.eval(
        """(async () => {
          const out = {bytes: 0, energy: 0};
          (await window.callpilotPage.leg.pc.getStats()).forEach((r) => {
            if (r.type === "inbound-rtp" && r.kind === "audio") {
              out.bytes += r.bytesReceived || 0;
              out.energy += r.totalAudioEnergy || 0;
            }
          });
          return out;
        })()"""
    )
    return result


async def test_customer_and_agent_pages_talk_and_both_are_transcribed(
    gateway: GatewayProcess,
    webrtc_server: ServerProcess,
    voices: dict[str, Path],
    tmp_path: Path,
    artifacts: Path,
) -> None:
    customer_wav = capture_wav(voices["customer"], tmp_path / "customer48.wav", lead_silence_s=2.0)
    agent_wav = capture_wav(voices["agent"], tmp_path / "agent48.wav", lead_silence_s=2.5)
    watcher: CallWatcher | None = None
    async with (
        party(customer_wav, "customer", tmp_path, artifacts) as customer,
        party(agent_wav, "agent", tmp_path, artifacts) as agent,
    ):
        try:
            await customer.goto(f"{gateway.base}/call")
            await customer.command("fill", selector="#hint", value="C-1001")
            await customer.click("#call")
            call_id = await customer.wait_for("window.callpilotPage.callId", 20)
            watcher = CallWatcher(webrtc_server, call_id)
            await customer.wait_for("window.callpilotPage.states.includes('connected')", 20)

            # The agent picks the waiting customer from the list.
            await agent.goto(f"{gateway.base}/answer")
            await agent.wait_for("document.querySelector('#waiting button') !== null", 20)
            await agent.click("#waiting button")
            await agent.wait_for("window.callpilotPage.states.includes('connected')", 20)
            assert await agent.eval("window.callpilotPage.callId") == call_id

            await watcher.until(
                lambda: {"order", "78901", "refund"} <= watcher.said(CUSTOMER), 90, "customer's request"
            )
            await watcher.until(lambda: {"look", "order"} <= watcher.said(AGENT), 60, "agent's answer")
            await watcher.until(
                lambda: any(
                    e.HasField("suggestion_completed") and "78901" in e.suggestion_completed.text
                    for e in watcher.events
                ),
                60,
                "suggestion about order 78901",
            )

            # Both pages connected; each heard the other party (audio energy, not just packets).
            for page in (customer, agent):
                assert "connected" in await page.eval("window.callpilotPage.states")
                assert await page.eval("window.callpilotPage.errors") == []
            heard = await inbound_audio(agent)
            assert heard["bytes"] > 20_000 and heard["energy"] > 0, heard
            assert (await inbound_audio(customer))["energy"] > 0
            # The customer page knew who was calling (the hint resolved to a directory customer)
            # and saw the agent join; the agent page followed the transcript live.
            call_state = await customer.eval("window.callpilotPage.call")
            assert (
                call_state["customer_id"] == "C-1001" and call_state["legs"]["agent"]["state"] == "connected"
            )
            await agent.wait_for("window.callpilotPage.finals.some((f) => f.role === 'agent')", 20)

            await customer.click("#hangup")
            await agent.wait_for("window.callpilotPage.call.legs.customer.state === 'ended'", 20)
            await agent.click("#hangup")
            ended = await watcher.ended(60)
            assert ended.call_ended.reason == call_pb2.CALL_END_REASON_CLIENT_ENDED
        finally:
            if watcher is not None:
                await watcher.close()

    # The assistant looked the order up and suggested from its real data.
    tools = [e.tool_call for e in watcher.events if e.HasField("tool_call")]
    order = [t for t in tools if t.tool_name == "get_order_details"]
    assert order and order[-1].status == events_pb2.TOOL_CALL_STATUS_SUCCEEDED, tools
    assert "78901" in str(json_format.MessageToDict(order[-1].result))
    # Everything final is stored with its role.
    async with AsyncCallpilot(webrtc_server.address) as cp:
        stored = await cp.get_call(call_id)
    assert stored.call.state == call_pb2.CALL_STATE_ENDED and stored.call.customer_id == "C-1001"
    assert {t.role for t in stored.transcript} == {CUSTOMER, AGENT}
    assert stored.call.config.audio.channel_roles == [CUSTOMER, AGENT]


async def test_customer_tab_closed_mid_sentence_keeps_its_finals_and_the_call_waits_for_the_agent(
    gateway: GatewayProcess,
    webrtc_server: ServerProcess,
    voices: dict[str, Path],
    tmp_path: Path,
    artifacts: Path,
) -> None:
    customer_wav = capture_wav(voices["cut"], tmp_path / "cut48.wav", lead_silence_s=3.0)
    quiet_wav = room_noise_wav(tmp_path / "quiet48.wav", 120.0)
    watcher: CallWatcher | None = None
    async with (
        party(customer_wav, "cut-customer", tmp_path, artifacts) as customer,
        party(quiet_wav, "cut-agent", tmp_path, artifacts) as agent,
    ):
        try:
            await customer.goto(f"{gateway.base}/call")
            await customer.click("#call")
            call_id = await customer.wait_for("window.callpilotPage.callId", 20)
            watcher = CallWatcher(webrtc_server, call_id)
            await agent.goto(f"{gateway.base}/answer?call_id={call_id}")
            await agent.click("#answer")
            await agent.wait_for("window.callpilotPage.states.includes('connected')", 20)

            first = await watcher.until(
                lambda: next((t for t in watcher.finals(CUSTOMER) if "order" in t.text.lower()), None),
                60,
                "the first sentence",
            )
            # Close the tab while the second sentence is being said (its interims are arriving).
            await watcher.until(
                lambda: any(
                    e.HasField("transcript")
                    and not e.transcript.is_final
                    and e.transcript.role == CUSTOMER
                    and e.transcript.segment_id != first.segment_id
                    for e in watcher.events
                ),
                30,
                "the second sentence to start",
            )
            # No goodbye from the page: the gateway must notice the closed tab from the connection itself.
            await customer.eval("window.callpilotPage.leg.beacon = () => {}")
            await customer.close_page()

            # The customer's leg ends; the agent is told; the call goes on.
            reason = await agent.wait_for(
                "window.callpilotPage.call && window.callpilotPage.call.legs.customer.state === 'ended'"
                " && window.callpilotPage.call.legs.customer.reason",
                20,
            )
            assert reason == "no-media"
            assert await agent.eval("window.callpilotPage.call.state") == "live"
            # What the customer said before leaving is final and stored, the cut sentence included.
            await watcher.until(lambda: len(watcher.finals(CUSTOMER)) >= 2, 30, "the cut sentence's final")
            async with AsyncCallpilot(webrtc_server.address) as cp:
                stored = await cp.get_call(call_id)
            assert stored.call.state == call_pb2.CALL_STATE_ACTIVE
            texts = [t.text.lower() for t in stored.transcript if t.role == CUSTOMER]
            assert any("order" in t for t in texts) and len(texts) >= 2, texts
            assert any("headphones" in t or "broken" in t for t in texts), texts

            # The call ends when the agent leaves.
            await agent.click("#hangup")
            ended = await watcher.ended(60)
            assert ended.call_ended.reason == call_pb2.CALL_END_REASON_CLIENT_ENDED
        finally:
            if watcher is not None:
                await watcher.close()
