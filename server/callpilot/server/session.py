"""One live call: the session object that owns its pipeline.

audio chunk -> decode/resample per speaker -> STT stream per speaker
  -> redaction -> transcript events -> context engine -> assistant
  -> sequenced event log (persisted if durable) -> bus.

Every event of a call goes through `_emit`, which numbers it, persists it
when durable and only then publishes it; a single lock keeps sequence order,
storage order and publication order identical, which is what lets watchers
resume from the store without gaps or duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from callpilot.server import metrics
from callpilot.server.alerts import AlertRules
from callpilot.server.alerts.stage import AlertStage
from callpilot.server.assist.base import Assistant, AssistRequest, Turn
from callpilot.server.assist.tools import ToolBox
from callpilot.server.audio import AudioDecoder
from callpilot.server.bus import InProcessBus
from callpilot.server.context.engine import ContextEngine
from callpilot.server.directory import Directory
from callpilot.server.errors import FailedPrecondition, InvalidArgument, NotFound, Violation
from callpilot.server.redaction import Redactor, safe_redact
from callpilot.server.stt.base import SpeechEvent, SpeechEventKind, STTEngine, STTError, STTStream
from callpilot.v1 import assist_service_pb2, call_pb2, common_pb2, events_pb2
from google.protobuf import duration_pb2, json_format, timestamp_pb2
from google.protobuf.message import Message

if TYPE_CHECKING:
    from callpilot.server.store import Store

log = logging.getLogger("callpilot.session")

ROLE_NAMES = {common_pb2.SPEAKER_ROLE_CUSTOMER: "customer", common_pb2.SPEAKER_ROLE_AGENT: "agent"}
# How long ending a call may wait for the STT to deliver its last finals and
# for an in-flight suggestion to complete before they are cut off.
END_STT_TIMEOUT_S = 30.0
END_ASSIST_TIMEOUT_S = 10.0
MAX_PENDING_TOOLS = 16


def validate_decision(decision: events_pb2.ToolDecision, prefix: str = "tool_decision") -> None:
    violations: list[Violation] = []
    if not decision.tool_call_id:
        violations.append(Violation(f"{prefix}.tool_call_id", "tool_call_id is required", "REQUIRED"))
    if decision.kind == events_pb2.TOOL_DECISION_KIND_UNSPECIFIED:
        violations.append(Violation(f"{prefix}.kind", "set kind to CONFIRM, REVISE or CANCEL", "REQUIRED"))
    if decision.kind == events_pb2.TOOL_DECISION_KIND_REVISE and not decision.arguments.fields:
        violations.append(
            Violation(f"{prefix}.arguments", "REVISE needs the arguments to run with", "REQUIRED")
        )
    if len(decision.comment) > 2000:
        violations.append(Violation(f"{prefix}.comment", "at most 2000 characters", "TOO_LONG"))
    if violations:
        raise InvalidArgument(violations)


def _ts(wall: float) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int(wall * 1e9))
    return ts


def _dur(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(int(max(seconds, 0.0) * 1e9))
    return d


@dataclass(frozen=True, slots=True)
class SessionDeps:
    store: Store
    bus: InProcessBus
    stt: STTEngine
    assistant: Assistant
    directory: Directory
    # Takes over a speaker whose STT stream failed for good (cloud outage).
    stt_fallback: STTEngine | None = None
    # Runs write tools once the agent confirms them.
    toolbox: ToolBox | None = None
    # The tenant's supervisor alert rules; None: no alerts.
    alert_rules: AlertRules | None = None


@dataclass(frozen=True, slots=True)
class _AssistJob:
    trigger: Turn | None
    query: str
    input_time: float


class CallSession:
    """Owns one call's pipeline from the first audio to `call_ended`."""

    def __init__(
        self,
        call: call_pb2.Call,
        deps: SessionDeps,
        *,
        on_closed: Callable[[CallSession], None] | None = None,
    ) -> None:
        self.call = call
        self.call_id = call.call_id
        self._deps = deps
        self._on_closed = on_closed
        self._log = logging.LoggerAdapter(log, {"call_id": call.call_id})
        self._seq = call.last_sequence
        self._emit_lock = asyncio.Lock()
        self._context_lock = asyncio.Lock()
        config = call.config
        self._decoder: AudioDecoder | None = None
        if config.HasField("audio") and config.audio.encoding != common_pb2.AUDIO_ENCODING_UNSPECIFIED:
            self._decoder = AudioDecoder(config.audio)
        self._streams: dict[common_pb2.SpeakerRole.ValueType, STTStream] = {}
        self._stt_tasks: list[asyncio.Task[None]] = []
        self._segments: dict[tuple[common_pb2.SpeakerRole.ValueType, int], str] = {}
        self._segment_counter = 0
        # Per speaker: the highest utterance number seen, so a fallback
        # stream's utterances continue the numbering (segment ids stay unique).
        self._last_utterance: dict[common_pb2.SpeakerRole.ValueType, int] = {}
        self._redactor = Redactor()
        self._context = ContextEngine(deps.directory, call_id=call.call_id)
        self._assist_task: asyncio.Task[None] | None = None
        self._assist_inflight_id = ""
        self._assist_inflight_started = False
        self._open_suggestion_id = ""
        # Write tools proposed by the assistant, waiting for the agent, oldest
        # first (at most MAX_PENDING_TOOLS; older ones are cancelled), and the
        # decided ones, for idempotent repeats of a decision.
        self._pending_tools: dict[str, events_pb2.ToolCall] = {}
        self._decided_tools: dict[str, events_pb2.ToolCall] = {}
        self._decision_lock = asyncio.Lock()
        self._end_task: asyncio.Task[None] | None = None
        self._ending = False
        # Set once the assistant has been drained: nothing may start after it.
        self._closed = False
        self.ended = asyncio.Event()
        self._alerts = (
            AlertStage(deps.alert_rules, lambda alert: self._emit(durable=True, alert=alert))
            if deps.alert_rules is not None
            else None
        )

    # ----------------------------------------------------------------- events

    async def _emit(
        self,
        *,
        durable: bool,
        timings: events_pb2.EventTimings | None = None,
        **payload: Message,
    ) -> events_pb2.CallEvent:
        async with self._emit_lock:
            event = events_pb2.CallEvent(call_id=self.call_id, sequence=self._seq + 1, durable=durable)
            for name, message in payload.items():
                getattr(event, name).CopyFrom(message)
            event.time.GetCurrentTime()
            if timings is not None:
                event.timings.CopyFrom(timings)
            if durable:
                await self._deps.store.append_event(event)
            self._seq += 1
            self._deps.bus.publish(event)
        kind = event.WhichOneof("payload") or "none"
        metrics.EVENTS.labels(kind=kind, durable=str(durable).lower()).inc()
        if self._alerts is not None and durable:
            # Alerts follow the event that fired them (alert events fire nothing).
            for alert in self._alerts.observe(event):
                await self._emit(durable=True, alert=alert)
        return event

    async def notice(self, level: events_pb2.NoticeLevel.ValueType, code: str, text: str) -> None:
        await self._emit(durable=True, notice=events_pb2.Notice(level=level, code=code, text=text))

    # ------------------------------------------------------------------ start

    async def start(self) -> None:
        """Emit call_started, prefetch the hinted customer, open the STT streams."""
        metrics.ACTIVE_CALLS.inc()
        if self._seq == 0:
            await self._emit(durable=True, call_started=events_pb2.CallStarted(call=self.call))
        else:
            await self.notice(
                events_pb2.NOTICE_LEVEL_INFO,
                "CALL_RESUMED",
                "The call's stream was re-attached after an interruption.",
            )
        hint = self.call.config.customer_hint if self.call.config.HasField("customer_hint") else None
        async with self._context_lock:
            update = await self._context.start(hint)
        if update is not None:
            await self._publish_context(update)
        if self._decoder is not None:
            language = self.call.config.language_code or "en"
            hints = list(self.call.config.phrase_hints)
            for role in self._decoder.roles:
                stream = self._deps.stt.stream(language=language, phrase_hints=hints)
                self._streams[role] = stream
                self._stt_tasks.append(asyncio.create_task(self._consume_stt(role, stream, 0.0, 0)))

    # ------------------------------------------------------------------ input

    async def push_audio(self, data: bytes, received: float) -> None:
        if self._ending:
            return
        if self._decoder is None:
            raise InvalidArgument(
                Violation(
                    "audio",
                    "this call was configured without audio: set config.audio (encoding, sample rate) "
                    "in the first message to stream audio",
                    "AUDIO_NOT_CONFIGURED",
                )
            )
        per_role = self._decoder.decode(data)
        for role, samples in per_role.items():
            if samples.size:
                await self._streams[role].push_audio(samples)
        metrics.FRAME_TO_STT.observe(time.time() - received)

    async def add_text_turn(self, role: common_pb2.SpeakerRole.ValueType, text: str, received: float) -> None:
        if role not in ROLE_NAMES:
            raise InvalidArgument(
                Violation("text_turn.role", "set the role to SPEAKER_ROLE_CUSTOMER or SPEAKER_ROLE_AGENT")
            )
        if not text.strip():
            raise InvalidArgument(Violation("text_turn.text", "text is empty"))
        if len(text) > 10_000:
            raise InvalidArgument(
                Violation("text_turn.text", "text is longer than 10000 characters; split it into turns")
            )
        self._segment_counter += 1
        segment_id = f"seg-{self._segment_counter:04d}"
        redacted = safe_redact(self._redactor, text, role=role, is_final=True)
        timings = events_pb2.EventTimings(input_time=_ts(received))
        update = events_pb2.TranscriptUpdate(
            segment_id=segment_id, role=role, text=redacted, is_final=True, confidence=1.0
        )
        event = await self._emit(durable=True, timings=timings, transcript=update)
        await self._after_final(Turn(segment_id=segment_id, role=role, text=redacted), event)

    def suggest_now(self, query: str) -> None:
        self._trigger(_AssistJob(trigger=None, query=query, input_time=time.time()))

    async def record_feedback(
        self, feedback: assist_service_pb2.SuggestionFeedback
    ) -> assist_service_pb2.Suggestion:
        suggestion = await self._deps.store.record_feedback(self.call_id, feedback)
        self.feedback_applied(feedback)
        return suggestion

    def feedback_applied(self, feedback: assist_service_pb2.SuggestionFeedback) -> None:
        """A suggestion the agent used or dismissed is no longer open to be superseded."""
        if feedback.suggestion_id == self._open_suggestion_id and feedback.kind in (
            assist_service_pb2.FEEDBACK_KIND_USED,
            assist_service_pb2.FEEDBACK_KIND_DISMISSED,
        ):
            self._open_suggestion_id = ""

    # --------------------------------------------------------------- pipeline

    def _segment_id(self, role: common_pb2.SpeakerRole.ValueType, utterance: int) -> str:
        key = (role, utterance)
        seg = self._segments.get(key)
        if seg is None:
            self._segment_counter += 1
            seg = f"seg-{self._segment_counter:04d}"
            self._segments[key] = seg
        return seg

    async def _consume_stt(
        self,
        role: common_pb2.SpeakerRole.ValueType,
        stream: STTStream,
        offset: float,
        utterance_base: int,
    ) -> None:
        """Forward one stream's events; `offset` and `utterance_base` place a
        fallback stream's events on the call's timeline and numbering."""
        try:
            async for sev in stream:
                if offset or utterance_base:
                    sev = dataclasses.replace(
                        sev,
                        utterance=sev.utterance + utterance_base,
                        start=sev.start + offset,
                        end=sev.end + offset,
                    )
                await self._on_speech_event(role, sev)
        except asyncio.CancelledError:
            raise
        except STTError as exc:
            self._log.warning("STT failed for %s: %s", ROLE_NAMES.get(role, role), exc)
            if self._deps.stt_fallback is not None and not exc.retryable:
                await self._fall_back(role, stream, exc)
                return
            await self.notice(
                events_pb2.NOTICE_LEVEL_ERROR, "STT_FAILED", f"Speech recognition failed: {exc}"
            )
        except Exception:
            self._log.exception("STT pipeline error")
            await self.notice(
                events_pb2.NOTICE_LEVEL_ERROR, "STT_FAILED", "Speech recognition failed for this speaker."
            )

    async def _fall_back(
        self, role: common_pb2.SpeakerRole.ValueType, failed: STTStream, exc: STTError
    ) -> None:
        """Hand the speaker to the fallback engine for the rest of the call.

        The audio the failed engine never finalised is replayed first, so the
        words spoken during the outage are still transcribed.
        """
        assert self._deps.stt_fallback is not None
        offset, pending = 0.0, None
        unfinalised = getattr(failed, "unfinalised_audio", None)
        if callable(unfinalised):
            offset, pending = unfinalised()
        stream = self._deps.stt_fallback.stream(
            language=self.call.config.language_code or "en", phrase_hints=list(self.call.config.phrase_hints)
        )
        # Swap before the first await so no chunk goes to the failed stream.
        self._streams[role] = stream
        base = self._last_utterance.get(role, -1) + 1
        self._stt_tasks.append(asyncio.create_task(self._consume_stt(role, stream, offset, base)))
        await self.notice(
            events_pb2.NOTICE_LEVEL_WARNING,
            "STT_DEGRADED",
            f"Speech recognition for the {ROLE_NAMES.get(role, 'speaker')} switched to the embedded engine: {exc}",
        )
        if pending is not None and pending.size:
            await stream.push_audio(pending)
        if self._ending:
            stream.end_input()
        with contextlib.suppress(Exception):
            await failed.aclose()

    async def _on_speech_event(self, role: common_pb2.SpeakerRole.ValueType, sev: SpeechEvent) -> None:
        self._last_utterance[role] = max(self._last_utterance.get(role, -1), sev.utterance)
        segment_id = self._segment_id(role, sev.utterance)
        if sev.kind in (SpeechEventKind.START_OF_SPEECH, SpeechEventKind.END_OF_SPEECH):
            kind = (
                events_pb2.SPEECH_ACTIVITY_KIND_STARTED
                if sev.kind is SpeechEventKind.START_OF_SPEECH
                else events_pb2.SPEECH_ACTIVITY_KIND_ENDED
            )
            offset = sev.start if sev.kind is SpeechEventKind.START_OF_SPEECH else sev.end
            await self._emit(
                durable=False,
                speech_activity=events_pb2.SpeechActivity(role=role, kind=kind, offset=_dur(offset)),
            )
            return
        is_final = sev.kind is SpeechEventKind.FINAL
        text = safe_redact(self._redactor, sev.text, role=role, is_final=is_final).strip()
        if not text:
            return
        update = events_pb2.TranscriptUpdate(
            segment_id=segment_id,
            role=role,
            text=text,
            is_final=is_final,
            confidence=sev.confidence,
            start_offset=_dur(sev.start),
            end_offset=_dur(sev.end),
        )
        timings = events_pb2.EventTimings()
        if sev.input_time:
            timings.input_time.CopyFrom(_ts(sev.input_time))
        if is_final and sev.speech_end_time:
            timings.speech_end_time.CopyFrom(_ts(sev.speech_end_time))
        event = await self._emit(durable=is_final, timings=timings, transcript=update)
        if is_final:
            if sev.speech_end_time:
                metrics.SPEECH_END_TO_FINAL.observe(max(0.0, time.time() - sev.speech_end_time))
            await self._after_final(Turn(segment_id=segment_id, role=role, text=text), event)

    async def _after_final(self, turn: Turn, event: events_pb2.CallEvent) -> None:
        async with self._context_lock:
            update = await self._context.on_final(turn)
        if update is not None:
            await self._publish_context(update)
        # Finals flushed while the call is ending still get their suggestion:
        # the customer's last request is often the one that matters most.
        if self._closed or turn.role != common_pb2.SPEAKER_ROLE_CUSTOMER:
            return
        if self._deps.assistant.wants_to_respond(turn, self._context.state):
            self._trigger(_AssistJob(trigger=turn, query="", input_time=event.time.ToNanoseconds() / 1e9))

    async def _publish_context(self, update: events_pb2.ContextUpdate) -> None:
        await self._emit(durable=True, context=update)
        if update.HasField("customer") and update.customer.customer_id != self.call.customer_id:
            self.call.customer_id = update.customer.customer_id
            await self._deps.store.update_call(self.call)

    # -------------------------------------------------------------- assistant

    def _trigger(self, job: _AssistJob) -> None:
        """Start a suggestion; one in flight per call, newest wins.

        A suggestion still being generated when newer customer speech arrives
        is stale: it is cancelled and the new one supersedes it.
        """
        if self._closed:
            return
        superseded = ""
        if self._assist_task is not None and not self._assist_task.done():
            if self._assist_inflight_started:
                superseded = self._assist_inflight_id
            self._assist_task.cancel()
        self._assist_task = asyncio.create_task(self._run_assist(job, superseded))

    async def _run_assist(self, job: _AssistJob, superseded_inflight: str) -> None:
        suggestion_id = f"sug-{uuid.uuid4().hex[:12]}"
        self._assist_inflight_id = suggestion_id
        self._assist_inflight_started = False
        request = AssistRequest(
            suggestion_id=suggestion_id, state=self._context.state, trigger=job.trigger, query=job.query
        )
        input_ts = _ts(job.input_time)
        first_delta: float = 0.0
        try:
            async for out in self._deps.assistant.respond(request):
                if isinstance(out, events_pb2.ToolCall):
                    await self._emit(
                        durable=True, timings=events_pb2.EventTimings(input_time=input_ts), tool_call=out
                    )
                    if out.status == events_pb2.TOOL_CALL_STATUS_PENDING_CONFIRMATION:
                        await self._hold_for_decision(out)
                elif isinstance(out, events_pb2.SuggestionDelta):
                    if not first_delta:
                        first_delta = time.time()
                        metrics.FINAL_TO_FIRST_DELTA.observe(max(0.0, first_delta - job.input_time))
                    self._assist_inflight_started = True
                    await self._emit(durable=False, suggestion_delta=out)
                elif isinstance(out, events_pb2.Notice):
                    await self._emit(durable=True, notice=out)
                elif isinstance(out, events_pb2.SuggestionCompleted):
                    completed = events_pb2.SuggestionCompleted()
                    completed.CopyFrom(out)
                    completed.suggestion_id = suggestion_id
                    if job.trigger is not None and not completed.trigger_segment_id:
                        completed.trigger_segment_id = job.trigger.segment_id
                    completed.supersedes_suggestion_id = superseded_inflight or self._open_suggestion_id
                    timings = events_pb2.EventTimings(input_time=input_ts)
                    if first_delta:
                        timings.first_delta_time.CopyFrom(_ts(first_delta))
                    await self._emit(durable=True, timings=timings, suggestion_completed=completed)
                    self._open_suggestion_id = suggestion_id
                    self._context.state.suggestions.append(completed.text)
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._log.exception("assistant failed")
            await self.notice(
                events_pb2.NOTICE_LEVEL_WARNING,
                "ASSISTANT_FAILED",
                f"The assistant could not answer this turn: {exc}",
            )

    # ------------------------------------------------------- tool decisions

    async def _hold_for_decision(self, call: events_pb2.ToolCall) -> None:
        async with self._decision_lock:
            self._pending_tools[call.tool_call_id] = call
            while len(self._pending_tools) > MAX_PENDING_TOOLS:
                oldest = next(iter(self._pending_tools))
                await self._close_pending(oldest, "too many proposals were waiting; this one expired")

    async def _close_pending(self, tool_call_id: str, why: str) -> None:
        proposed = self._pending_tools.pop(tool_call_id)
        cancelled = events_pb2.ToolCall()
        cancelled.CopyFrom(proposed)
        cancelled.ClearField("result")
        cancelled.status = events_pb2.TOOL_CALL_STATUS_CANCELLED
        cancelled.error = why
        await self._emit(durable=True, tool_call=cancelled)
        self._decided_tools[tool_call_id] = cancelled

    async def decide_tool(self, decision: events_pb2.ToolDecision) -> events_pb2.ToolCall:
        """Apply the agent's decision on a proposed write tool and record the outcome.

        The outcome is sent as a ToolCall with the proposal's id. Repeating a
        decision returns the recorded outcome (safe to retry); a different
        decision on a decided call is refused.
        """
        validate_decision(decision)
        async with self._decision_lock:
            done = self._decided_tools.get(decision.tool_call_id)
            if done is not None:
                if done.HasField("decision") and done.decision.kind == decision.kind:
                    return done
                raise FailedPrecondition(
                    f"tool call {decision.tool_call_id!r} was already decided",
                    reason="TOOL_CALL_ALREADY_DECIDED",
                    metadata={"tool_call_id": decision.tool_call_id},
                )
            proposed = self._pending_tools.get(decision.tool_call_id)
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
                if self._deps.toolbox is None:
                    raise FailedPrecondition("this server cannot run write tools", reason="NO_TOOLBOX")
                revise = decision.kind == events_pb2.TOOL_DECISION_KIND_REVISE
                arguments = json_format.MessageToDict(decision.arguments if revise else proposed.arguments)
                outcome = await self._deps.toolbox.run(
                    proposed.tool_name,
                    arguments,
                    trigger_segment_id=proposed.trigger_segment_id,
                    confirmed=True,
                    tool_call_id=proposed.tool_call_id,
                )
            outcome.decision.CopyFrom(decision)
            del self._pending_tools[decision.tool_call_id]
            await self._emit(durable=True, tool_call=outcome)
            self._decided_tools[decision.tool_call_id] = outcome
            return outcome

    # -------------------------------------------------------------------- end

    def request_end(self, reason: call_pb2.CallEndReason.ValueType, detail: str = "") -> asyncio.Task[None]:
        """Start ending the call (idempotent); the returned task completes when it has ended.

        The work runs in its own task so that a cancelled caller (a client
        that went away) cannot interrupt the flushing of finals.
        """
        if self._end_task is None:
            self._ending = True
            self._end_task = asyncio.create_task(self._finish(reason, detail))
        return self._end_task

    async def end(self, reason: call_pb2.CallEndReason.ValueType, detail: str = "") -> None:
        await asyncio.shield(self.request_end(reason, detail))

    async def _finish(self, reason: call_pb2.CallEndReason.ValueType, detail: str) -> None:
        try:
            await self._drain_stt()
            await self._drain_assistant()
            self._closed = True
            async with self._decision_lock:
                for tool_call_id in list(self._pending_tools):
                    await self._close_pending(tool_call_id, "the call ended before the agent decided")
            if self._alerts is not None:
                await self._alerts.close()  # no alert may follow call_ended
            summary = ""
            try:
                summary = await asyncio.wait_for(
                    self._deps.assistant.summarise(self._context.state), END_ASSIST_TIMEOUT_S
                )
            except Exception:
                self._log.exception("summary failed")
            await self._emit(
                durable=True, call_ended=events_pb2.CallEnded(reason=reason, detail=detail, summary=summary)
            )
        except Exception:
            self._log.exception("ending the call failed")
        finally:
            self._deps.bus.finish(self.call_id)
            metrics.ACTIVE_CALLS.dec()
            self.ended.set()
            if self._on_closed is not None:
                self._on_closed(self)
            self._log.info("call ended (%s)", call_pb2.CallEndReason.Name(reason))

    async def _drain_stt(self) -> None:
        if self._decoder is not None:
            with contextlib.suppress(Exception):
                for role, samples in self._decoder.flush().items():
                    if samples.size and role in self._streams:
                        await self._streams[role].push_audio(samples)
        for stream in self._streams.values():
            stream.end_input()
        # A fallback may start a new consumer while we wait: wait until none is left.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + END_STT_TIMEOUT_S
        pending: set[asyncio.Task[None]] = set()
        while running := [t for t in self._stt_tasks if not t.done()]:
            if loop.time() >= deadline:
                pending = set(running)
                break
            await asyncio.wait(running, timeout=deadline - loop.time())
        if pending:
            self._log.warning(
                "STT did not finish within %.0fs; dropping what it had not decoded", END_STT_TIMEOUT_S
            )
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for stream in self._streams.values():
            with contextlib.suppress(Exception):
                await stream.aclose()

    async def _drain_assistant(self) -> None:
        task = self._assist_task
        if task is None or task.done():
            return
        _done, pending = await asyncio.wait([task], timeout=END_ASSIST_TIMEOUT_S)
        for t in pending:
            t.cancel()
        await asyncio.gather(task, return_exceptions=True)
