"""Write tools wait for the agent: the assistant proposes, the agent confirms,
revises or cancels, and only then do records change."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from callpilot.client import AsyncCallpilot, CallpilotError, CallStream
from callpilot.v1 import call_pb2, common_pb2, events_pb2
from google.protobuf import json_format
from support import ServerProcess

PENDING = events_pb2.TOOL_CALL_STATUS_PENDING_CONFIRMATION
CUSTOMER = common_pb2.SPEAKER_ROLE_CUSTOMER


async def _next_tool(
    events: list[events_pb2.CallEvent], iterator: object, status: int
) -> events_pb2.ToolCall:
    async with asyncio.timeout(30):
        async for event in iterator:  # type: ignore[attr-defined]
            events.append(event)
            if event.HasField("tool_call") and event.tool_call.status == status:
                return event.tool_call
    raise AssertionError("the stream ended first")


def _open(cp: AsyncCallpilot) -> CallStream:
    hint = call_pb2.CustomerHint(customer_id="C-1001")
    return cp.stream_call(None, call_pb2.CallConfig(customer_hint=hint), end_when_audio_ends=False)


async def _tickets(cp: AsyncCallpilot) -> dict[str, str]:
    return {t.ticket_id: t.subject for t in (await cp.get_customer("C-1001")).tickets}


async def test_confirm_on_the_stream_creates_the_ticket(server: ServerProcess) -> None:
    async with AsyncCallpilot(server.address) as cp:
        before = await _tickets(cp)
        events: list[events_pb2.CallEvent] = []
        async with _open(cp) as call:
            iterator = call.__aiter__()
            await call.send_text(CUSTOMER, "My headphones keep disconnecting, please open a ticket for that.")
            proposed = await _next_tool(events, iterator, PENDING)
            assert proposed.tool_name == "create_ticket"
            assert await _tickets(cp) == before, "nothing is written before the agent confirms"
            await call.decide_tool(proposed.tool_call_id, events_pb2.TOOL_DECISION_KIND_CONFIRM)
            done = await _next_tool(events, iterator, events_pb2.TOOL_CALL_STATUS_SUCCEEDED)
            await call.end()
            events.extend([e async for e in iterator])
        assert done.tool_call_id == proposed.tool_call_id
        assert done.decision.kind == events_pb2.TOOL_DECISION_KIND_CONFIRM
        ticket = json_format.MessageToDict(done.result)["ticket"]
        after = await _tickets(cp)
        assert ticket["ticket_id"] in after and ticket["ticket_id"] not in before
        completed = [e.suggestion_completed for e in events if e.HasField("suggestion_completed")]
        assert any("drafted a support ticket" in s.text for s in completed)
        stored = await cp.get_call(events[0].call_id)
        by_id = {t.tool_call_id: t for t in stored.tool_calls}
        assert by_id[proposed.tool_call_id].status == events_pb2.TOOL_CALL_STATUS_SUCCEEDED


async def test_revise_and_cancel_with_submit_feedback(server: ServerProcess) -> None:
    async with AsyncCallpilot(server.address) as cp:
        events: list[events_pb2.CallEvent] = []
        async with _open(cp) as call:
            iterator = call.__aiter__()
            await call.send_text(CUSTOMER, "Please file a complaint, the delivery was late.")
            first = await _next_tool(events, iterator, PENDING)
            call_id = events[0].call_id
            revised = await cp.decide_tool(
                call_id,
                first.tool_call_id,
                events_pb2.TOOL_DECISION_KIND_REVISE,
                arguments={"customer_id": "C-1001", "subject": "Late delivery complaint (revised by agent)"},
            )
            assert revised.status == events_pb2.TOOL_CALL_STATUS_SUCCEEDED
            assert "Late delivery complaint (revised by agent)" in (await _tickets(cp)).values()
            # Repeating the same decision is safe; a different one is refused.
            again = await cp.decide_tool(
                call_id,
                first.tool_call_id,
                events_pb2.TOOL_DECISION_KIND_REVISE,
                arguments={"customer_id": "C-1001", "subject": "x"},
            )
            assert again.tool_call_id == revised.tool_call_id and again.status == revised.status
            with pytest.raises(CallpilotError) as info:
                await cp.decide_tool(call_id, first.tool_call_id, events_pb2.TOOL_DECISION_KIND_CANCEL)
            assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION
            assert info.value.reason == "TOOL_CALL_ALREADY_DECIDED"

            await call.send_text(CUSTOMER, "Actually, also escalate this please.")
            second = await _next_tool(events, iterator, PENDING)
            before = await _tickets(cp)
            cancelled = await cp.decide_tool(
                call_id, second.tool_call_id, events_pb2.TOOL_DECISION_KIND_CANCEL
            )
            assert cancelled.status == events_pb2.TOOL_CALL_STATUS_CANCELLED
            assert await _tickets(cp) == before

            with pytest.raises(CallpilotError) as info:
                await cp.decide_tool(call_id, "tool-unknown", events_pb2.TOOL_DECISION_KIND_CONFIRM)
            assert info.value.code == grpc.StatusCode.NOT_FOUND
            with pytest.raises(CallpilotError) as info:
                await cp.decide_tool(call_id, second.tool_call_id, events_pb2.TOOL_DECISION_KIND_REVISE)
            assert "tool_decision.arguments" in [v.field for v in info.value.violations]
            await call.end()
            _ = [e async for e in iterator]


async def test_undecided_proposals_are_cancelled_when_the_call_ends(server: ServerProcess) -> None:
    async with AsyncCallpilot(server.address) as cp:
        events: list[events_pb2.CallEvent] = []
        async with _open(cp) as call:
            iterator = call.__aiter__()
            await call.send_text(CUSTOMER, "Open a ticket about my broken charger please.")
            proposed = await _next_tool(events, iterator, PENDING)
            await call.end()
            events.extend([e async for e in iterator])
        final = [
            e.tool_call
            for e in events
            if e.HasField("tool_call") and e.tool_call.tool_call_id == proposed.tool_call_id
        ]
        assert final[-1].status == events_pb2.TOOL_CALL_STATUS_CANCELLED
        assert "ended before the agent decided" in final[-1].error
        assert events[-1].HasField("call_ended")
        with pytest.raises(CallpilotError) as info:
            await cp.decide_tool(
                events[0].call_id, proposed.tool_call_id, events_pb2.TOOL_DECISION_KIND_CONFIRM
            )
        assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION and info.value.reason == "CALL_NOT_LIVE"
