"""End to end (slow: real Whisper): a two-party call through each connector is transcribed per role and assisted.

The customer (flite kal) asks about order 78901 on one track/channel, the
agent (flite slt) answers on the other, in 20 ms μ-law frames paced in real
time. The test reads the call back through WatchCall, as a CRM would.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from callpilot.client import AsyncCallpilot
from callpilot.v1 import call_pb2, common_pb2, events_pb2
from connectors.audiohook_client import AudioHookClient
from connectors.calls import find_call
from connectors.conftest import API_KEY, AUDIOHOOK_SECRET, TWILIO_TOKEN
from connectors.twilio_client import MediaStream
from google.protobuf import json_format
from support import GatewayProcess, ServerProcess

pytestmark = pytest.mark.slow

CUSTOMER, AGENT = common_pb2.SPEAKER_ROLE_CUSTOMER, common_pb2.SPEAKER_ROLE_AGENT


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


class Watcher:
    """WatchCall in the background, from the first event."""

    def __init__(self, address: str, call_id: str) -> None:
        self.events: list[events_pb2.CallEvent] = []
        self._task = asyncio.create_task(self._run(address, call_id))

    async def _run(self, address: str, call_id: str) -> None:
        async with AsyncCallpilot(address) as cp:
            async for event in cp.watch_call(call_id):
                self.events.append(event)

    def said(self, role: int) -> set[str]:
        finals = [
            e.transcript.text for e in self.events if e.HasField("transcript") and e.transcript.is_final
        ]
        roles = [e.transcript.role for e in self.events if e.HasField("transcript") and e.transcript.is_final]
        return words(" ".join(t for t, r in zip(finals, roles, strict=True) if r == role))

    async def until(self, check: Callable[[], Any], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if self._task.done() or time.monotonic() > deadline:
                heard = {"customer": self.said(CUSTOMER), "agent": self.said(AGENT)}
                raise AssertionError(f"no {what} within {timeout:.0f}s (heard: {heard})")
            await asyncio.sleep(0.2)

    async def ended(self, timeout: float) -> None:
        await asyncio.wait_for(asyncio.shield(self._task), timeout)

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(BaseException):
            await self._task


async def check_assisted(server: ServerProcess, watcher: Watcher, call_id: str) -> None:
    await watcher.until(
        lambda: {"order", "78901", "refund"} <= watcher.said(CUSTOMER), 90, "customer's request"
    )
    await watcher.until(lambda: {"look", "order"} <= watcher.said(AGENT), 60, "agent's answer")
    await watcher.until(
        lambda: any(
            e.HasField("suggestion_completed") and "78901" in e.suggestion_completed.text
            for e in watcher.events
        ),
        90,
        "suggestion about order 78901",
    )
    await watcher.ended(90)
    # Each party's words are final under its own role only.
    assert not {"refund", "78901"} & watcher.said(AGENT)
    assert not {"look"} & watcher.said(CUSTOMER)
    tools = [e.tool_call for e in watcher.events if e.HasField("tool_call")]
    order = [t for t in tools if t.tool_name == "get_order_details"]
    assert order and order[-1].status == events_pb2.TOOL_CALL_STATUS_SUCCEEDED, tools
    assert "78901" in str(json_format.MessageToDict(order[-1].result))
    async with AsyncCallpilot(server.address) as cp:
        stored = await cp.get_call(call_id)
    assert stored.call.state == call_pb2.CALL_STATE_ENDED and stored.call.customer_id == "C-1001"
    assert {t.role for t in stored.transcript} == {CUSTOMER, AGENT}


async def test_a_twilio_call_with_both_tracks_is_transcribed_per_role_and_assisted(
    whisper_gateway: GatewayProcess, whisper_server: ServerProcess, conversation: tuple[bytes, bytes]
) -> None:
    customer, agent = conversation
    stream = MediaStream(whisper_gateway.url, TWILIO_TOKEN)
    watcher: Watcher | None = None
    try:
        await stream.open()
        await stream.start({"callpilot_key": API_KEY, "caller": "+15550100101"})
        call = await find_call(whisper_server.address, "twilio_call_sid", stream.call_sid)
        assert call is not None
        watcher = Watcher(whisper_server.address, call.call_id)
        await stream.play(customer, agent)
        await stream.stop()
        code, _ = await stream.closed()
        assert code == 1000
        await check_assisted(whisper_server, watcher, call.call_id)
    finally:
        await stream.close()
        if watcher is not None:
            await watcher.close()


async def test_an_audiohook_session_is_transcribed_per_role_and_assisted(
    whisper_gateway: GatewayProcess, whisper_server: ServerProcess, conversation: tuple[bytes, bytes]
) -> None:
    customer, agent = conversation
    client = AudioHookClient(whisper_gateway.url)
    watcher: Watcher | None = None
    try:
        await client.connect(client.headers(API_KEY, AUDIOHOOK_SECRET))
        assert (await client.open())["type"] == "opened"
        call = await find_call(whisper_server.address, "genesys_conversation_id", client.conversation_id)
        assert call is not None
        watcher = Watcher(whisper_server.address, call.call_id)
        await client.play(customer, agent)
        assert (await client.close_session())["type"] == "closed"
        await client.close()
        await check_assisted(whisper_server, watcher, call.call_id)
    finally:
        await client.close()
        if watcher is not None:
            await watcher.close()
