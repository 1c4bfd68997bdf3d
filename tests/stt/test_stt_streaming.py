"""The shared stream machinery: queue policies, and the null engine's events on real speech."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np
import pytest
from callpilot.server.stt.base import SpeechEvent, SpeechEventKind, STTError, STTStream
from callpilot.server.stt.null import NULL_TEXT, NullEngine
from callpilot.server.stt.queue import EventQueue

K = SpeechEventKind
Say = Callable[..., np.ndarray]


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(16000 * seconds), dtype=np.float32)


async def transcribe(stream: STTStream, audio: np.ndarray, *, chunk: int = 320) -> list[SpeechEvent]:
    """Push `audio` in 20 ms chunks (yielding to the loop between them), end input, collect events."""
    events: list[SpeechEvent] = []

    async def consume() -> None:
        async for event in stream:
            events.append(event)

    consumer = asyncio.create_task(consume())
    for i in range(0, len(audio), chunk):
        await stream.push_audio(audio[i : i + chunk])
        await asyncio.sleep(0)
    stream.end_input()
    await asyncio.wait_for(consumer, timeout=60)
    return events


def ev(kind: SpeechEventKind, utterance: int, text: str = "") -> SpeechEvent:
    return SpeechEvent(kind=kind, utterance=utterance, text=text)


async def test_interims_coalesce_and_durable_events_wait() -> None:
    queue = EventQueue(maxsize=3)
    await queue.put(ev(K.START_OF_SPEECH, 0))
    assert queue.put_interim(ev(K.INTERIM, 0, "a"))
    assert queue.put_interim(ev(K.INTERIM, 0, "a b"))  # replaces the undelivered "a"
    assert len(queue) == 2 and queue.interims_coalesced == 1
    await queue.put(ev(K.END_OF_SPEECH, 0))
    assert not queue.put_interim(ev(K.INTERIM, 1, "x"))  # full, nothing to replace: dropped
    assert queue.interims_dropped == 1

    blocked = asyncio.create_task(queue.put(ev(K.FINAL, 0, "a b c")))
    await asyncio.sleep(0.01)
    assert not blocked.done()  # a FINAL is never dropped: the producer waits
    got = [await queue.get() for _ in range(3)]
    await asyncio.wait_for(blocked, 1)
    got.append(await queue.get())
    assert [(e.kind, e.text) for e in got if e is not None] == [
        (K.START_OF_SPEECH, ""),
        (K.INTERIM, "a b"),
        (K.END_OF_SPEECH, ""),
        (K.FINAL, "a b c"),
    ]
    queue.close()
    assert await queue.get() is None


async def test_failure_is_raised_after_queued_events() -> None:
    queue = EventQueue(maxsize=4)
    await queue.put(ev(K.FINAL, 0, "ok"))
    queue.fail(STTError("boom"))
    first = await queue.get()
    assert first is not None and first.text == "ok"
    with pytest.raises(STTError, match="boom"):
        await queue.get()


async def test_null_engine_emits_the_event_sequence(say: Say) -> None:
    engine = NullEngine(interim_interval=0.5)
    await engine.warm_up()
    audio = np.concatenate(
        [
            silence(0.3),
            say("Hello, I am calling about my account."),
            silence(1.0),
            say("Can you check the status of my order please?"),
            silence(0.8),
        ]
    )
    events = await transcribe(engine.stream(language="en"), audio)
    finals = [e for e in events if e.kind is K.FINAL]
    assert [f.text for f in finals] == [NULL_TEXT, NULL_TEXT]
    assert [f.utterance for f in finals] == [0, 1]
    for utt in (0, 1):
        kinds = [e.kind for e in events if e.utterance == utt]
        assert kinds[0] is K.START_OF_SPEECH
        assert K.INTERIM in kinds
        assert kinds[-2:] == [K.END_OF_SPEECH, K.FINAL]
    assert finals[0].end <= finals[1].start
    assert 0.0 < finals[0].start < 0.5
    assert finals[0].speech_end_time >= finals[0].input_time > 0


async def test_end_input_without_speech_just_ends() -> None:
    stream = NullEngine().stream(language="en")
    assert await transcribe(stream, silence(1.0)) == []


async def test_aclose_stops_at_once(say: Say) -> None:
    stream = NullEngine().stream(language="en")
    audio = say("I would like a refund for order seven eight nine oh one")
    for i in range(0, len(audio) // 2, 320):
        await stream.push_audio(audio[i : i + 320])
    await stream.aclose()
    assert [e async for e in stream] == []
    with pytest.raises(STTError):
        await stream.push_audio(audio[:320])


async def test_flush_forces_a_final(say: Say) -> None:
    stream = NullEngine(interim_interval=None).stream(language="en")
    audio = say("I would like a refund for order seven eight nine oh one")
    events: list[SpeechEvent] = []

    async def consume() -> None:
        async for event in stream:
            events.append(event)

    consumer = asyncio.create_task(consume())
    for i in range(0, 16000, 320):
        await stream.push_audio(audio[i : i + 320])
    await stream.flush()
    stream.end_input()
    await asyncio.wait_for(consumer, 10)
    assert [e.kind for e in events] == [K.START_OF_SPEECH, K.END_OF_SPEECH, K.FINAL]
    assert events[-1].end == pytest.approx(1.0)


async def test_aclose_releases_a_producer_blocked_on_back_pressure(say: Say) -> None:
    """Nobody reads the events: the producer blocks on the bounded queue until aclose."""
    stream = NullEngine(interim_interval=None, max_events=1).stream(language="en")
    audio = np.concatenate([say("Hello there."), silence(1.0), say("Goodbye now."), silence(1.0)])

    async def produce() -> None:
        for i in range(0, len(audio), 320):
            await stream.push_audio(audio[i : i + 320])

    producer = asyncio.create_task(produce())
    await asyncio.sleep(0.2)
    assert not producer.done()  # START, END... did not fit: the producer waits, nothing is dropped
    await stream.aclose()
    with pytest.raises(STTError):  # woken up, and told the stream is closed
        await asyncio.wait_for(producer, 5)
