"""The agent app decides write tools end to end: a ticket the assistant
proposed is confirmed with the card's Confirm button, the next proposal is
cancelled with Cancel, the third is revised (its subject edited) with
Revise; headless Chromium, a real gateway and server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from callpilot.client import AsyncCallpilot
from callpilot.v1 import call_pb2, common_pb2, events_pb2
from support import ServerProcess
from web.procs import JS_DIR, GatewayProcess

CUSTOMER = common_pb2.SPEAKER_ROLE_CUSTOMER
PENDING = events_pb2.TOOL_CALL_STATUS_PENDING_CONFIRMATION
FIRST_REQUEST = "My headphones keep disconnecting, please open a ticket for that."
SECOND_REQUEST = "Actually, also escalate this please."
THIRD_REQUEST = "Please file a complaint, the delivery was late."
REVISED_SUBJECT = "Late delivery complaint (revised in the app)"


async def _tickets(cp: AsyncCallpilot) -> set[str]:
    return {t.ticket_id for t in (await cp.get_customer("C-1001")).tickets}


async def _read_until(stream: asyncio.StreamReader, prefix: str, what: str, timeout: float) -> str:
    async with asyncio.timeout(timeout):
        while True:
            raw = await stream.readline()
            assert raw, f"the browser script ended before {what}"
            line = raw.decode().rstrip("\n")
            if line.startswith(prefix):
                return line[len(prefix) :]


@pytest.mark.chromium
async def test_confirm_and_cancel_in_the_agent_app(
    web_server: ServerProcess, gateway: GatewayProcess, artifacts: Path
) -> None:
    hint = call_pb2.CustomerHint(customer_id="C-1001")
    async with (
        AsyncCallpilot(web_server.address) as cp,
        cp.stream_call(
            None, call_pb2.CallConfig(customer_hint=hint), end_when_audio_ends=False, timeout=60
        ) as call,
    ):
        before = await _tickets(cp)
        events: list[events_pb2.CallEvent] = []
        started = asyncio.Event()

        async def drain() -> None:
            async for event in call:
                events.append(event)
                started.set()

        drainer = asyncio.create_task(drain())
        await call.send_text(CUSTOMER, FIRST_REQUEST)
        await asyncio.wait_for(started.wait(), 30)
        call_id = events[0].call_id
        browser = await asyncio.create_subprocess_exec(
            "node",
            str(JS_DIR / "agent_ui_tools.mjs"),
            gateway.url,
            call_id,
            str(artifacts),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            assert browser.stdout is not None
            step = await _read_until(browser.stdout, "STEP confirmed ", "the confirmation", 45)
            confirmed = json.loads(step)
            # Confirm in the app wrote the ticket before the next request.
            after_confirm = await _tickets(cp)
            await call.send_text(CUSTOMER, SECOND_REQUEST)
            await _read_until(browser.stdout, "STEP cancelled", "the cancellation", 45)
            after_cancel = await _tickets(cp)
            await call.send_text(CUSTOMER, THIRD_REQUEST)
            result = await _read_until(browser.stdout, "{", "the result", 45)
            assert await asyncio.wait_for(browser.wait(), 30) == 0
        finally:
            if browser.returncode is None:
                browser.kill()
                await browser.wait()
            stderr = (await browser.stderr.read()).decode() if browser.stderr else ""
            (artifacts / "agent-ui-tools.log").write_text(stderr)
        seen = json.loads("{" + result)
        (artifacts / "agent-ui-tools.json").write_text(json.dumps(seen, indent=2))
        after_revise = (await cp.get_customer("C-1001")).tickets
        stored = await cp.get_call(call_id)
        await call.end()
        await asyncio.wait_for(drainer, 30)

    # Confirm: one new ticket, recorded as SUCCEEDED with the agent's decision, shown on the card.
    first_id = confirmed["toolCallId"]
    new = after_confirm - before
    assert len(new) == 1, (before, after_confirm)
    [ticket_id] = new
    by_id = {t.tool_call_id: t for t in stored.tool_calls}
    assert by_id[first_id].tool_name == "create_ticket"
    assert by_id[first_id].status == events_pb2.TOOL_CALL_STATUS_SUCCEEDED
    assert by_id[first_id].decision.kind == events_pb2.TOOL_DECISION_KIND_CONFIRM
    assert confirmed["ticketId"] == ticket_id and ticket_id in confirmed["cardText"]
    proposed = confirmed["proposedText"]
    assert "Confirm" in proposed and "Cancel" in proposed and "awaiting_agent" not in proposed
    assert confirmed["outcomeText"] == "Confirmed by the agent"
    assert seen["customerTickets"][0] == ticket_id, "the customer card lists the new ticket first"
    assert confirmed["buttonsLeft"] == 0
    assert seen["confirmedStatusAfter"] == "ok"

    # Cancel: nothing written, recorded as CANCELLED, shown on the card.
    second_id = seen["cancelled"]["toolCallId"]
    assert second_id != first_id
    assert after_cancel == after_confirm
    assert by_id[second_id].tool_name == "create_ticket"
    assert by_id[second_id].status == events_pb2.TOOL_CALL_STATUS_CANCELLED
    assert by_id[second_id].decision.kind == events_pb2.TOOL_DECISION_KIND_CANCEL
    assert seen["cancelled"]["outcomeText"] == "Cancelled by the agent"
    assert seen["cancelled"]["buttonsLeft"] == 0

    # Revise: the card's form held the proposed arguments; the edited subject is the ticket written.
    third_id = seen["revised"]["toolCallId"]
    assert third_id not in (first_id, second_id)
    assert seen["reviseFocused"] == "subject" and seen["proposedSubject"] != REVISED_SUBJECT
    assert "Revise" in seen["revised"]["proposedText"]
    assert by_id[third_id].status == events_pb2.TOOL_CALL_STATUS_SUCCEEDED
    assert by_id[third_id].decision.kind == events_pb2.TOOL_DECISION_KIND_REVISE
    assert by_id[third_id].decision.arguments["subject"] == REVISED_SUBJECT
    assert REVISED_SUBJECT in {t.subject for t in after_revise if t.ticket_id not in after_cancel}
    assert seen["revised"]["outcomeText"] == "Revised by the agent"
    assert seen["revised"]["buttonsLeft"] == 0

    # The stream carried the same ids: proposed, then decided.
    statuses = [(e.tool_call.tool_call_id, e.tool_call.status) for e in events if e.HasField("tool_call")]
    assert (first_id, PENDING) in statuses and (second_id, PENDING) in statuses
    assert (first_id, events_pb2.TOOL_CALL_STATUS_SUCCEEDED) in statuses
    assert (second_id, events_pb2.TOOL_CALL_STATUS_CANCELLED) in statuses
    assert seen["errors"] == [], seen["errors"]
