"""One live call: the session object that owns its pipeline.

The session wires the parts and owns the call's lifetime; each part keeps
its own data: the event log (`event_log`), segment numbering and redaction
(`transcripts`), the suggestion in flight (`suggestions`) and proposed
write tools (`tool_decisions`). STT failures are the engine's business
(`stt.fallback`): a stream that switched engines says so with a DEGRADED
speech event, which becomes a durable STT_DEGRADED notice here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from callpilot.server import metrics
from callpilot.server.alerts import AlertRules
from callpilot.server.alerts.stage import AlertStage
from callpilot.server.assist.base import Assistant, Turn
from callpilot.server.assist.tools import ToolBox
from callpilot.server.audio import AudioDecoder
from callpilot.server.bus import InProcessBus
from callpilot.server.context.engine import ContextEngine
from callpilot.server.directory import Directory
from callpilot.server.errors import InvalidArgument, Violation
from callpilot.server.session.event_log import EventLog
from callpilot.server.session.suggestions import AssistJob, Suggestions
from callpilot.server.session.tool_decisions import ToolDecisions
from callpilot.server.session.transcripts import (
    ROLE_NAMES,
    Role,
    Transcripts,
    last_segment_number,
    speech_activity,
)
from callpilot.server.store.protocols import CallLog
from callpilot.server.stt.base import SpeechEvent, SpeechEventKind, STTEngine, STTError, STTStream
from callpilot.server.stt.hints import MAX_ORDER_NUMBERS, SpeechContext, speech_context
from callpilot.v1 import assist_service_pb2, call_pb2, common_pb2, events_pb2

log = logging.getLogger("callpilot.session")

# How long ending a call may wait for the STT to deliver its last finals and
# for an in-flight suggestion to complete before they are cut off.
END_STT_TIMEOUT_S = 30.0
END_ASSIST_TIMEOUT_S = 10.0

# The SHUTDOWN_CUT_SHORT notice: what a drain past its grace dropped, by the phase it cut.
_CUT_TEXT = {
    "stt": "The server shut down before speech recognition caught up: audio not yet transcribed "
    "was dropped (the transcript ends with the last final shown), as were any suggestion in flight "
    "and the call summary.",
    "suggestion": "The server shut down while a suggestion was being written: it was dropped, "
    "as was the call summary. The transcript is complete.",
    "summary": "The server shut down before the call summary was written. The transcript is complete.",
}


@dataclass(frozen=True, slots=True)
class SessionDeps:
    store: CallLog
    bus: InProcessBus
    # One engine per server; a fallback, if any, is wrapped inside it.
    stt: STTEngine
    assistant: Assistant
    directory: Directory
    # Runs write tools once the agent confirms them.
    toolbox: ToolBox | None = None
    # The tenant's supervisor alert rules; None: no alerts.
    alert_rules: AlertRules | None = None


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
        self.events = EventLog(call.call_id, deps.store, deps.bus, last_sequence=call.last_sequence)
        deps.bus.open(call.call_id)
        self._transcripts = Transcripts()
        self._context = ContextEngine(deps.directory, call_id=call.call_id)
        # Finals of both speakers and text turns reach the context engine
        # concurrently; it updates one state, one turn at a time.
        self._context_lock = asyncio.Lock()
        self._tools = ToolDecisions(self.events, deps.toolbox)
        self._suggestions = Suggestions(
            self.events, deps.assistant, self._context, on_pending_tool=self._tools.hold
        )
        config = call.config
        self._decoder: AudioDecoder | None = None
        if config.HasField("audio") and config.audio.encoding != common_pb2.AUDIO_ENCODING_UNSPECIFIED:
            self._decoder = AudioDecoder(config.audio)
        self._streams: dict[Role, STTStream] = {}
        self._speech_context: SpeechContext | None = None
        self._stt_tasks: list[asyncio.Task[None]] = []
        self._end_task: asyncio.Task[None] | None = None
        self._ending = False
        # Drain past its grace: `cut_short` cancels the flush, `_phase` says what it was doing.
        self._flush_task: asyncio.Task[str] | None = None
        self._cut = False
        self._phase = "stt"
        self.ended = asyncio.Event()
        self._alerts: AlertStage | None = None
        if deps.alert_rules is not None:
            self._alerts = AlertStage(
                deps.alert_rules, lambda alert: self.events.emit(durable=True, alert=alert)
            )
            self.events.after_durable = self._raise_alerts
        metrics.ACTIVE_CALLS.inc()

    async def _raise_alerts(self, event: events_pb2.CallEvent) -> None:
        """Emit the alerts a durable event fires, right after it (alert events fire none)."""
        if self._alerts is not None:
            for alert in self._alerts.observe(event):
                await self.events.emit(durable=True, alert=alert)

    async def notice(self, level: events_pb2.NoticeLevel.ValueType, code: str, text: str) -> None:
        await self.events.emit(durable=True, notice=events_pb2.Notice(level=level, code=code, text=text))

    # ------------------------------------------------------------------ start

    async def start(self) -> None:
        """Emit call_started (or CALL_RESUMED on re-attach), prefetch the hinted customer, open STT."""
        if self.events.last_sequence == 0:
            await self.events.emit(durable=True, call_started=events_pb2.CallStarted(call=self.call))
        else:
            # Re-attach: segment ids continue after the ones already stored.
            stored = await self._deps.store.get_transcript(self.call_id)
            self._transcripts = Transcripts(first_segment=last_segment_number(stored) + 1)
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
        if self._decoder is not None and not self._ending:
            language = self.call.config.language_code or "en"
            hints = list(self.call.config.phrase_hints)
            for role in self._decoder.roles:
                stream = self._deps.stt.stream(language=language, phrase_hints=hints)
                if self._speech_context is not None:
                    stream.update_context(
                        names=self._speech_context.names, numbers=self._speech_context.numbers
                    )
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
        for role, samples in self._decoder.decode(data).items():
            if samples.size and role in self._streams:
                await self._streams[role].push_audio(samples)
        metrics.FRAME_TO_STT.observe(time.time() - received)

    async def add_text_turn(self, role: Role, text: str, received: float) -> None:
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
        out = self._transcripts.text_turn(role, text, received)
        event = await self.events.emit(durable=True, timings=out.timings, transcript=out.update)
        await self._after_final(
            Turn(segment_id=out.update.segment_id, role=role, text=out.update.text), event
        )

    def suggest_now(self, query: str) -> None:
        self._suggestions.trigger(AssistJob(trigger=None, query=query, input_time=time.time()))

    async def record_feedback(
        self, feedback: assist_service_pb2.SuggestionFeedback
    ) -> assist_service_pb2.Suggestion:
        suggestion = await self._deps.store.record_feedback(self.call_id, feedback)
        self._suggestions.feedback_applied(feedback)
        return suggestion

    async def decide_tool(self, decision: events_pb2.ToolDecision) -> events_pb2.ToolCall:
        """Apply the agent's (validated) decision on a proposed write tool; see tool_decisions."""
        return await self._tools.decide(decision)

    # --------------------------------------------------------------- pipeline

    async def _consume_stt(self, role: Role, stream: STTStream) -> None:
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

    async def _on_speech_event(self, role: Role, sev: SpeechEvent) -> None:
        if sev.kind is SpeechEventKind.DEGRADED:
            await self.notice(events_pb2.NOTICE_LEVEL_WARNING, "STT_DEGRADED", sev.text)
            return
        if sev.kind in (SpeechEventKind.START_OF_SPEECH, SpeechEventKind.END_OF_SPEECH):
            self._transcripts.segment_id(role, sev.utterance)
            await self.events.emit(durable=False, speech_activity=speech_activity(role, sev))
            return
        out = self._transcripts.speech(role, sev)
        if out is None:
            return
        event = await self.events.emit(durable=out.is_final, timings=out.timings, transcript=out.update)
        if out.is_final:
            if sev.speech_end_time:
                metrics.SPEECH_END_TO_FINAL.observe(max(0.0, time.time() - sev.speech_end_time))
            turn = Turn(segment_id=out.update.segment_id, role=role, text=out.update.text)
            await self._after_final(turn, event)

    async def _after_final(self, turn: Turn, event: events_pb2.CallEvent) -> None:
        async with self._context_lock:
            update = await self._context.on_final(turn)
        if update is not None:
            await self._publish_context(update)
        # Finals flushed while the call is ending still get their suggestion:
        # the customer's last request is often the one that matters most.
        if turn.role != common_pb2.SPEAKER_ROLE_CUSTOMER:
            return
        if self._deps.assistant.wants_to_respond(turn, self._context.state):
            input_time = event.time.ToNanoseconds() / 1e9
            self._suggestions.trigger(AssistJob(trigger=turn, query="", input_time=input_time))

    async def _publish_context(self, update: events_pb2.ContextUpdate) -> None:
        await self.events.emit(durable=True, context=update)
        if update.HasField("customer") and update.customer.customer_id != self.call.customer_id:
            # The store records the customer with the context event itself.
            self.call.customer_id = update.customer.customer_id
            # The identified customer's name and order numbers become the
            # recogniser's hotwords for the rest of the call (never card data).
            orders = list(update.orders) or await self._deps.directory.customer_orders(
                update.customer.customer_id, limit=MAX_ORDER_NUMBERS
            )
            self._speech_context = speech_context(update.customer, orders)
            for stream in self._streams.values():
                stream.update_context(names=self._speech_context.names, numbers=self._speech_context.numbers)

    # -------------------------------------------------------------------- end

    def request_end(self, reason: call_pb2.CallEndReason.ValueType, detail: str = "") -> asyncio.Task[None]:
        """Start ending the call (idempotent); the returned task completes when it has ended.

        The work runs in its own task so that a cancelled caller (a client
        that went away) cannot interrupt the flushing of finals or the
        writing of call_ended.
        """
        if self._end_task is None:
            self._ending = True
            self._end_task = asyncio.create_task(self._finish(reason, detail))
        return self._end_task

    async def end(self, reason: call_pb2.CallEndReason.ValueType, detail: str = "") -> None:
        await asyncio.shield(self.request_end(reason, detail))

    def cut_short(self) -> None:
        """Stop flushing now (the drain's grace is over): the end is still recorded.

        Finals already produced stay; what STT had not decoded, a suggestion
        in flight and the summary are dropped, and a durable
        SHUTDOWN_CUT_SHORT notice, written before call_ended, says which.
        """
        self._cut = True
        if self._flush_task is not None and not self._flush_task.done():
            self._flush_task.cancel()

    async def _flush(self) -> str:
        """Everything ending a call waits for; returns the summary."""
        self._phase = "stt"
        await self._drain_stt()
        self._phase = "suggestion"
        await self._suggestions.drain(END_ASSIST_TIMEOUT_S)
        await self._tools.cancel_all("the call ended before the agent decided")
        self._phase = "summary"
        try:
            return await asyncio.wait_for(
                self._deps.assistant.summarise(self._context.state), END_ASSIST_TIMEOUT_S
            )
        except asyncio.CancelledError:
            raise
        except Exception:
            self._log.exception("summary failed")
            return ""

    async def _abandon_flush(self) -> None:
        """After a cut: stop STT and the suggestion in flight so nothing follows call_ended."""
        for task in self._stt_tasks:
            task.cancel()
        await asyncio.gather(*self._stt_tasks, return_exceptions=True)
        for stream in self._streams.values():
            with contextlib.suppress(Exception):
                await stream.aclose()
        await self._suggestions.drain(0)
        with contextlib.suppress(Exception):
            await self._tools.cancel_all("the call was cut short by a server shutdown")

    async def _finish(self, reason: call_pb2.CallEndReason.ValueType, detail: str) -> None:
        interrupted = False
        summary = ""
        flush = self._flush_task = asyncio.create_task(self._flush())
        if self._cut:
            flush.cancel()
        try:
            await asyncio.wait([flush])
        except asyncio.CancelledError:
            # Cut short (loop shutting down): the end is still recorded below.
            interrupted = True
            flush.cancel()
            self._suggestions.closed = True
        else:
            if flush.cancelled():
                try:
                    await self._abandon_flush()
                    await self.notice(
                        events_pb2.NOTICE_LEVEL_WARNING, "SHUTDOWN_CUT_SHORT", _CUT_TEXT[self._phase]
                    )
                except asyncio.CancelledError:
                    interrupted = True
                except Exception:
                    self._log.exception("recording the cut-short notice failed")
            elif flush.exception() is not None:
                self._log.error("flushing the call failed; ending it anyway", exc_info=flush.exception())
            else:
                summary = flush.result()
        recorded = False
        try:
            if self._alerts is not None:
                await self._alerts.close()  # no alert may follow call_ended
            if self.events.last_sequence == 0:
                # Ended before it started (its opener went away, or EndCall on
                # a created call): the log still opens with call_started.
                await self.events.emit(durable=True, call_started=events_pb2.CallStarted(call=self.call))
            ended = events_pb2.CallEnded(reason=reason, detail=detail, summary=summary)
            await self.events.emit(durable=True, call_ended=ended)
            recorded = True
        except asyncio.CancelledError:
            interrupted = True  # the write itself runs on in its own task
        except Exception:
            self._log.exception(
                "could not record the end of the call; it stays ACTIVE until the next start-up recovery"
            )
        finally:
            # Announced only once call_ended (if its write is still running) is stored,
            # so a watcher that replays after the bus finished finds it.
            self.events.when_settled(self._closed_now)
            if recorded:
                self._log.info("call ended (%s)", call_pb2.CallEndReason.Name(reason))
        if interrupted:
            raise asyncio.CancelledError()

    def _closed_now(self) -> None:
        self._deps.bus.finish(self.call_id)
        metrics.ACTIVE_CALLS.dec()
        self.ended.set()
        if self._on_closed is not None:
            self._on_closed(self)

    async def _drain_stt(self) -> None:
        if self._decoder is not None:
            with contextlib.suppress(Exception):
                for role, samples in self._decoder.flush().items():
                    if samples.size and role in self._streams:
                        await self._streams[role].push_audio(samples)
        for stream in self._streams.values():
            stream.end_input()
        running = [t for t in self._stt_tasks if not t.done()]
        if running:
            _done, pending = await asyncio.wait(running, timeout=END_STT_TIMEOUT_S)
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
