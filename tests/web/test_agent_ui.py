"""The agent app end to end: a synthesised support call streamed with the CLI,
watched in headless Chromium through a gateway that is killed and restarted
mid-call.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from callpilot.client import AsyncCallpilot
from callpilot.v1 import assist_service_pb2, call_pb2, common_pb2, events_pb2
from support import VENV_BIN, ServerProcess, concat_wavs, silence_wav, synth
from web.procs import JS_DIR, GatewayProcess, JsBuild, last_json_line

# The customer's side of the call (as in tests/api), then silence so the call
# is still live while the gateway restarts.
CUSTOMER_LINES = [
    "Hi, my name is Maria Garcia.",
    "I am calling about my order seven eight nine oh one.",
    "The headphones arrived broken and I would like a refund please.",
]
TRAILING_SILENCE_S = 8.0


@pytest.fixture(scope="module")
def support_call(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("ui-speech")
    parts = [synth(line, d / f"line{i}.wav") for i, line in enumerate(CUSTOMER_LINES)]
    parts.append(silence_wav(d / "tail.wav", TRAILING_SILENCE_S))
    return concat_wavs(parts, d / "support_call.wav", gap_s=1.2)


@pytest.fixture
def ui_gateway(web_server: ServerProcess, js_build: JsBuild, artifacts: Path) -> Iterator[GatewayProcess]:
    """A gateway of its own: this test kills it."""
    proc = GatewayProcess(web_server.address, artifacts / "gateway-ui.log", static_dir=js_build.app_dir)
    proc.start()
    yield proc
    proc.stop()


class Lines:
    """A subprocess's stdout as a queue of lines (read by a thread, so waits are bounded)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.queue: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        assert proc.stdout is not None
        stdout = proc.stdout

        def pump() -> None:
            for line in stdout:
                self.queue.put(line.rstrip("\n"))
            self.queue.put(None)

        threading.Thread(target=pump, daemon=True).start()

    def next(self, timeout: float) -> str | None:
        line = self.queue.get(timeout=timeout)
        if line is not None:
            self.seen.append(line)
        return line

    def wait_for(self, predicate: object, timeout: float, what: str) -> str:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"timed out waiting for {what}; got: {self.seen[-5:]}"
            try:
                line = self.next(remaining)
            except queue.Empty:
                continue
            assert line is not None, f"the process ended before {what}; got: {self.seen[-5:]}"
            if predicate(line):  # type: ignore[operator]
                return line


def _kill(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)


