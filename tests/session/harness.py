"""A small harness that drives one `CallSession` with scripted parts.

In the spirit of Pipecat's `run_test(processor, frames_to_send,
expected_down_frames)`: a test says what the recogniser hears and what the
assistant answers, drives the session, and reads back every event the
session published, in order. No Whisper, no gRPC, no database:

- `MemoryCallLog` implements the `CallLog` protocol in memory, keeping its
  invariants (atomic appends, AlreadyExists on a written sequence, the
  derived records), with an optional `delay` per append so tests can land
  cancellations in the middle of a write.
- `ScriptedSTT` opens `ScriptedStream`s; a test feeds each stream
  `SpeechEvent`s with `say(...)` (the stream yields them in order and ends
  after `end_input`).
- `ScriptedAssistant` answers each request with the next scripted list of
  outputs (tool calls, deltas, notices, completions).

`SessionHarness` wires them into `SessionDeps`, records every published
event (`events`) and offers `wait_for(kind)` bounded in time.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field

from callpilot.server.assist.base import Assistant, AssistOutput, AssistRequest, ConversationState, Turn
from callpilot.server.assist.tools import ToolBox
from callpilot.server.bus import InProcessBus, Subscription
from callpilot.server.errors import AlreadyExists, NotFound
from callpilot.server.session import CallSession, SessionDeps
from callpilot.server.stt.base import (
    AudioArray,
    SpeechEvent,
    SpeechEventKind,
    STTCapabilities,
    STTEngine,
    STTStream,
)
from callpilot.v1 import assist_service_pb2, call_pb2, common_pb2, directory_pb2, events_pb2
from fakes.directory import FakeDirectory

WAIT_S = 10.0

# --------------------------------------------------------------------- store


class MemoryCallLog:
    """The `CallLog` protocol in memory (one tenant)."""

    def __init__(self, *, delay: float = 0.0) -> None:
        self.calls: dict[str, call_pb2.Call] = {}
        self.events: dict[str, list[events_pb2.CallEvent]] = {}
        self.contexts: dict[str, events_pb2.ContextUpdate] = {}
        self.suggestions: dict[str, dict[str, assist_service_pb2.Suggestion]] = {}
        self.tool_calls: dict[str, dict[str, events_pb2.ToolCall]] = {}
        self.wrap_ups: dict[str, assist_service_pb2.WrapUp] = {}
        # Seconds each append waits before committing: a cancel can land in it.
        self.delay = delay

    async def create_call(self, call: call_pb2.Call) -> None:
        if call.call_id in self.calls:
            raise AlreadyExists(f"call {call.call_id!r} already exists")
        stored = call_pb2.Call()
        stored.CopyFrom(call)
        self.calls[call.call_id] = stored
        self.events[call.call_id] = []

    async def get_call(self, call_id: str) -> call_pb2.Call | None:
        call = self.calls.get(call_id)
        if call is None:
            return None
        copy = call_pb2.Call()
        copy.CopyFrom(call)
        return copy

    async def update_call(self, call: call_pb2.Call) -> None:
        stored = self.calls.get(call.call_id)
        if stored is None:
            raise NotFound(f"call {call.call_id!r} not found")
        last, created = stored.last_sequence, stored.create_time
        stored.CopyFrom(call)
        stored.last_sequence = last
        stored.create_time.CopyFrom(created)

    async def list_calls(
        self,
        *,
        page_size: int = 20,
        page_token: str = "",
        state: call_pb2.CallState.ValueType = call_pb2.CALL_STATE_UNSPECIFIED,
    ) -> tuple[list[call_pb2.Call], str]:
        calls = [
            c for c in self.calls.values() if state == call_pb2.CALL_STATE_UNSPECIFIED or c.state == state
        ]
        start = int(page_token or 0)
        page = calls[start : start + page_size]
        token = str(start + page_size) if start + page_size < len(calls) else ""
        return [await self.get_call(c.call_id) for c in page if c.call_id in self.calls], token  # type: ignore[misc]

    async def append_event(self, event: events_pb2.CallEvent) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        # From here on nothing awaits: the append is atomic, as in a transaction.
        call = self.calls.get(event.call_id)
        if call is None:
            raise NotFound(f"call {event.call_id!r} not found")
        log = self.events[event.call_id]
        if any(e.sequence == event.sequence for e in log):
            raise AlreadyExists(f"event {event.sequence} of call {event.call_id!r} was already written")
        stored = events_pb2.CallEvent()
        stored.CopyFrom(event)
        # Build everything derived first, then apply it all: all or nothing.
        kind = event.WhichOneof("payload")
        suggestion: assist_service_pb2.Suggestion | None = None
        if kind == "suggestion_completed":
            suggestion = assist_service_pb2.Suggestion(
                suggestion=event.suggestion_completed, create_time=event.time
            )
        log.append(stored)
        log.sort(key=lambda e: e.sequence)
        call.last_sequence = max(call.last_sequence, event.sequence)
        if kind == "call_ended":
            call.state = call_pb2.CALL_STATE_ENDED
            call.end_reason = event.call_ended.reason
            call.end_time.CopyFrom(event.time)
            if event.call_ended.summary:
                call.summary = event.call_ended.summary
        elif kind == "context":
            self.contexts[event.call_id] = event.context
            if event.context.customer.customer_id:
                call.customer_id = event.context.customer.customer_id
        elif suggestion is not None:
            mine = self.suggestions.setdefault(event.call_id, {})
            superseded = mine.get(event.suggestion_completed.supersedes_suggestion_id)
            if superseded is not None:
                superseded.superseded = True
            mine[event.suggestion_completed.suggestion_id] = suggestion
        elif kind == "tool_call":
            self.tool_calls.setdefault(event.call_id, {})[event.tool_call.tool_call_id] = event.tool_call

    async def read_events(
        self, call_id: str, from_sequence: int, limit: int | None = None
    ) -> list[events_pb2.CallEvent]:
        found = [e for e in self.events.get(call_id, []) if e.sequence >= from_sequence]
        return found if limit is None else found[:limit]

    async def get_transcript(
        self, call_id: str, *, offset: int = 0, limit: int | None = None
    ) -> list[events_pb2.TranscriptUpdate]:
        finals = [
            e.transcript
            for e in self.events.get(call_id, [])
            if e.WhichOneof("payload") == "transcript" and e.transcript.is_final
        ]
        return finals[offset:] if limit is None else finals[offset : offset + limit]

    async def get_tool_calls(self, call_id: str) -> list[events_pb2.ToolCall]:
        return list(self.tool_calls.get(call_id, {}).values())

    async def get_suggestions(self, call_id: str) -> list[assist_service_pb2.Suggestion]:
        return list(self.suggestions.get(call_id, {}).values())

    async def latest_context(self, call_id: str) -> events_pb2.ContextUpdate | None:
        return self.contexts.get(call_id)

    async def record_feedback(
        self, call_id: str, feedback: assist_service_pb2.SuggestionFeedback
    ) -> assist_service_pb2.Suggestion:
        suggestion = self.suggestions.get(call_id, {}).get(feedback.suggestion_id)
        if suggestion is None:
            raise NotFound(f"no suggestion {feedback.suggestion_id!r}")
        suggestion.feedback.CopyFrom(feedback)
        return suggestion

    async def save_wrap_up(
        self, call_id: str, wrap_up: assist_service_pb2.WrapUp, updated_by: str
    ) -> assist_service_pb2.WrapUp:
        if call_id not in self.calls:
            raise NotFound(f"call {call_id!r} not found")
        saved = assist_service_pb2.WrapUp()
        saved.CopyFrom(wrap_up)
        saved.update_time.GetCurrentTime()
        saved.updated_by = updated_by
        self.wrap_ups[call_id] = saved
        return saved

    async def get_wrap_up(self, call_id: str) -> assist_service_pb2.WrapUp | None:
        return self.wrap_ups.get(call_id)


class WritableDirectory(FakeDirectory):
    """The fake directory plus the one write tool, so confirmed tools succeed."""

    def __init__(self) -> None:
        super().__init__()
        self.tickets: list[directory_pb2.Ticket] = []

    async def create_ticket(self, customer_id: str, subject: str) -> directory_pb2.Ticket:
        ticket = directory_pb2.Ticket(ticket_id=f"T-{len(self.tickets) + 1}", subject=subject)
        self.tickets.append(ticket)
        return ticket


# ----------------------------------------------------------------------- STT


class ScriptedStream(STTStream):
    """Yields what the test `say`s, in order; ends after `end_input` once all is out."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[SpeechEvent | None] = asyncio.Queue()
        self.pushed_samples = 0
        self.closed = False
        self.context: tuple[tuple[str, ...], tuple[str, ...]] | None = None

    def update_context(self, *, names: Sequence[str] = (), numbers: Sequence[str] = ()) -> None:
        self.context = (tuple(names), tuple(numbers))

    def say(self, *events: SpeechEvent) -> None:
        for event in events:
            self._queue.put_nowait(event)

    async def push_audio(self, pcm: AudioArray) -> None:
        self.pushed_samples += int(pcm.size)

    async def flush(self) -> None:
        return None

    def end_input(self) -> None:
        self._queue.put_nowait(None)

    async def _iterate(self) -> AsyncIterator[SpeechEvent]:
        while (event := await self._queue.get()) is not None:
            yield event

    def __aiter__(self) -> AsyncIterator[SpeechEvent]:
        return self._iterate()

    async def aclose(self) -> None:
        self.closed = True


