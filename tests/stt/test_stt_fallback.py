"""FallbackEngine with scripted engines: a primary that fails after some utterances
and keeps its unfinalised audio (as Deepgram does), and a fallback that records
what it is given.

The audio encodes its own position: sample i of the call has the value i, so
what the fallback received shows at once whether the replay and the live audio
arrived contiguous, in order, without gaps or repeats.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import numpy as np
import pytest
from callpilot.server.stt.base import (
    SAMPLE_RATE,
    AudioArray,
    SpeechEvent,
    SpeechEventKind,
    STTCapabilities,
    STTEngine,
    STTError,
    STTStream,
)
from callpilot.server.stt.fallback import FallbackEngine, FallbackStream
from callpilot.server.stt.queue import EventQueue
from stt.switching import switch_over

K = SpeechEventKind
SR = SAMPLE_RATE


def positions(start_s: float, end_s: float) -> AudioArray:
    """Samples whose values are their own offsets in the call."""
    return np.arange(int(start_s * SR), int(end_s * SR), dtype=np.float32)


class _Recorder(STTStream):
    """Emits START, END, FINAL for every `utterance_s` of audio it has been pushed."""

    def __init__(self, utterance_s: float) -> None:
        self.out = EventQueue(64)
        self.step = int(utterance_s * SR)
        self.audio: list[AudioArray] = []
        self.pushed = 0
        self.covered = 0
        self.utterance = 0
        self.ended = False
        self.closed = False

    def received(self) -> AudioArray:
        return np.concatenate(self.audio) if self.audio else np.zeros(0, np.float32)

    async def push_audio(self, pcm: AudioArray) -> None:
        if self.ended:
            raise STTError("push_audio after end_input")
        self.audio.append(pcm.copy())
        self.pushed += len(pcm)
        while self.pushed - self.covered >= self.step:
            self._utterance(self.covered + self.step)

    def _utterance(self, end: int) -> None:
        data = self.received()
        text = f"{int(data[self.covered])}-{int(data[end - 1])}"
        start_s, end_s = self.covered / SR, end / SR
        for kind in (K.START_OF_SPEECH, K.END_OF_SPEECH, K.FINAL):
            self.out.put_force(
                SpeechEvent(
                    kind, self.utterance, text=text if kind is K.FINAL else "", start=start_s, end=end_s
                )
            )
        self.utterance += 1
        self.covered = end

    async def flush(self) -> None:
        if self.pushed > self.covered:
            self._utterance(self.pushed)

    def end_input(self) -> None:
        self.ended = True
        if self.pushed > self.covered:
            self._utterance(self.pushed)
        self.out.close()

    async def _iterate(self) -> AsyncIterator[SpeechEvent]:
        while (event := await self.out.get()) is not None:
            yield event

    def __aiter__(self) -> AsyncIterator[SpeechEvent]:
        return self._iterate()

    async def aclose(self) -> None:
        self.closed = True
        self.out.close(discard=True)


class FailingStream(_Recorder):
    """Finalises whole utterances, then fails for good once `fail_at` samples were pushed
    (or at end_input); keeps the audio after its last final, like Deepgram's ledger."""

    def __init__(
        self,
        utterance_s: float,
        fail_at: int | None,
        *,
        fail_on_end: bool,
        retryable: bool,
        keeps_audio: bool,
    ) -> None:
        super().__init__(utterance_s)
        self.fail_at = fail_at
        self.fail_on_end = fail_on_end
        self.retryable = retryable
        self.keeps_audio = keeps_audio
        self.failed = False

    async def push_audio(self, pcm: AudioArray) -> None:
        if self.failed:  # a failed cloud stream still takes audio into its ledger
            self.audio.append(pcm.copy())
            self.pushed += len(pcm)
            return
        await super().push_audio(pcm)
        if self.fail_at is not None and self.pushed >= self.fail_at:
            self._fail()

    def _fail(self) -> None:
        self.failed = True
        self.out.fail(STTError("scripted outage (503)", retryable=self.retryable))

    def end_input(self) -> None:
        self.ended = True
        if self.fail_on_end and not self.failed:
            self._fail()
        elif not self.failed:
            super().end_input()

    def unfinalised_audio(self) -> tuple[float, AudioArray | None]:
        if not self.keeps_audio:
            return 0.0, None
        return self.covered / SR, self.received()[self.covered :]


