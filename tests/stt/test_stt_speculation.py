"""Speculative finals: decoded during a pause, committed at the endpoint, discarded if speech resumes.

The recogniser here is a `SegmentingStream` whose decoder reports the number
of samples it was given, so each FINAL's text says exactly which audio it
came from: a speculative decode of a pause that speech then resumed from
would show up as a FINAL shorter than its utterance.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np
from callpilot.server.stt.base import AudioArray, SpeechEvent, SpeechEventKind
from callpilot.server.stt.streaming import Hypothesis, SegmentingOptions, SegmentingStream
from callpilot.server.stt.vad import VadOptions

K = SpeechEventKind
Say = Callable[..., np.ndarray]


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(16000 * seconds), dtype=np.float32)


def trimmed(audio: np.ndarray) -> np.ndarray:
    """Synthesised speech without its leading and trailing near-silence (so pauses are what we say)."""
    loud = np.nonzero(np.abs(audio) > 0.01)[0]
    return audio[loud[0] : loud[-1] + 1]


class LengthStream(SegmentingStream):
    """Decodes to the sample count; records every final decode it was asked for."""

    def __init__(self, options: SegmentingOptions, *, delay: float = 0.0) -> None:
        super().__init__(options)
        self.delay = delay
        self.final_decodes: list[int] = []
        self.finals_seen: list[str] = []

    async def _decode(self, audio: AudioArray, *, final: bool) -> Hypothesis | None:
        if final:
            self.final_decodes.append(audio.size)
        await asyncio.sleep(self.delay)
        return Hypothesis(str(audio.size), 1.0)

    def _on_final(self, hypothesis: Hypothesis) -> None:
        self.finals_seen.append(hypothesis.text)


async def run(stream: LengthStream, audio: np.ndarray) -> list[SpeechEvent]:
    """Push 20 ms chunks, pacing them at a fraction of real time so pause timing is seen, then end input."""
    events: list[SpeechEvent] = []

    async def consume() -> None:
        async for event in stream:
            events.append(event)

    consumer = asyncio.create_task(consume())
    for i in range(0, len(audio), 320):
        await stream.push_audio(audio[i : i + 320])
        await asyncio.sleep(0.001)
    stream.end_input()
    await asyncio.wait_for(consumer, timeout=60)
    return events


def options(**kw: object) -> SegmentingOptions:
    return SegmentingOptions(VadOptions(min_silence_ms=500), None, 4, 64, **kw)  # type: ignore[arg-type]


def finals(events: list[SpeechEvent]) -> list[SpeechEvent]:
    return [e for e in events if e.kind is K.FINAL]


def expected_samples(event: SpeechEvent) -> int:
    return round((event.end - event.start) * 16000)


async def test_a_pause_then_the_end_commits_the_speculative_final(say: Say) -> None:
    stream = LengthStream(options(speculate_after_ms=200))
    events = await run(
        stream, np.concatenate([silence(0.3), say("Please check my order status."), silence(1.0)])
    )
    (final,) = finals(events)
    assert abs(int(final.text) - expected_samples(final)) <= 16  # the whole utterance, to rounding
    assert stream.speculation_stats.committed == 1
    # Committed, not decoded again: one final decode for the one utterance.
    assert stream.final_decodes == [int(final.text)]
    kinds = [e.kind for e in events]
    assert kinds.index(K.END_OF_SPEECH) < kinds.index(K.FINAL)


async def test_speech_resuming_discards_the_speculation_and_it_is_never_emitted(say: Say) -> None:
    # A 350 ms pause: past the 200 ms speculation point, short of the 500 ms endpoint.
    audio = np.concatenate(
        [
            silence(0.3),
            trimmed(say("My order number is")),
            silence(0.35),
            trimmed(say("four eight two one three.")),
            silence(1.0),
        ]
    )
    stream = LengthStream(options(speculate_after_ms=200), delay=0.05)
    events = await run(stream, audio)
    (final,) = finals(events)  # one utterance, one FINAL: the speculation was not emitted as well
    assert [e.kind for e in events].count(K.END_OF_SPEECH) == 1
    assert abs(int(final.text) - expected_samples(final)) <= 16  # covers both halves of the sentence
    stats = stream.speculation_stats
    assert stats.discarded >= 1 and stats.started == stats.discarded + stats.committed
    # The discarded decode was shorter than the utterance and reached neither the events nor the hook.
    assert min(stream.final_decodes) < int(final.text)
    assert stream.finals_seen == [final.text]


async def test_without_speculation_every_final_is_decoded_at_the_endpoint(say: Say) -> None:
    stream = LengthStream(options(speculate_after_ms=None))
    events = await run(stream, np.concatenate([silence(0.3), say("Thank you for calling."), silence(1.0)]))
    (final,) = finals(events)
    assert stream.speculation_stats.started == 0
    assert stream.final_decodes == [int(final.text)]
