"""A live call on the agent desk through a gateway that is killed and
restarted: the call's state is one badge (live → reconnecting → live →
ended), the outage message says what to do without moving the page, the
customer is named from one source, identity is not a suggestion, a new
suggestion is announced, and ending the call opens the wrap-up whose edits
stay in the app. Text turns (no speech), headless Chromium, a real server.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from callpilot.client import AsyncCallpilot
from callpilot.v1 import call_pb2, common_pb2, events_pb2
from support import ServerProcess
from web.procs import JS_DIR, GatewayProcess, JsBuild
from web.screenshots import SCREENSHOTS

TURNS = [
    (common_pb2.SPEAKER_ROLE_AGENT, "Thanks for calling Acme support, this is Sam. How can I help?"),
    (common_pb2.SPEAKER_ROLE_CUSTOMER, "Hi, my name is Maria Garcia. I am calling about my order 78901."),
    (common_pb2.SPEAKER_ROLE_CUSTOMER, "The headphones arrived broken and I would like a refund please."),
]


@pytest.fixture
def own_gateway(web_server: ServerProcess, js_build: JsBuild, artifacts: Path) -> Iterator[GatewayProcess]:
    """A gateway of its own: this test kills it."""
    proc = GatewayProcess(
        web_server.address, artifacts / "gateway-desk-live.log", static_dir=js_build.app_dir
    )
    proc.start()
    yield proc
    proc.stop()


async def _read_until(stream: asyncio.StreamReader, predicate: object, what: str, timeout: float) -> str:
    async with asyncio.timeout(timeout):
        while True:
            raw = await stream.readline()
            assert raw, f"the browser script ended before {what}"
            line = raw.decode().rstrip("\n")
            if predicate(line):  # type: ignore[operator]
                return line


@pytest.mark.chromium
async def test_live_call_on_the_desk(
    web_server: ServerProcess, own_gateway: GatewayProcess, artifacts: Path
) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    async with (
        AsyncCallpilot(web_server.address) as cp,
        cp.stream_call(None, call_pb2.CallConfig(), end_when_audio_ends=False, timeout=150) as call,
    ):
        for role, text in TURNS:
            await call.send_text(role, text)
        events: list[events_pb2.CallEvent] = []
        started = asyncio.Event()

        async def drain() -> None:
            async for event in call:
                events.append(event)
                started.set()

        drainer = asyncio.create_task(drain())
        await asyncio.wait_for(started.wait(), 30)
        call_id = events[0].call_id
        browser = await asyncio.create_subprocess_exec(
            "node",
            str(JS_DIR / "desk_live.mjs"),
            own_gateway.url,
            call_id,
            str(SCREENSHOTS),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            assert browser.stdout is not None
            await _read_until(browser.stdout, lambda line: line == "STEP kill-gateway", "kill-gateway", 90)
            own_gateway.kill()
            await _read_until(browser.stdout, lambda line: line == "STEP restart-gateway", "restart", 60)
            own_gateway.start()
            result = await _read_until(browser.stdout, lambda line: line.startswith("{"), "the result", 90)
            assert await asyncio.wait_for(browser.wait(), 30) == 0
        finally:
            if browser.returncode is None:
                browser.kill()
                await browser.wait()
            stderr = (await browser.stderr.read()).decode() if browser.stderr else ""
            (artifacts / "desk-live.log").write_text(stderr)
        await asyncio.wait_for(drainer, 30)  # "End call" in the app ended the stream
    seen = json.loads(result)
    (artifacts / "desk-live.json").write_text(json.dumps(seen, indent=2))
    assert events[-1].call_ended.reason == call_pb2.CALL_END_REASON_END_CALL_RPC

    # Live: one badge, one name (title and card agree), identity not shown as a suggestion.
    live = seen["live"]
    assert live["states"] == [["live", "Live"]]
    assert live["title"] == "Maria Garcia" and live["identityFrom"] in ("context", "lookup")
    assert not any(t.startswith("The caller is") for t in live["suggestionTexts"])
    assert live["suggestionTexts"], "a suggestion to act on is shown"
    assert live["lookupCustomerCards"] == 0
    assert len(live["toolKeys"]) == len(set(live["toolKeys"])), live["toolKeys"]
    # The live region announced the newest suggestion.
    assert live["announcerLive"] == "polite"
    assert (
        live["announcer"].startswith("New suggestion: ") and live["announcer"][16:] in live["suggestionTexts"]
    )
    assert live["lines"] >= 3 and live["times"] == live["lines"]
    assert seen["axeLive"] == [] and seen["axeLivePhone"] == [] and seen["axeEnded"] == []
    assert not seen["phoneOverflow"]

    # Outage: the one badge says so (no "Live" next to it); the message says what to do; nothing moved.
    outage = seen["outage"]
    assert outage["states"] == [["reconnecting", "Reconnecting…"]]
    assert "gateway is running" in outage["text"] and "Keep talking" in outage["text"]
    assert outage["gridTop"] == outage["before"]["gridTop"]
    assert seen["back"]["states"] == [["live", "Live"]]

    # End: the wrap-up opens, takes the focus, and the columns stay where they were.
    ended = seen["ended"]
    assert ended["states"] == [["ended", "Ended"]]
    assert ended["focused"] == "wrapup-title"
    assert ended["banners"] == 0
    assert ended["gridTop"] == ended["beforeEnd"]["gridTop"]
    assert ended["transcriptTop"] == ended["beforeEnd"]["transcriptTop"]
    assert "ended from the desk" in ended["reason"]
    # The agent's edits are kept in the app (saving waits for a server RPC).
    assert seen["kept"] == {
        "summary": "Refund agreed for order 78901.",
        "disposition": "follow-up",
        "followUps": ["Email the return label"],
    }

    assert seen["errors"] == [], seen["errors"]
    assert all("net::ERR_" in e or "Failed to load resource" in e for e in seen["outageErrors"])