class ScriptedPrimary(STTEngine):
    capabilities = STTCapabilities(streaming=True, interim_results=False)

    def __init__(
        self,
        *,
        fail_at_s: float | None = None,
        fail_on_end: bool = False,
        retryable: bool = False,
        keeps_audio: bool = True,
    ) -> None:
        self.fail_at = None if fail_at_s is None else int(fail_at_s * SR)
        self.fail_on_end = fail_on_end
        self.retryable = retryable
        self.keeps_audio = keeps_audio
        self.streams: list[FailingStream] = []

    def stream(self, *, language: str, phrase_hints: Sequence[str] = ()) -> FailingStream:
        s = FailingStream(
            1.0,
            self.fail_at,
            fail_on_end=self.fail_on_end,
            retryable=self.retryable,
            keeps_audio=self.keeps_audio,
        )
        self.streams.append(s)
        return s


class GatedRecorder(_Recorder):
    """A recorder whose push_audio waits for `gate` (a slow decoder)."""

    def __init__(self, gate: asyncio.Event | None) -> None:
        super().__init__(1.0)
        self.gate = gate
        self.received_at_end: int | None = None

    async def push_audio(self, pcm: AudioArray) -> None:
        if self.gate is not None:
            await self.gate.wait()
        await super().push_audio(pcm)

    def end_input(self) -> None:
        self.received_at_end = self.pushed
        super().end_input()


class RecordingFallback(STTEngine):
    capabilities = STTCapabilities(streaming=True, interim_results=False)

    def __init__(self, gate: asyncio.Event | None = None) -> None:
        self.gate = gate
        self.streams: list[GatedRecorder] = []
        self.languages: list[tuple[str, tuple[str, ...]]] = []

    def stream(self, *, language: str, phrase_hints: Sequence[str] = ()) -> GatedRecorder:
        self.languages.append((language, tuple(phrase_hints)))
        s = GatedRecorder(self.gate)
        self.streams.append(s)
        return s


async def run_call(
    stream: STTStream, audio: AudioArray, *, chunk_s: float = 0.1, end: bool = True
) -> list[SpeechEvent]:
    events: list[SpeechEvent] = []

    async def consume() -> None:
        async for ev in stream:
            events.append(ev)

    consumer = asyncio.create_task(consume())
    n = int(chunk_s * SR)
    for i in range(0, len(audio), n):
        await stream.push_audio(audio[i : i + n])
        await asyncio.sleep(0)
    if end:
        stream.end_input()
    async with asyncio.timeout(10):
        await consumer
    return events


def finals(events: Sequence[SpeechEvent]) -> list[tuple[int, str, float, float]]:
    return [(e.utterance, e.text, e.start, e.end) for e in events if e.kind is K.FINAL]


async def test_switch_replays_unfinalised_audio_and_continues_the_call() -> None:
    primary, fallback = ScriptedPrimary(fail_at_s=2.5), RecordingFallback()
    engine = FallbackEngine(primary, fallback)
    stream = engine.stream(language="en-US", phrase_hints=["Callpilot"])
    events = await run_call(stream, positions(0, 6))

    degraded = [e for e in events if e.kind is K.DEGRADED]
    assert len(degraded) == 1
    assert (
        "switched to the embedded engine" in degraded[0].text and "scripted outage (503)" in degraded[0].text
    )
    assert events.index(degraded[0]) == 6, "after the primary's two utterances, before the fallback's"
    assert degraded[0].start == pytest.approx(2.0)

    assert finals(events) == [
        (0, "0-15999", 0.0, 1.0),
        (1, "16000-31999", 1.0, 2.0),
        # The fallback's utterances, numbered on and placed on the call's timeline.
        (2, "32000-47999", 2.0, 3.0),
        (3, "48000-63999", 3.0, 4.0),
        (4, "64000-79999", 4.0, 5.0),
        (5, "80000-95999", 5.0, 6.0),
    ]
    # Everything after the primary's last final, exactly once and in order: the replay, then live audio.
    got = fallback.streams[0].received()
    np.testing.assert_array_equal(got, positions(2, 6))
    assert fallback.languages == [("en-US", ("Callpilot",))]
    assert primary.streams[0].closed, "the failed stream is closed after the switch"
    assert isinstance(stream, FallbackStream) and stream.degraded
    utterances = [e.utterance for e in events if e.kind is K.START_OF_SPEECH]
    assert utterances == sorted(set(utterances)), "utterance ids stay unique per stream"