class ScriptedSTT(STTEngine):
    capabilities = STTCapabilities(streaming=True, interim_results=True)

    def __init__(self) -> None:
        self.streams: list[ScriptedStream] = []
        self.opened = asyncio.Event()

    def stream(self, *, language: str, phrase_hints: Sequence[str] = ()) -> STTStream:
        stream = ScriptedStream()
        self.streams.append(stream)
        self.opened.set()
        return stream


def final(utterance: int, text: str) -> SpeechEvent:
    return SpeechEvent(SpeechEventKind.FINAL, utterance, text, confidence=0.9, start=0.5, end=1.5)


def interim(utterance: int, text: str) -> SpeechEvent:
    return SpeechEvent(SpeechEventKind.INTERIM, utterance, text, confidence=0.5, start=0.5, end=1.0)


def degraded(why: str) -> SpeechEvent:
    return SpeechEvent(SpeechEventKind.DEGRADED, 0, why)


# ----------------------------------------------------------------- assistant


@dataclass
class ScriptedAssistant(Assistant):
    """Answers each request with the next script; no script left means no answer.

    `gate`, when set, holds every answer before its first output until the
    test sets it (to land a newer turn or the end of the call meanwhile).
    """

    scripts: list[list[AssistOutput]] = field(default_factory=list)
    respond_to: Callable[[Turn], bool] = lambda turn: turn.role == common_pb2.SPEAKER_ROLE_CUSTOMER
    summary: str = ""
    gate: asyncio.Event | None = None
    requests: list[AssistRequest] = field(default_factory=list)

    def wants_to_respond(self, turn: Turn, state: ConversationState) -> bool:
        return self.respond_to(turn)

    async def respond(self, request: AssistRequest) -> AsyncIterator[AssistOutput]:
        self.requests.append(request)
        script = self.scripts.pop(0) if self.scripts else []
        if self.gate is not None:
            await self.gate.wait()
        for out in script:
            await asyncio.sleep(0)
            yield out

    async def summarise(self, state: ConversationState) -> str:
        return self.summary


