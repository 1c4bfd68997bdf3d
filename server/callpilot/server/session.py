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
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from callpilot.server import metrics
from callpilot.server.assist.base import Assistant, AssistRequest, Turn
from callpilot.server.audio import AudioDecoder
from callpilot.server.bus import InProcessBus
from callpilot.server.context.engine import ContextEngine
from callpilot.server.directory import Directory
from callpilot.server.errors import InvalidArgument, Violation
from callpilot.server.redaction import Redactor, safe_redact
from callpilot.server.stt.base import SpeechEvent, SpeechEventKind, STTEngine, STTError, STTStream
from callpilot.v1 import assist_service_pb2, call_pb2, common_pb2, events_pb2
from google.protobuf import duration_pb2, timestamp_pb2
from google.protobuf.message import Message

if TYPE_CHECKING:
    from callpilot.server.store import Store

log = logging.getLogger("callpilot.session")

ROLE_NAMES = {common_pb2.SPEAKER_ROLE_CUSTOMER: "customer", common_pb2.SPEAKER_ROLE_AGENT: "agent"}
# How long ending a call may wait for the STT to deliver its last finals and
# for an in-flight suggestion to complete before they are cut off.
END_STT_TIMEOUT_S = 30.0
END_ASSIST_TIMEOUT_S = 10.0


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
        self._redactor = Redactor()
        self._context = ContextEngine(deps.directory, call_id=call.call_id)
        self._assist_task: asyncio.Task[None] | None = None
        self._assist_inflight_id = ""
        self._assist_inflight_started = False
        self._open_suggestion_id = ""
        self._end_task: asyncio.Task[None] | None = None
        self._ending = False
        # Set once the assistant has been drained: nothing may start after it.
        self._closed = False
        self.ended = asyncio.Event()

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
                self._stt_tasks.append(asyncio.create_task(self._consume_stt(role, stream)))

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

    async def _consume_stt(self, role: common_pb2.SpeakerRole.ValueType, stream: STTStream) -> None:
        try:
            async for sev in stream:
                await self._on_speech_event(role, sev)
        except asyncio.CancelledError:
            raise
        except STTError as exc:
            self._log.warning("STT failed for %s: %s", ROLE_NAMES.get(role, role), exc)
            await self.notice(
                events_pb2.NOTICE_LEVEL_ERROR, "STT_FAILED", f"Speech recognition failed: {exc}"
            )
        except Exception:
            self._log.exception("STT pipeline error")
            await self.notice(
                events_pb2.NOTICE_LEVEL_ERROR, "STT_FAILED", "Speech recognition failed for this speaker."
            )

    async def _on_speech_event(self, role: common_pb2.SpeakerRole.ValueType, sev: SpeechEvent) -> None:
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
                elif isinstance(out, events_pb2.SuggestionDelta):
                    if not first_delta:
                        first_delta = time.time()
                        metrics.FINAL_TO_FIRST_DELTA.observe(max(0.0, first_delta - job.input_time))
                    self._assist_inflight_started = True
                    await self._emit(durable=False, suggestion_delta=out)
                else:
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
        if not self._stt_tasks:
            return
        _done, pending = await asyncio.wait(self._stt_tasks, timeout=END_STT_TIMEOUT_S)
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