async def test_end_input_during_the_replay_waits_for_the_replayed_audio() -> None:
    gate = asyncio.Event()
    primary, fallback = ScriptedPrimary(fail_at_s=3.5), RecordingFallback(gate)
    stream = FallbackEngine(primary, fallback).stream(language="en")
    consumer, events = await switch_over(stream, stream.push_audio(positions(0, 3.5)))
    # The fallback is still stuck in the replay (its decoder is slow): the call ends now.
    assert fallback.streams[0].pushed == 0
    stream.end_input()
    with pytest.raises(STTError, match="after end_input"):
        await stream.push_audio(positions(3.5, 3.6))
    gate.set()
    async with asyncio.timeout(5):
        await consumer
    rec = fallback.streams[0]
    np.testing.assert_array_equal(rec.received(), positions(3, 3.5))
    assert rec.received_at_end == len(positions(3, 3.5)), "end_input reached the fallback after the replay"
    assert finals(events)[-1] == (3, "48000-55999", 3.0, 3.5)


async def test_a_primary_failing_at_end_input_hands_over_the_tail() -> None:
    primary, fallback = ScriptedPrimary(fail_on_end=True), RecordingFallback()
    events = await run_call(FallbackEngine(primary, fallback).stream(language="en"), positions(0, 2.5))
    assert [e.kind for e in events].count(K.DEGRADED) == 1
    assert finals(events)[-1] == (2, "32000-39999", 2.0, 2.5)
    assert fallback.streams[0].received_at_end == 8000


async def test_push_during_the_replay_waits_and_keeps_order() -> None:
    gate = asyncio.Event()
    primary, fallback = ScriptedPrimary(fail_at_s=1.5), RecordingFallback(gate)
    stream = FallbackEngine(primary, fallback).stream(language="en")
    consumer, _ = await switch_over(stream, stream.push_audio(positions(0, 1.5)))
    late = asyncio.create_task(stream.push_audio(positions(1.5, 2.0)))
    await asyncio.sleep(0.05)
    assert not late.done(), "live audio waits behind the replay"
    gate.set()
    async with asyncio.timeout(5):
        await late
    stream.end_input()
    async with asyncio.timeout(5):
        await consumer
    np.testing.assert_array_equal(fallback.streams[0].received(), positions(1, 2))


async def test_a_primary_without_audio_places_the_fallback_at_the_present() -> None:
    primary, fallback = ScriptedPrimary(fail_at_s=1.5, keeps_audio=False), RecordingFallback()
    stream = FallbackEngine(primary, fallback).stream(language="en")
    consumer, events = await switch_over(stream, stream.push_audio(positions(0, 1.5)))
    await stream.push_audio(positions(1.5, 3.5))
    stream.end_input()
    async with asyncio.timeout(5):
        await consumer
    degraded = next(e for e in events if e.kind is K.DEGRADED)
    assert degraded.start == pytest.approx(1.5), "the fallback's t=0 is the audio pushed so far"
    first_fallback = next(f for f in finals(events) if f[0] >= degraded.utterance)
    assert first_fallback == (1, "24000-39999", 1.5, 2.5), "numbered after the primary's one utterance"


async def test_retryable_errors_are_not_a_switch() -> None:
    primary, fallback = ScriptedPrimary(fail_at_s=1.5, retryable=True), RecordingFallback()
    stream = FallbackEngine(primary, fallback).stream(language="en")
    with pytest.raises(STTError, match="scripted outage") as info:
        await run_call(stream, positions(0, 2), end=False)
    assert info.value.retryable
    assert fallback.streams == []
    await stream.aclose()


async def test_without_failure_the_primary_is_all_there_is() -> None:
    primary, fallback = ScriptedPrimary(), RecordingFallback()
    events = await run_call(FallbackEngine(primary, fallback).stream(language="en"), positions(0, 2))
    assert [f[1] for f in finals(events)] == ["0-15999", "16000-31999"]
    assert K.DEGRADED not in [e.kind for e in events] and fallback.streams == []


async def test_aclose_during_the_replay_stops_both_streams() -> None:
    gate = asyncio.Event()  # never set: the replay hangs until closed
    primary, fallback = ScriptedPrimary(fail_at_s=1.5), RecordingFallback(gate)
    stream = FallbackEngine(primary, fallback).stream(language="en")
    consumer, _ = await switch_over(stream, stream.push_audio(positions(0, 1.5)))
    async with asyncio.timeout(5):
        await stream.aclose()
        await consumer
    assert primary.streams[0].closed and fallback.streams[0].closed
