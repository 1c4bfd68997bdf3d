"""Suggestion triggering and lifecycle for one call.

Policy: one suggestion in flight per call, newest wins. A suggestion still
being generated when newer customer speech (or a suggest-now) arrives is
stale: it is cancelled, and the new one's `supersedes_suggestion_id` names
it if it had already streamed deltas (otherwise the open suggestion, the
latest completed one not yet used or dismissed). After `close()` nothing
new starts; `drain()` lets the one in flight finish within a bound.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from callpilot.server import metrics
from callpilot.server.assist.base import Assistant, AssistRequest, Turn
from callpilot.server.context.engine import ContextEngine
from callpilot.server.session.event_log import EventLog
from callpilot.server.session.transcripts import ts
from callpilot.v1 import assist_service_pb2, events_pb2

log = logging.getLogger("callpilot.session")


@dataclass(frozen=True, slots=True)
class AssistJob:
    trigger: Turn | None
    query: str
    input_time: float


class Suggestions:
    def __init__(
        self,
        events: EventLog,
        assistant: Assistant,
        context: ContextEngine,
        *,
        on_pending_tool: Callable[[events_pb2.ToolCall], Awaitable[None]],
    ) -> None:
        self._events = events
        self._assistant = assistant
        self._context = context
        self._on_pending_tool = on_pending_tool
        self._task: asyncio.Task[None] | None = None
        self._inflight_id = ""
        self._inflight_started = False
        self._open_id = ""
        self.closed = False

    def trigger(self, job: AssistJob) -> None:
        if self.closed:
            return
        superseded = ""
        if self._task is not None and not self._task.done():
            if self._inflight_started:
                superseded = self._inflight_id
            self._task.cancel()
        self._task = asyncio.create_task(self._run(job, superseded))

    def feedback_applied(self, feedback: assist_service_pb2.SuggestionFeedback) -> None:
        """A suggestion the agent used or dismissed is no longer open to be superseded."""
        if feedback.suggestion_id == self._open_id and feedback.kind in (
            assist_service_pb2.FEEDBACK_KIND_USED,
            assist_service_pb2.FEEDBACK_KIND_DISMISSED,
        ):
            self._open_id = ""

    async def drain(self, timeout: float) -> None:
        """Let the suggestion in flight finish (cut off after `timeout`); start no more."""
        task = self._task
        if task is not None and not task.done():
            _done, pending = await asyncio.wait([task], timeout=timeout)
            for t in pending:
                t.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self.closed = True

    async def _run(self, job: AssistJob, superseded_inflight: str) -> None:
        suggestion_id = f"sug-{uuid.uuid4().hex[:12]}"
        self._inflight_id = suggestion_id
        self._inflight_started = False
        request = AssistRequest(
            suggestion_id=suggestion_id, state=self._context.state, trigger=job.trigger, query=job.query
        )
        input_ts = ts(job.input_time)
        first_delta = 0.0
        emit = self._events.emit
        try:
            async for out in self._assistant.respond(request):
                if isinstance(out, events_pb2.ToolCall):
                    await emit(
                        durable=True, timings=events_pb2.EventTimings(input_time=input_ts), tool_call=out
                    )
                    if out.status == events_pb2.TOOL_CALL_STATUS_PENDING_CONFIRMATION:
                        await self._on_pending_tool(out)
                elif isinstance(out, events_pb2.SuggestionDelta):
                    if not first_delta:
                        first_delta = time.time()
                        metrics.FINAL_TO_FIRST_DELTA.observe(max(0.0, first_delta - job.input_time))
                    self._inflight_started = True
                    await emit(durable=False, suggestion_delta=out)
                elif isinstance(out, events_pb2.Notice):
                    await emit(durable=True, notice=out)
                elif isinstance(out, events_pb2.SuggestionCompleted):
                    completed = events_pb2.SuggestionCompleted()
                    completed.CopyFrom(out)
                    completed.suggestion_id = suggestion_id
                    if job.trigger is not None and not completed.trigger_segment_id:
                        completed.trigger_segment_id = job.trigger.segment_id
                    completed.supersedes_suggestion_id = superseded_inflight or self._open_id
                    timings = events_pb2.EventTimings(input_time=input_ts)
                    if first_delta:
                        timings.first_delta_time.CopyFrom(ts(first_delta))
                    await emit(durable=True, timings=timings, suggestion_completed=completed)
                    self._open_id = suggestion_id
                    self._context.state.suggestions.append(completed.text)
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("call %s: assistant failed", self._events.call_id)
            await emit(
                durable=True,
                notice=events_pb2.Notice(
                    level=events_pb2.NOTICE_LEVEL_WARNING,
                    code="ASSISTANT_FAILED",
                    text=f"The assistant could not answer this turn: {exc}",
                ),
            )