@pytest.mark.chromium
@pytest.mark.slow
def test_live_call_in_the_agent_app(
    web_server: ServerProcess, ui_gateway: GatewayProcess, support_call: Path, artifacts: Path
) -> None:
    cli = subprocess.Popen(
        [str(VENV_BIN / "callpilot"), "call", str(support_call), "--server", web_server.address, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    browser: subprocess.Popen[str] | None = None
    try:
        cli_lines = Lines(cli)
        first = json.loads(cli_lines.wait_for(lambda line: line.startswith("{"), 60, "the call to start"))
        call_id = first["callId"]

        browser = subprocess.Popen(
            ["node", str(JS_DIR / "agent_ui.mjs"), ui_gateway.url, call_id, str(artifacts)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        steps = Lines(browser)
        steps.wait_for(lambda line: line == "STEP kill-gateway", 120, "the first final line in the app")
        assert cli.poll() is None, "the call ended before the gateway could be killed mid-call"
        ui_gateway.kill()
        steps.wait_for(lambda line: line == "STEP restart-gateway", 60, "the app to notice the outage")
        ui_gateway.start()
        result_line = steps.wait_for(lambda line: line.startswith("{"), 150, "the app's result")
        assert browser.wait(30) == 0, browser.stderr.read() if browser.stderr else ""
        assert cli.wait(60) == 0, cli.stderr.read() if cli.stderr else ""
    finally:
        for proc in (browser, cli):
            if proc is not None:
                _kill(proc)
    (artifacts / "agent-ui-result.json").write_text(result_line)
    seen = last_json_line(result_line)

    # The app: the call was listed as live, and the outage was shown in words.
    assert seen["listedLive"].lower() == "live"
    assert "Reconnecting" in seen["reconnectingText"]
    assert ui_gateway.starts == 2

    # Transcript: interims were shown dimmed, then replaced in place; after the
    # gateway restart nothing is duplicated or missing.
    assert seen["interims"], "interim hypotheses appeared"
    assert all(i["opacity"] < 1 for i in seen["interims"])
    lines = seen["transcript"]
    assert all(line["final"] for line in lines), lines
    ids = [line["id"] for line in lines]
    assert len(ids) == len(set(ids)), f"duplicated lines: {ids}"
    stored = asyncio.run(_get_call(web_server.address, call_id))
    assert [(t.segment_id, t.text) for t in stored.transcript] == [
        (line["id"], line["text"]) for line in lines
    ]
    assert seen["finalsBeforeOutage"] >= 1
    assert {line["role"] for line in lines} == {"Customer"}

    # Customer card, a tool result, insights and the completed suggestion with its sources.
    assert seen["customerName"] == "Maria Garcia"
    assert "Order details" in seen["toolText"] and "78901" in seen["toolText"]
    assert "Refund" in seen["topics"]
    assert {"kind": "order", "id": "78901", "href": "/orders/78901"} in seen["sources"]
    assert seen["suggestionText"] and seen["clipboard"] == seen["suggestionText"]
    assert not seen["narrowOverflow"], "the narrow layout scrolls sideways"

    # "Use" was stored as feedback on that suggestion.
    [used] = [s for s in stored.suggestions if s.suggestion.suggestion_id == seen["suggestionId"]]
    assert used.feedback.kind == assist_service_pb2.FEEDBACK_KIND_USED
    assert used.suggestion.text == seen["suggestionText"]

    # No console errors, except the browser's own network errors while the gateway was down.
    assert seen["errors"] == [], seen["errors"]
    assert all("net::ERR_" in e or "Failed to load resource" in e for e in seen["outageErrors"]), seen[
        "outageErrors"
    ]


async def _get_call(address: str, call_id: str) -> assist_service_pb2.GetCallResponse:
    async with AsyncCallpilot(address) as cp:
        return await cp.get_call(call_id)


DESK_TURNS = [
    (common_pb2.SPEAKER_ROLE_AGENT, "Thanks for calling Acme support, this is Sam. How can I help?"),
    (common_pb2.SPEAKER_ROLE_CUSTOMER, "Hi, my name is Maria Garcia. I am calling about my order 78901."),
    (common_pb2.SPEAKER_ROLE_AGENT, "Sure, let me pull that order up."),
    (common_pb2.SPEAKER_ROLE_CUSTOMER, "The headphones arrived broken and I would like a refund please."),
]
FILLER = [
    (common_pb2.SPEAKER_ROLE_AGENT, "Let me check that for you."),
    (common_pb2.SPEAKER_ROLE_CUSTOMER, "Okay."),
]


async def _read_until(stream: asyncio.StreamReader, predicate: object, what: str, timeout: float) -> str:
    async with asyncio.timeout(timeout):
        while True:
            raw = await stream.readline()
            assert raw, f"the browser script ended before {what}"
            line = raw.decode().rstrip("\n")
            if predicate(line):  # type: ignore[operator]
                return line


@pytest.mark.chromium
async def test_agent_desk_by_keyboard(
    web_server: ServerProcess, gateway: GatewayProcess, artifacts: Path
) -> None:
    """Rating, records, manual customer lookup, auto-scroll, ending the call, errors in words."""
    async with (
        AsyncCallpilot(web_server.address) as cp,
        cp.stream_call(None, call_pb2.CallConfig(), end_when_audio_ends=False, timeout=150) as call,
    ):
        for role, text in DESK_TURNS:
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
            str(JS_DIR / "agent_ui_interact.mjs"),
            gateway.url,
            call_id,
            str(artifacts),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            assert browser.stdout is not None
            await _read_until(browser.stdout, lambda line: line == "STEP more-lines", "more-lines", 90)
            for _ in range(12):
                for role, text in FILLER:
                    await call.send_text(role, text)
            await _read_until(browser.stdout, lambda line: line == "STEP scrolled-up", "scrolled-up", 60)
            for role, text in FILLER:
                await call.send_text(role, text)
            result = await _read_until(browser.stdout, lambda line: line.startswith("{"), "the result", 60)
            assert await asyncio.wait_for(browser.wait(), 30) == 0
        finally:
            if browser.returncode is None:
                browser.kill()
                await browser.wait()
            stderr = (await browser.stderr.read()).decode() if browser.stderr else ""
            (artifacts / "agent-ui-interact.log").write_text(stderr)
        await asyncio.wait_for(drainer, 30)  # "End call" in the app ended the stream
    seen = json.loads(result)
    (artifacts / "agent-ui-interact.json").write_text(result)

    assert events[-1].HasField("call_ended")
    assert events[-1].call_ended.reason == call_pb2.CALL_END_REASON_END_CALL_RPC
    assert "ended from the desk" in seen["endedText"]

    stored = await _get_call(web_server.address, call_id)
    [rated] = [s for s in stored.suggestions if s.suggestion.suggestion_id == seen["suggestionId"]]
    assert rated.feedback.kind == assist_service_pb2.FEEDBACK_KIND_RATED and rated.feedback.rating == 4

    assert "Order #78901" in seen["dialogText"] and "Wireless Headphones" in seen["dialogText"]
    assert seen["focusAfterSlash"] == "customer-search-input"
    assert "Type a name" in seen["emptySearchError"]
    assert "Luis Garcia" in seen["manualCard"] and "Looked up manually" in seen["manualCard"]
    assert seen["overflowing"] and seen["gapWhileFollowing"] < 48
    assert seen["scrollTopAfterNewLines"] < 5
    assert seen["jumped"] and seen["jumpText"].startswith("Jump to live")
    assert "Call not found" in seen["failedText"] and "no-such-call" in seen["failedText"]
    assert seen["badgesOnUnknown"] == 0
    assert seen["errors"] == [], seen["errors"]
