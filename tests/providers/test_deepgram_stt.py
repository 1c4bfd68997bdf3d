"""DeepgramEngine through the real deepgram-sdk against the loopback fake."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import numpy as np
import numpy.typing as npt
import pytest
from callpilot.server.errors import ConfigError
from callpilot.server.stt.base import (
    SpeechEvent,
    SpeechEventKind,
    STTCapabilities,
    STTEngine,
    STTError,
    STTStream,
)
from callpilot.server.stt.deepgram import DeepgramEngine, DeepgramStream
from callpilot.server.stt.fallback import FallbackEngine
from callpilot.server.stt.replay import ReconnectPolicy, float_to_linear16
from providers.fake_deepgram import DeepgramScript, FakeDeepgram, silence, tone_words
from stt.switching import switch_over

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning:websockets.*"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:deepgram.*"),
]

VOCAB = ["my", "order", "number", "is", "seven", "eight", "nine", "refund", "please", "hello", "thanks"]
K = SpeechEventKind


def engine(dg: FakeDeepgram, **kw: object) -> DeepgramEngine:
    policy = ReconnectPolicy(max_attempts=3, initial_backoff=0.05)
    opts: dict[str, object] = {"base_url": dg.url, "reconnect": policy}
    opts.update(kw)
    return DeepgramEngine(dg.script.api_key, **opts)  # type: ignore[arg-type]


async def push(stream: DeepgramStream, audio: npt.NDArray[np.float32], chunk_s: float = 0.04) -> None:
    n = int(chunk_s * 16_000)
    for i in range(0, len(audio), n):
        await stream.push_audio(audio[i : i + n])


async def collect(stream: DeepgramStream) -> list[SpeechEvent]:
    events: list[SpeechEvent] = []
    async with asyncio.timeout(20):
        async for ev in stream:
            events.append(ev)
    return events


def finals(events: Sequence[SpeechEvent]) -> list[str]:
    """Final texts of utterances with words (an utterance of noise has an empty FINAL)."""
    return [e.text for e in events if e.kind is K.FINAL and e.text]


def check_well_formed(events: Sequence[SpeechEvent]) -> None:
    """Per utterance START, INTERIM*, END, FINAL (the embedded engines' order);
    utterances numbered 0, 1, 2... in order."""
    expect_next = 0
    state = "idle"
    for ev in events:
        if ev.kind is K.START_OF_SPEECH:
            assert state == "idle" and ev.utterance == expect_next
            state = "open"
        elif ev.kind is K.INTERIM:
            assert state == "open" and ev.utterance == expect_next
        elif ev.kind is K.END_OF_SPEECH:
            assert state == "open" and ev.utterance == expect_next
            state = "ended"
        else:
            assert state == "ended" and ev.utterance == expect_next
            state = "idle"
            expect_next += 1
    assert state == "idle"


async def test_interim_and_final_parts_join_into_one_utterance() -> None:
    script = DeepgramScript(VOCAB, final_every_words=3)
    audio = np.concatenate(
        [
            silence(0.3),
            tone_words(["my", "order", "number", "is", "seven"], VOCAB),
            silence(1.2),
            tone_words(["refund", "please"], VOCAB),
            silence(1.2),
        ]
    )
    async with FakeDeepgram(script) as dg:
        eng = engine(dg, endpointing_ms=300)
        stream = eng.stream(language="en-US", phrase_hints=["Callpilot", "order number"])
        consumer = asyncio.create_task(collect(stream))
        await push(stream, audio)
        stream.end_input()
        events = await consumer
        await eng.aclose()
    check_well_formed(events)
    assert finals(events) == ["my order number is seven", "refund please"]
    first = [e for e in events if e.utterance == 0]
    kinds = [e.kind for e in first]
    assert kinds[0] is K.START_OF_SPEECH and kinds[-2:] == [K.END_OF_SPEECH, K.FINAL]
    interims = [e.text for e in first if e.kind is K.INTERIM]
    # Interims carry the utterance so far (the finalised part "my order number" stays in
    # front); queued interims coalesce, so which ones survive depends on the consumer.
    assert interims and all("my order number is seven".startswith(t) for t in interims)
    sent = [m for m in dg.connections[0].sent if m["type"] == "Results"]
    part = next(m for m in sent if m["is_final"] and m["channel"]["alternatives"][0]["transcript"])
    assert part["channel"]["alternatives"][0]["transcript"] == "my order number" and not part["speech_final"]
    assert any(not m["is_final"] for m in sent)
    final0 = next(e for e in first if e.kind is K.FINAL)
    assert final0.start == pytest.approx(0.3, abs=0.03)
    assert final0.end == pytest.approx(0.3 + 5 * 0.24 + 4 * 0.06, abs=0.03)
    assert final0.confidence == pytest.approx(0.9)
    assert final0.speech_end_time > 0 and final0.input_time > 0
    # The request as Deepgram sees it.
    q = dg.connections[0].query
    assert q["model"] == ["nova-3"] and q["language"] == ["en-US"]
    assert q["encoding"] == ["linear16"] and q["sample_rate"] == ["16000"]
    assert q["interim_results"] == ["true"] and q["smart_format"] == ["true"] and q["vad_events"] == ["true"]
    assert q["endpointing"] == ["300"] and q["utterance_end_ms"] == ["1000"]
    assert q["keyterm"] == ["Callpilot", "order number"]
    assert dg.connections[0].client_messages[-2:] == ["Finalize", "CloseStream"]


async def test_utterance_end_closes_an_utterance_without_speech_final() -> None:
    script = DeepgramScript(VOCAB, speech_final=False)
    audio = np.concatenate(
        [tone_words(["hello"], VOCAB), silence(1.4), tone_words(["nine", "eight"], VOCAB), silence(1.4)]
    )
    async with FakeDeepgram(script) as dg:
        eng = engine(dg)
        stream = eng.stream(language="en")
        consumer = asyncio.create_task(collect(stream))
        await push(stream, audio)
        stream.end_input()
        events = await consumer
    check_well_formed(events)
    assert finals(events) == ["hello", "nine eight"]
    assert any(m["type"] == "UtteranceEnd" for m in dg.connections[0].sent)
    assert not any(m.get("speech_final") for m in dg.connections[0].sent)


async def test_keepalive_holds_the_socket_through_silence() -> None:
    script = DeepgramScript(VOCAB, idle_timeout=0.6)
    async with FakeDeepgram(script) as dg:
        eng = engine(dg, keepalive_interval=0.15)
        stream = eng.stream(language="en")
        consumer = asyncio.create_task(collect(stream))
        await push(stream, np.concatenate([tone_words(["hello"], VOCAB), silence(0.6)]))
        await asyncio.sleep(1.5)  # a hold: no audio at all, longer than the server's idle limit
        await push(stream, np.concatenate([tone_words(["thanks"], VOCAB), silence(0.6)]))
        stream.end_input()
        events = await consumer
    assert finals(events) == ["hello", "thanks"]
    assert len(dg.connections) == 1, "the socket must survive the hold"
    assert dg.connections[0].count("KeepAlive") >= 2
    assert dg.connections[0].close_code == 1000


async def test_without_keepalive_the_idle_socket_is_replaced_transparently() -> None:
    script = DeepgramScript(VOCAB, idle_timeout=0.4)
    async with FakeDeepgram(script) as dg:
        eng = engine(dg, keepalive_interval=9.0)
        stream = eng.stream(language="en")
        consumer = asyncio.create_task(collect(stream))
        await push(stream, np.concatenate([tone_words(["hello"], VOCAB), silence(0.6)]))
        await asyncio.sleep(1.0)
        await push(stream, np.concatenate([tone_words(["thanks"], VOCAB), silence(0.6)]))
        stream.end_input()
        events = await consumer
    assert dg.connections[0].close_code == 1011
    assert len(dg.connections) >= 2
    assert finals(events) == ["hello", "thanks"]


@pytest.mark.parametrize("mode", ["abort", "1011"])
async def test_drop_mid_utterance_replays_without_duplicates(mode: str) -> None:
    words2 = ["my", "order", "number", "is", "seven", "eight", "nine"]
    audio = np.concatenate(
        [
            silence(0.2),
            tone_words(["hello"], VOCAB),
            silence(0.8),
            tone_words(words2, VOCAB),
            silence(0.8),
            tone_words(["thanks"], VOCAB),
            silence(0.8),
        ]
    )
    # Connection 0 drops 2.2 s in: after "hello" and the part "my order", inside "number".
    script = DeepgramScript(VOCAB, final_every_words=2, drop_after={0: 2.2}, drop_mode=mode)
    async with FakeDeepgram(script) as dg:
        eng = engine(dg)
        stream = eng.stream(language="en")
        consumer = asyncio.create_task(collect(stream))
        await push(stream, audio)
        stream.end_input()
        events = await consumer
    check_well_formed(events)
    assert finals(events) == ["hello", " ".join(words2), "thanks"]
    assert len(dg.connections) == 2
    first, second = dg.connections
    # The second socket got exactly the audio no final covered: from the end of the
    # last final the client received, to the end.
    total = len(audio) / 16_000
    assert second.audio_seconds < total - 1.0
    assert first.audio_seconds + second.audio_seconds >= total
    offsets = [(e.start, e.end) for e in events if e.kind is K.FINAL]
    assert offsets == sorted(offsets)
    # Offsets stay on the call's timeline across the reconnect.
    thanks = [e for e in events if e.kind is K.FINAL][-1]
    expected = 0.2 + 0.24 + 0.8 + 7 * 0.24 + 6 * 0.06 + 0.8
    assert thanks.start == pytest.approx(expected, abs=0.03)


async def test_end_input_finalises_speech_still_in_progress() -> None:
    script = DeepgramScript(VOCAB)
    async with FakeDeepgram(script) as dg:
        eng = engine(dg)
        stream = eng.stream(language="en")
        consumer = asyncio.create_task(collect(stream))
        await push(stream, np.concatenate([silence(0.2), tone_words(["refund", "please"], VOCAB)]))
        stream.end_input()  # no trailing silence: only Finalize/CloseStream produce the final
        events = await consumer
    assert finals(events) == ["refund please"]
    conn = dg.connections[0]
    assert conn.client_messages[-2:] == ["Finalize", "CloseStream"]
    assert conn.sent[-1]["type"] == "Metadata"
    assert any(m.get("from_finalize") for m in conn.sent)
    assert events[-1].kind is K.FINAL


async def test_flush_forces_the_open_utterance_final() -> None:
    script = DeepgramScript(VOCAB)
    async with FakeDeepgram(script) as dg:
        eng = engine(dg)
        stream = eng.stream(language="en")
        consumer = asyncio.create_task(collect(stream))
        await push(stream, tone_words(["seven", "eight"], VOCAB))
        await stream.flush()
        await push(stream, np.concatenate([silence(0.4), tone_words(["nine"], VOCAB), silence(0.6)]))
        stream.end_input()
        events = await consumer
    check_well_formed(events)
    assert finals(events) == ["seven eight", "nine"]
    assert "Finalize" in dg.connections[0].client_messages[:-2]


async def test_persistent_failure_raises_non_retryable_after_emitting_finals() -> None:
    script = DeepgramScript(VOCAB, drop_after={0: 1.0}, refuse_from=1)
    audio = np.concatenate([tone_words(["hello"], VOCAB), silence(0.6), tone_words(["seven", "nine"], VOCAB)])
    async with FakeDeepgram(script) as dg:
        eng = engine(dg, reconnect=ReconnectPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.05))
        stream = eng.stream(language="en")
        events: list[SpeechEvent] = []
        await push(stream, audio)
        with pytest.raises(STTError) as info:
            async with asyncio.timeout(20):
                async for ev in stream:
                    events.append(ev)
        assert info.value.retryable is False
        assert dg.refused == 3
        assert finals(events) == ["hello"]
        # What the session hands to the fallback engine: the audio after "hello".
        offset, rest = stream.unfinalised_audio()
        assert 0.24 <= offset <= 0.9
        assert len(rest) / 16_000 == pytest.approx(len(audio) / 16_000 - offset, abs=0.03)
        await stream.aclose()


async def test_bad_api_key_fails_at_once() -> None:
    async with FakeDeepgram(DeepgramScript(VOCAB)) as dg:
        eng = DeepgramEngine("wrong", base_url=dg.url)
        stream = eng.stream(language="en")
        with pytest.raises(STTError) as info:
            async with asyncio.timeout(10):
                async for _ in stream:
                    pass
        assert info.value.retryable is False
        assert "401" in str(info.value)
        assert dg.connections == []


async def test_audio_is_sent_as_linear16() -> None:
    rng = np.random.default_rng(1)
    audio = (rng.uniform(-1.2, 1.2, 8000)).astype(np.float32)
    async with FakeDeepgram(DeepgramScript(VOCAB)) as dg:
        eng = engine(dg)
        stream = eng.stream(language="en")
        consumer = asyncio.create_task(collect(stream))
        await push(stream, audio, chunk_s=0.013)
        stream.end_input()
        await consumer
    expected = (np.clip(audio, -1, 1) * 32767).round().astype("<i2").tobytes()
    assert bytes(dg.connections[0].audio) == expected == float_to_linear16(audio)


def test_configuration_errors_are_clear() -> None:
    with pytest.raises(ConfigError, match="API key"):
        DeepgramEngine("")
    with pytest.raises(ConfigError, match="utterance_end_ms"):
        DeepgramEngine("k", utterance_end_ms=500)
    with pytest.raises(ConfigError, match="base URL"):
        DeepgramEngine("k", base_url="ftp://example")


async def test_warm_up_checks_the_key_at_start_up() -> None:
    async with FakeDeepgram(DeepgramScript(VOCAB)) as dg:
        await engine(dg).warm_up()
        assert dg.connections[0].client_messages == ["CloseStream"]
        with pytest.raises(ConfigError, match="HTTP 401"):
            await DeepgramEngine("wrong", base_url=dg.url).warm_up()
    # Unreachable is not fatal at start-up: streams reconnect on their own.
    await DeepgramEngine("k", base_url=dg.url, connect_timeout=1.0).warm_up()


async def test_engine_aclose_stops_open_streams() -> None:
    async with FakeDeepgram(DeepgramScript(VOCAB)) as dg:
        eng = engine(dg)
        stream = eng.stream(language="en")
        await push(stream, tone_words(["hello"], VOCAB))
        await eng.aclose()
        async with asyncio.timeout(5):
            events = [ev async for ev in stream]
    assert all(e.kind is not K.FINAL or e.text in ("", "hello") for e in events)


class _Tape(STTStream):
    """A fallback that records what it is given and transcribes it as one FINAL at the end."""

    def __init__(self) -> None:
        self.audio: list[npt.NDArray[np.float32]] = []
        self.done = asyncio.Event()

    async def push_audio(self, pcm: npt.NDArray[np.float32]) -> None:
        self.audio.append(pcm)

    async def flush(self) -> None:
        pass

    def end_input(self) -> None:
        self.done.set()

    async def _events(self) -> AsyncIterator[SpeechEvent]:
        await self.done.wait()
        seconds = sum(len(a) for a in self.audio) / 16_000
        yield SpeechEvent(K.FINAL, 0, text=f"{seconds:.2f}s", start=0.0, end=seconds)

    def __aiter__(self) -> AsyncIterator[SpeechEvent]:
        return self._events()

    async def aclose(self) -> None:
        self.done.set()


class _TapeEngine(STTEngine):
    capabilities = STTCapabilities(streaming=True, interim_results=False)

    def __init__(self) -> None:
        self.streams: list[_Tape] = []

    def stream(self, *, language: str, phrase_hints: Sequence[str] = ()) -> _Tape:
        self.streams.append(_Tape())
        return self.streams[-1]


async def test_a_persistent_outage_hands_the_unfinalised_audio_to_the_fallback_engine() -> None:
    """Deepgram's ledger through FallbackEngine: the fallback gets exactly the audio after the last final."""
    script = DeepgramScript(VOCAB, drop_after={0: 1.0}, refuse_from=1)
    audio = np.concatenate([tone_words(["hello"], VOCAB), silence(0.6), tone_words(["seven", "nine"], VOCAB)])
    tape = _TapeEngine()
    async with FakeDeepgram(script) as dg:
        policy = ReconnectPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.05)
        stream = FallbackEngine(engine(dg, reconnect=policy), tape).stream(language="en")
        consumer, events = await switch_over(stream, push(stream, audio))  # type: ignore[arg-type]
        stream.end_input()
        async with asyncio.timeout(20):
            await consumer
    degraded = [e for e in events if e.kind is K.DEGRADED]
    assert len(degraded) == 1 and "Deepgram unreachable after 3 attempts" in degraded[0].text
    assert finals(events)[0] == "hello"
    before = events[: events.index(degraded[0])]
    last = events[-1]
    assert last.kind is K.FINAL and last.utterance == max(e.utterance for e in before) + 1
    assert last.start == pytest.approx(degraded[0].start) and 0.24 <= last.start <= 0.9
    assert last.end == pytest.approx(len(audio) / 16_000, abs=0.03), "the replay and nothing else"
