"""The supervisor's floor in headless Chromium while two calls stream on a
real server: the second call appears live, an alert fires live on the first
(with its reason, announced politely), a row opens the call's desk, and
axe-core finds nothing serious at 1280x800 or 390x844. Screenshots: floor-*.png
(web/screenshots.py says where).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from callpilot.client import AsyncCallpilot, CallStream
from callpilot.v1 import call_pb2, common_pb2, events_pb2
from support import ServerProcess
from web.procs import JS_DIR, GatewayProcess
from web.screenshots import SCREENSHOTS

CUSTOMER = common_pb2.SPEAKER_ROLE_CUSTOMER


async def _read_until(stream: asyncio.StreamReader, predicate: Callable[[str], bool], what: str) -> str:
    async with asyncio.timeout(90):
        while True:
            raw = await stream.readline()
            assert raw, f"the browser script ended before {what}"
            line = raw.decode().rstrip("\n")
            if predicate(line):
                return line


async def _first_event(call: CallStream, sink: list[events_pb2.CallEvent]) -> asyncio.Task[None]:
    started = asyncio.Event()

    async def drain() -> None:
        async for event in call:
            sink.append(event)
            started.set()

    task = asyncio.create_task(drain())
    await asyncio.wait_for(started.wait(), 30)
    return task


@pytest.mark.chromium
async def test_floor_shows_a_second_call_and_a_live_alert(
    web_server: ServerProcess, gateway: GatewayProcess, artifacts: Path
) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser = await asyncio.create_subprocess_exec(
        "node",
        str(JS_DIR / "floor.mjs"),
        gateway.url,
        str(SCREENSHOTS),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert browser.stdin is not None and browser.stdout is not None
    events_a: list[events_pb2.CallEvent] = []
    events_b: list[events_pb2.CallEvent] = []
    try:
        await _read_until(browser.stdout, lambda line: line == "READY", "the floor went live")
        async with AsyncCallpilot(web_server.address) as cp:
            call_a = cp.stream_call(None, call_pb2.CallConfig(), end_when_audio_ends=False, timeout=150)
            async with call_a:
                await call_a.send_text(
                    CUSTOMER, "Hi, my name is Maria Garcia. I am calling about my order 78901."
                )
                drain_a = await _first_event(call_a, events_a)
                browser.stdin.write(f"{events_a[0].call_id}\n".encode())
                await _read_until(browser.stdout, lambda line: line == "SAW-A", "call A on the floor")

                call_b = cp.stream_call(None, call_pb2.CallConfig(), end_when_audio_ends=False, timeout=150)
                async with call_b:
                    await call_b.send_text(CUSTOMER, "Hello, I have a question about a delivery.")
                    drain_b = await _first_event(call_b, events_b)
                    browser.stdin.write(f"{events_b[0].call_id}\n".encode())
                    await _read_until(browser.stdout, lambda line: line == "SAW-B", "call B on the floor")

                    # While both stream, the customer of call A asks for a manager.
                    await call_a.send_text(CUSTOMER, "This is not good enough. I want to speak to a manager.")
                    result = await _read_until(
                        browser.stdout, lambda line: line.startswith("{"), "the result"
                    )
                    await call_b.end()
                    await asyncio.wait_for(drain_b, 60)
                await call_a.end()
                await asyncio.wait_for(drain_a, 60)
        assert await asyncio.wait_for(browser.wait(), 30) == 0
    finally:
        if browser.returncode is None:
            browser.kill()
            await browser.wait()
        stderr = (await browser.stderr.read()).decode() if browser.stderr else ""
        (artifacts / "floor-page.log").write_text(stderr)
    seen = json.loads(result)
    (artifacts / "floor-page.json").write_text(json.dumps(seen, indent=2))

    # The alert is a durable event of call A with its triggering segment.
    alerts = [e.alert for e in events_a if e.HasField("alert")]
    assert [a.kind for a in alerts] == [events_pb2.ALERT_KIND_CUSTOMER_PHRASE]
    segment = next(e.transcript for e in events_a if e.transcript.segment_id == alerts[0].segment_id)
    assert "manager" in segment.text

    live = seen["live"]
    assert seen["bothShown"]
    assert live["rowA"].startswith("Maria Garcia") and events_a[0].call_id in live["rowA"]
    assert events_b[0].call_id in live["rowB"]
    assert live["alertChip"] == "Watched phrase"
    assert "Maria Garcia" in live["alertLog"] and "speak to a manager" in live["alertLog"]
    assert live["logLive"] == "polite"
    assert [t for t in live["headerLinks"] if t in ("Floor", "Insights")] == ["Floor", "Insights"]
    assert seen["openedDesk"] == f"/calls/{events_a[0].call_id}"
    assert seen["openedSearch"] == "?readonly=1" and "Supervisor view" in seen["openedReadonlyBanner"]
    assert seen["axe"] == {"desk": [], "phone": []}
    assert not seen["phoneOverflow"]
    assert seen["errors"] == [], seen["errors"]
    for size in ("1280x800", "390x844"):
        assert (SCREENSHOTS / f"floor-{size}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