def answer(text: str, *deltas: str) -> list[AssistOutput]:
    """A plain suggestion: its deltas, then its completion."""
    outs: list[AssistOutput] = [events_pb2.SuggestionDelta(text=d) for d in deltas]
    outs.append(events_pb2.SuggestionCompleted(text=text))
    return outs


# ------------------------------------------------------------------- harness

_ids = itertools.count(1)


def audio_call(call_id: str = "", *, channels: int = 1) -> call_pb2.Call:
    call = call_pb2.Call(
        call_id=call_id or f"call-{next(_ids)}", tenant_id="default", state=call_pb2.CALL_STATE_ACTIVE
    )
    call.config.call_id = call.call_id
    call.config.audio.encoding = common_pb2.AUDIO_ENCODING_LINEAR16
    call.config.audio.sample_rate_hertz = 16000
    call.config.audio.channel_count = channels
    call.create_time.GetCurrentTime()
    return call


class SessionHarness:
    """One session over scripted parts, with every published event recorded."""

    def __init__(
        self,
        *,
        assistant: ScriptedAssistant | None = None,
        store: MemoryCallLog | None = None,
        bus: InProcessBus | None = None,
    ) -> None:
        self.store = store or MemoryCallLog()
        self.bus = bus or InProcessBus()
        self.stt = ScriptedSTT()
        self.assistant = assistant or ScriptedAssistant()
        self.directory = WritableDirectory()
        self.deps = SessionDeps(
            store=self.store,
            bus=self.bus,
            stt=self.stt,
            assistant=self.assistant,
            directory=self.directory,
            toolbox=ToolBox(self.directory),
        )
        self.events: list[events_pb2.CallEvent] = []
        self._changed = asyncio.Condition()
        self._recorder: asyncio.Task[None] | None = None
        self.session: CallSession | None = None

    async def start(self, call: call_pb2.Call | None = None) -> CallSession:
        """Create (if new) and start the call's session; recording starts before its first event."""
        call = call or audio_call()
        if await self.store.get_call(call.call_id) is None:
            await self.store.create_call(call)
        else:
            stored = await self.store.get_call(call.call_id)
            assert stored is not None
            call = stored
        self.session = CallSession(call, self.deps)
        sub = self.bus.subscribe(call.call_id)
        self._recorder = asyncio.create_task(self._record(sub))
        await self.session.start()
        return self.session

    @property
    def stream(self) -> ScriptedStream:
        """The first speaker's recogniser stream."""
        return self.stt.streams[0]

    async def _record(self, sub: Subscription) -> None:
        try:
            async for event in sub:
                async with self._changed:
                    self.events.append(event)
                    self._changed.notify_all()
        finally:
            sub.close()

    async def wait_for(
        self, predicate: Callable[[events_pb2.CallEvent], bool] | str, count: int = 1
    ) -> list[events_pb2.CallEvent]:
        """The first `count` recorded events matching (a payload kind or a predicate), waiting if needed."""
        match = (lambda e: e.WhichOneof("payload") == predicate) if isinstance(predicate, str) else predicate
        async with asyncio.timeout(WAIT_S), self._changed:
            while len(found := [e for e in self.events if match(e)]) < count:
                await self._changed.wait()
        return found[:count]

    async def end(
        self, reason: call_pb2.CallEndReason.ValueType = call_pb2.CALL_END_REASON_CLIENT_ENDED
    ) -> None:
        assert self.session is not None
        async with asyncio.timeout(WAIT_S):
            await self.session.end(reason)
            if self._recorder is not None:
                await self._recorder

    def kinds(self, *, durable: bool | None = None) -> list[str]:
        return [e.WhichOneof("payload") or "" for e in self.events if durable is None or e.durable == durable]


async def run_test(
    *,
    speech: Iterable[SpeechEvent] = (),
    text_turns: Iterable[tuple[common_pb2.SpeakerRole.ValueType, str]] = (),
    scripts: Iterable[list[AssistOutput]] = (),
    expected_durable: Sequence[str] | None = None,
) -> SessionHarness:
    """Drive a whole call: speech into the first stream, text turns, then the end.

    Returns the harness (its `events`, `store`); when `expected_durable` is
    given, asserts the kinds of the durable events published, in order.
    """
    harness = SessionHarness(assistant=ScriptedAssistant(scripts=list(scripts)))
    session = await harness.start()
    harness.stream.say(*speech)
    for role, text in text_turns:
        await session.add_text_turn(role, text, 0.0)
    await harness.end()
    if expected_durable is not None:
        assert harness.kinds(durable=True) == list(expected_durable)
    return harness
