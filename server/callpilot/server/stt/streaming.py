"""The stream half shared by engines that endpoint locally (embedded Whisper, null).

`SegmentingStream` owns everything except turning audio into words: it runs
the `Endpointer` on each pushed chunk, numbers utterances, paces interim
hypotheses, queues utterances for their final decode, and delivers
`SpeechEvent`s through the bounded `queue.EventQueue`. A subclass supplies `_decode`.

Event order, per stream:
  * per utterance: START_OF_SPEECH, INTERIM*, END_OF_SPEECH, FINAL — except
    that an interim already being decoded when speech ends may arrive after
    END_OF_SPEECH (never after the FINAL: a late interim is discarded);
  * START/END_OF_SPEECH are emitted as soon as the VAD decides, so while one
    utterance's FINAL is still decoding the next one's START (and END) can
    come before it; events always carry `utterance` to tell them apart;
  * FINALs come in utterance order, exactly one per END_OF_SPEECH (with
    empty text when the decoder heard no words).

Queues and their policies (every hand-off is bounded):
  * output events (`EventQueue`, `max_events`): durable events (START, END,
    FINAL) wait for room, which back-pressures the producer; an INTERIM
    replaces an undelivered INTERIM of the same utterance (coalescing), and
    is dropped when there is none to replace and the queue is full;
  * utterances awaiting their final decode (`max_pending_finals`): when that
    many are waiting, `push_audio` waits for the decoder, i.e. finals are
    never dropped and a recogniser that is far behind slows its producer
    rather than growing memory without limit;
  * interims: at most one in flight per stream, started only when the
    decoder says it has an idle worker and the speaker is not pausing; a
    skipped interim is retried on the next push with the newest audio, so
    under load interims coalesce. `interims_skipped` counts each due interim
    that was turned down (once, however often it was retried).

Speculative finals (`speculate_after_ms`): once the speaker has paused that
long inside an utterance (and the end padding is complete), the audio the
endpoint would close is decoded as a FINAL right away, while the endpointer
waits out the rest of `min_silence_ms`. At the endpoint the result is
committed if the real `SpeechEnd` covers exactly the audio that was decoded;
if speech resumed (or the cut differs) it is discarded and the utterance is
decoded as usual. A speculative result only ever reaches the consumer
through the utterance's one FINAL, so it can never be emitted twice, and
END_OF_SPEECH is still emitted at the endpoint itself. Speculation starts
only when no earlier final is waiting, so the prompt (recent finals) it is
decoded with is the one the ordinary final would have had.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from abc import abstractmethod
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from callpilot.server.stt.base import (
    SAMPLE_RATE,
    AudioArray,
    SpeechEvent,
    SpeechEventKind,
    STTError,
    STTStream,
)
from callpilot.server.stt.queue import EventQueue
from callpilot.server.stt.vad import (
    Endpointer,
    SpeechEnd,
    SpeechStart,
    VadEvent,
    VadOptions,
    load_silero_session,
    seconds,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Hypothesis:
    """What a decoder heard in one stretch of audio."""

    text: str
    confidence: float
    # Whisper's own signals flagged (and dropped) part of the decode as a hallucination.
    suspect: bool = False


@dataclass(frozen=True, slots=True)
class SegmentingOptions:
    """What every locally endpointed engine passes to its streams (one value per engine).

    vad: endpointing tunables. interim_interval: seconds of new audio between
    interim decodes of the open utterance (None: no interims).
    speculate_after_ms: pause inside an utterance after which its final is
    decoded speculatively (None: never; see the module docstring).
    max_pending_finals / max_events: the queue bounds whose policies the
    module docstring states.
    """

    vad: VadOptions = field(default_factory=VadOptions)
    interim_interval: float | None = 0.7
    max_pending_finals: int = 4
    max_events: int = 64
    speculate_after_ms: int | None = 200

    def __post_init__(self) -> None:
        if self.speculate_after_ms is not None and self.speculate_after_ms < 0:
            raise ValueError("speculate_after_ms must be >= 0 (or None to disable speculative finals)")
        if self.interim_interval is not None and self.interim_interval <= 0:
            raise ValueError("interim_interval must be positive (or None to disable interims)")
        if self.max_pending_finals < 1:
            raise ValueError("max_pending_finals must be at least 1")


@dataclass(frozen=True, slots=True)
class _FinalJob:
    utterance: int
    segment: SpeechEnd
    input_time: float
    speech_end_time: float
    holds_slot: bool
    speculation: asyncio.Task[Hypothesis | None] | None = None


@dataclass(slots=True)
class _Speculation:
    """A final decode started during a pause, for utterance `utterance` covering [start, end)."""

    utterance: int
    pause_start: int
    start: int
    end: int
    task: asyncio.Task[Hypothesis | None]


@dataclass(slots=True)
class SpeculationStats:
    """How speculative finals fared: committed at the endpoint, or discarded (speech resumed)."""

    started: int = 0
    committed: int = 0
    discarded: int = 0


class SegmentingStream(STTStream):
    """VAD-endpointed stream; subclasses implement `_decode` (and may refine `_interim_possible`).

    `push_audio` does the VAD on the event loop (a few µs per 20 ms chunk) and
    never waits for a decode, except through the documented back-pressure
    when `max_pending_finals` utterances are already waiting.
    """

    def __init__(self, options: SegmentingOptions, *, vad_session: Any | None = None) -> None:
        """`vad_session`: a loaded Silero session; None loads (or reuses) the shared one."""
        interim_interval = options.interim_interval
        max_pending_finals = options.max_pending_finals
        if vad_session is None:
            vad_session = load_silero_session()
        self._endpointer = Endpointer(options.vad, session=vad_session)
        self._interim_step = None if interim_interval is None else int(interim_interval * SAMPLE_RATE)
        speculate = options.speculate_after_ms
        self._speculate_after = None if speculate is None else speculate * SAMPLE_RATE // 1000
        self._speculation: _Speculation | None = None
        self._finals_pending = 0
        self.speculation_stats = SpeculationStats()
        self._events = EventQueue(options.max_events)
        # Unbounded type, bounded in practice: every put but end_input's takes a slot first.
        self._finals: asyncio.Queue[_FinalJob | None] = asyncio.Queue()
        self._final_slots = asyncio.Semaphore(max_pending_finals)
        self._max_pending_finals = max_pending_finals
        self._push_times: deque[tuple[int, float]] = deque()
        self._next_utterance = 0
        self._open: int | None = None
        self._open_start = 0
        self._last_interim_pos = 0
        self._last_interim_text = ""
        self._skip_counted_at = -1
        self.interims_skipped = 0
        self._last_final_utterance = -1
        self._worker: asyncio.Task[None] | None = None
        self._interim_task: asyncio.Task[None] | None = None
        self._input_ended = False
        self._closed = False

    # -- subclass hooks ----------------------------------------------------------------------

    @abstractmethod
    async def _decode(self, audio: AudioArray, *, final: bool) -> Hypothesis | None:
        """Recognise `audio`. For interims, None means "skipped, the decoder is busy"."""

    def _interim_possible(self) -> bool:
        """Cheap check before snapshotting audio for an interim (e.g. "is a worker idle?")."""
        return True

    def _on_interim_skipped(self) -> None:
        """Called once per due interim that `_interim_possible` turned down (for the engine's stats)."""

    def _on_final(self, hypothesis: Hypothesis) -> None:
        """Called once per FINAL as it is emitted (e.g. to carry its words into the next prompt)."""

    # -- STTStream -----------------------------------------------------------------------------

    async def push_audio(self, pcm: AudioArray) -> None:
        if self._closed:
            raise STTError("push_audio on a closed speech stream")
        if self._input_ended:
            raise STTError("push_audio after end_input")
        self._ensure_worker()
        now = time.time()
        events = self._endpointer.push(pcm)
        self._push_times.append((self._endpointer.position, now))
        for event in events:
            await self._on_vad(event, now)
        self._trim_push_times()
        self._maybe_speculate()
        self._maybe_interim(now)

    async def flush(self) -> None:
        if self._closed or self._input_ended:
            return
        self._ensure_worker()
        now = time.time()
        for event in self._endpointer.cut("flush"):
            await self._on_vad(event, now)

    def end_input(self) -> None:
        if self._input_ended or self._closed:
            return
        self._input_ended = True
        self._ensure_worker()
        now = time.time()
        for event in self._endpointer.finish():
            if isinstance(event, SpeechEnd) and self._open is not None:
                job = self._close_utterance(event, now, holds_slot=False)
                self._events.put_force(self._end_event(job))
                self._finals.put_nowait(job)
        self._finals.put_nowait(None)

    async def __aiter__(self) -> AsyncIterator[SpeechEvent]:
        while (event := await self._events.get()) is not None:
            yield event

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._events.close(discard=True)  # wakes a producer waiting for room in the event queue
        for _ in range(self._max_pending_finals):  # ...and one waiting for a final slot
            self._final_slots.release()
        self._drop_speculation(count=False)
        tasks = [t for t in (self._worker, self._interim_task) if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # -- internals -----------------------------------------------------------------------------

    def _ensure_worker(self) -> None:
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._final_worker(), name="stt-finals")

    async def _on_vad(self, event: VadEvent, now: float) -> None:
        if isinstance(event, SpeechStart):
            utterance = self._next_utterance
            self._next_utterance += 1
            self._open = utterance
            self._open_start = event.start
            self._last_interim_pos = event.start
            self._last_interim_text = ""
            await self._events.put(
                SpeechEvent(
                    kind=SpeechEventKind.START_OF_SPEECH,
                    utterance=utterance,
                    start=seconds(event.start),
                    end=seconds(self._endpointer.position),
                    input_time=now,
                )
            )
            return
        if self._open is None:  # pragma: no cover - the endpointer never ends what it did not start
            return
        job = self._close_utterance(event, now, holds_slot=True)
        await self._events.put(self._end_event(job))
        await self._final_slots.acquire()
        self._finals.put_nowait(job)

    def _close_utterance(self, event: SpeechEnd, now: float, *, holds_slot: bool) -> _FinalJob:
        assert self._open is not None
        speculation = self._speculation
        task: asyncio.Task[Hypothesis | None] | None = None
        if (
            speculation is not None
            and speculation.utterance == self._open
            and (speculation.start, speculation.end) == (event.start, event.end)
        ):
            task, self._speculation = speculation.task, None
            self.speculation_stats.committed += 1
        else:
            self._drop_speculation()
        job = _FinalJob(
            utterance=self._open,
            segment=event,
            input_time=self._time_of(max(event.speech_end - 1, event.start)),
            speech_end_time=now,
            holds_slot=holds_slot,
            speculation=task,
        )
        self._finals_pending += 1
        self._open = None
        return job

    def _maybe_speculate(self) -> None:
        """Start (or invalidate) the speculative final of the open utterance; see the module docstring."""
        current = self._speculation
        pause_start = self._endpointer.pause_start
        if current is not None:
            if current.utterance == self._open and pause_start == current.pause_start:
                return  # the same pause goes on: keep it
            self._drop_speculation()  # speech resumed: the decoded audio is not what will close
        if self._speculate_after is None or self._open is None or pause_start is None:
            return
        if self._endpointer.position - pause_start < self._speculate_after or self._finals_pending:
            return
        tentative = self._endpointer.tentative_end()
        if tentative is None:
            return
        self._speculation = _Speculation(
            self._open,
            pause_start,
            tentative.start,
            tentative.end,
            asyncio.get_running_loop().create_task(
                self._decode(tentative.audio, final=True), name="stt-speculative-final"
            ),
        )
        self.speculation_stats.started += 1

    def _drop_speculation(self, *, count: bool = True) -> None:
        if self._speculation is None:
            return
        task, self._speculation = self._speculation.task, None
        task.cancel()  # a decode already on a worker runs to its end; its result is ignored
        task.add_done_callback(_consume_outcome)
        if count:
            self.speculation_stats.discarded += 1

    def _end_event(self, job: _FinalJob) -> SpeechEvent:
        return SpeechEvent(
            kind=SpeechEventKind.END_OF_SPEECH,
            utterance=job.utterance,
            start=seconds(job.segment.start),
            end=seconds(job.segment.end),
            input_time=job.input_time,
            speech_end_time=job.speech_end_time,
        )

    def _maybe_interim(self, now: float) -> None:
        if self._interim_step is None or self._open is None:
            return
        if self._interim_task is not None and not self._interim_task.done():
            return
        position = self._endpointer.position
        if position - self._last_interim_pos < self._interim_step or self._endpointer.pausing:
            # While the speaker pauses the words cannot change; holding off also keeps the
            # worker free for the FINAL that follows if the pause turns out to be the end.
            return
        if not self._interim_possible():
            if self._skip_counted_at != self._last_interim_pos:  # count each due interim once
                self._skip_counted_at = self._last_interim_pos
                self.interims_skipped += 1
                self._on_interim_skipped()
            return
        self._last_interim_pos = position
        audio = self._endpointer.open_audio()
        self._interim_task = asyncio.get_running_loop().create_task(
            self._run_interim(self._open, self._open_start, position, audio, now), name="stt-interim"
        )

    async def _run_interim(self, utterance: int, start: int, end: int, audio: AudioArray, now: float) -> None:
        try:
            hypothesis = await self._decode(audio, final=False)
        except Exception:  # interims are best effort; the final will report a real failure
            log.warning("interim decode failed", exc_info=True)
            return
        if hypothesis is None or not hypothesis.text or self._closed:
            return
        if utterance <= self._last_final_utterance or hypothesis.text == self._last_interim_text:
            return
        if utterance == self._open:
            self._last_interim_text = hypothesis.text
        self._events.put_interim(
            SpeechEvent(
                kind=SpeechEventKind.INTERIM,
                utterance=utterance,
                text=hypothesis.text,
                confidence=hypothesis.confidence,
                start=seconds(start),
                end=seconds(end),
                input_time=now,
            )
        )

    async def _final_worker(self) -> None:
        """Decode queued utterances one at a time, in order; close the events after end_input."""
        try:
            while (job := await self._finals.get()) is not None:
                try:
                    hypothesis = await self._final_hypothesis(job)
                finally:
                    self._finals_pending -= 1
                    if job.holds_slot:
                        self._final_slots.release()
                if hypothesis is None:  # pragma: no cover - decoders never skip finals
                    hypothesis = Hypothesis("", 0.0)
                self._last_final_utterance = job.utterance
                self._on_final(hypothesis)
                await self._events.put(
                    SpeechEvent(
                        kind=SpeechEventKind.FINAL,
                        utterance=job.utterance,
                        text=hypothesis.text,
                        confidence=hypothesis.confidence,
                        start=seconds(job.segment.start),
                        end=seconds(job.segment.end),
                        input_time=job.input_time,
                        speech_end_time=job.speech_end_time,
                    )
                )
            if self._interim_task is not None and not self._interim_task.done():
                self._interim_task.cancel()
            self._events.close()
        except asyncio.CancelledError:
            raise
        except STTError as exc:
            self._events.fail(exc)
        except Exception as exc:
            log.exception("speech recognition failed")
            self._events.fail(STTError(f"speech recognition failed: {exc}", retryable=False))

    async def _final_hypothesis(self, job: _FinalJob) -> Hypothesis | None:
        """The committed speculative result when there is one (it decoded this very audio), else a decode."""
        if job.speculation is not None:
            try:
                return await job.speculation
            except STTError:
                raise
            except Exception:
                log.warning("speculative final failed; decoding the utterance again", exc_info=True)
        return await self._decode(job.segment.audio, final=True)

    def _time_of(self, sample: int) -> float:
        """Wall-clock time at which `sample` was pushed."""
        for end, wall in self._push_times:
            if sample < end:
                return wall
        return self._push_times[-1][1] if self._push_times else time.time()

    def _trim_push_times(self) -> None:
        keep_from = self._endpointer.buffer_start
        while len(self._push_times) > 1 and self._push_times[0][0] <= keep_from:
            self._push_times.popleft()


def _consume_outcome(task: asyncio.Task[Hypothesis | None]) -> None:
    """Retrieve a discarded speculation's exception so asyncio does not log it as never retrieved."""
    if not task.cancelled():
        task.exception()
