"""Write tools proposed by the assistant, waiting for the agent's decision.

Policy: at most MAX_PENDING_TOOLS proposals wait, oldest first; a newer one
expires the oldest (recorded as CANCELLED). A decision is recorded as a
ToolCall with the proposal's id. Repeating the same decision returns the
recorded outcome (safe to retry); a different decision on a decided call is
refused. When the call ends, proposals still waiting are cancelled.
Callers validate the decision first (api.validation.validate_decision).
"""

from __future__ import annotations

import asyncio

from callpilot.server.assist.tools import ToolBox
from callpilot.server.errors import FailedPrecondition, NotFound
from callpilot.server.session.event_log import EventLog
from callpilot.v1 import events_pb2
from google.protobuf import json_format

MAX_PENDING_TOOLS = 16


class ToolDecisions:
    def __init__(self, events: EventLog, toolbox: ToolBox | None) -> None:
        self._events = events
        self._toolbox = toolbox
        self._pending: dict[str, events_pb2.ToolCall] = {}
        self._decided: dict[str, events_pb2.ToolCall] = {}
        # One decision (or expiry) at a time: a tool must not run twice.
        self._lock = asyncio.Lock()

    async def hold(self, call: events_pb2.ToolCall) -> None:
        async with self._lock:
            self._pending[call.tool_call_id] = call
            while len(self._pending) > MAX_PENDING_TOOLS:
                oldest = next(iter(self._pending))
                await self._expire(oldest, "too many proposals were waiting; this one expired")

    async def cancel_all(self, why: str) -> None:
        async with self._lock:
            for tool_call_id in list(self._pending):
                await self._expire(tool_call_id, why)

    async def _expire(self, tool_call_id: str, why: str) -> None:
        proposed = self._pending.pop(tool_call_id)
        cancelled = events_pb2.ToolCall()
        cancelled.CopyFrom(proposed)
        cancelled.ClearField("result")
        cancelled.status = events_pb2.TOOL_CALL_STATUS_CANCELLED
        cancelled.error = why
        await self._events.emit(durable=True, tool_call=cancelled)
        self._decided[tool_call_id] = cancelled

    async def decide(self, decision: events_pb2.ToolDecision) -> events_pb2.ToolCall:
        async with self._lock:
            done = self._decided.get(decision.tool_call_id)
            if done is not None:
                if done.HasField("decision") and done.decision.kind == decision.kind:
                    return done
                raise FailedPrecondition(
                    f"tool call {decision.tool_call_id!r} was already decided",
                    reason="TOOL_CALL_ALREADY_DECIDED",
                    metadata={"tool_call_id": decision.tool_call_id},
                )
            proposed = self._pending.get(decision.tool_call_id)
            if proposed is None:
                raise NotFound(
                    f"no proposed tool call {decision.tool_call_id!r} is waiting for a decision in this call",
                    reason="TOOL_CALL_NOT_FOUND",
                    metadata={"tool_call_id": decision.tool_call_id},
                )
            if decision.kind == events_pb2.TOOL_DECISION_KIND_CANCEL:
                outcome = events_pb2.ToolCall()
                outcome.CopyFrom(proposed)
                outcome.ClearField("result")
                outcome.status = events_pb2.TOOL_CALL_STATUS_CANCELLED
            else:
                if self._toolbox is None:
                    raise FailedPrecondition("this server cannot run write tools", reason="NO_TOOLBOX")
                revise = decision.kind == events_pb2.TOOL_DECISION_KIND_REVISE
                arguments = json_format.MessageToDict(decision.arguments if revise else proposed.arguments)
                outcome = await self._toolbox.run(
                    proposed.tool_name,
                    arguments,
                    trigger_segment_id=proposed.trigger_segment_id,
                    confirmed=True,
                    tool_call_id=proposed.tool_call_id,
                )
            outcome.decision.CopyFrom(decision)
            del self._pending[decision.tool_call_id]
            await self._events.emit(durable=True, tool_call=outcome)
            self._decided[decision.tool_call_id] = outcome
            return outcome
