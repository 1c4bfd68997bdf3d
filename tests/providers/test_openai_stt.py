"""OpenAITranscriptionEngine through the real openai SDK against the loopback fake,
with real speech (espeak-ng) endpointed by the real Silero VAD."""

from __future__ import annotations

import asyncio
import math
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from callpilot.server.stt.base import AudioArray, SpeechEvent, SpeechEventKind, STTError
from callpilot.server.stt.openai_stt import OpenAITranscriptionEngine, OpenAITranscriptionStream
from callpilot.server.stt.streaming import Hypothesis
from callpilot.server.stt.vad import VadOptions
from providers.fake_openai import Error, FakeOpenAI, Transcript, TranscriptionReply
from support import synth

K = SpeechEventKind
PHRASES = ["I would like a refund for my order.", "The order number is seven eight nine oh one."]


def read_wav(path: Path) -> npt.NDArray[np.float32]:
    with wave.open(str(path), "rb") as wav:
        assert wav.getframerate() == 16_000 and wav.getnchannels() == 1
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float32) / 32768.0


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> tuple[npt.NDArray[np.float32], list[float]]:
    """Two spoken phrases with a second of silence around each; and their lengths."""
    tmp = tmp_path_factory.mktemp("speech")
    parts = [read_wav(synth(text, tmp / f"p{i}.wav")) for i, text in enumerate(PHRASES)]
    gap = np.zeros(16_000, dtype=np.float32)
    audio = np.concatenate([gap, parts[0], gap, parts[1], gap]).astype(np.float32)
    return audio, [len(p) / 16_000 for p in parts]


_MADE: list[OpenAITranscriptionEngine] = []


@pytest.fixture(autouse=True)
async def _close_engines() -> AsyncIterator[None]:
    """Every engine a test makes has its HTTP client closed at teardown."""
    yield
    while _MADE:
        await _MADE.pop().aclose()


def make(oa: FakeOpenAI, api_key: str = "sk-test", **kw: Any) -> OpenAITranscriptionEngine:
    engine = OpenAITranscriptionEngine(api_key, base_url=oa.base_url, **kw)
    _MADE.append(engine)
    return engine


async def run(stream: OpenAITranscriptionStream, audio: AudioArray) -> list[SpeechEvent]:
    events: list[SpeechEvent] = []

    async def consume() -> None:
        async for ev in stream:
            events.append(ev)

    async with asyncio.timeout(60):
        task = asyncio.create_task(consume())
        for i in range(0, len(audio), 320):
            await stream.push_audio(audio[i : i + 320])
        stream.end_input()
        await task
    return events


async def test_one_upload_and_final_per_utterance(speech: tuple[AudioArray, list[float]]) -> None:
    audio, lengths = speech
    replies = [Transcript("I'd like a refund for my order."), Transcript("The order number is 78901.")]
    async with FakeOpenAI(transcriptions=replies) as oa:
        engine = make(oa, max_retries=0)
        stream = engine.stream(language="en-US", phrase_hints=["Callpilot", "78901"])
        events = await run(stream, audio)
    finals = [e for e in events if e.kind is K.FINAL]
    assert [e.text for e in finals] == [r.text for r in replies]
    assert [e.kind for e in events if e.utterance == 0] == [K.START_OF_SPEECH, K.END_OF_SPEECH, K.FINAL]
    assert not any(e.kind is K.INTERIM for e in events), "no interims unless configured"
    # The uploads are the utterances the VAD found, as 16 kHz mono 16-bit WAVs.
    reqs = oa.log.transcriptions
    assert len(reqs) == 2
    for req, length in zip(reqs, lengths, strict=True):
        assert (req.wav_rate, req.wav_channels, req.wav_width) == (16_000, 1, 2)
        assert req.content_type == "audio/wav" and req.filename.endswith(".wav")
        assert abs(req.wav_seconds - length) < 0.8
        assert req.model == "gpt-4o-transcribe" and req.language == "en"
        assert req.prompt == "Vocabulary: Callpilot, 78901."
        assert req.include == ["logprobs"]
    assert finals[0].confidence == pytest.approx(math.exp(-0.05))
    assert finals[0].end <= finals[1].start
    assert oa.log.auth[0] == "Bearer sk-test"


async def test_whisper_model_and_interims_from_a_local_decoder(
    speech: tuple[AudioArray, list[float]],
) -> None:
    class LocalDecoder:
        calls = 0

        async def transcribe(
            self, audio: AudioArray, *, language: str = "en", hotwords: str | None = None, final: bool = True
        ) -> Hypothesis | None:
            assert not final and language == "en"
            self.calls += 1
            return Hypothesis("(local interim)", 0.5)

        def has_idle_worker(self) -> bool:
            return True

    audio, _ = speech
    local = LocalDecoder()
    async with FakeOpenAI(transcriptions=[Transcript("one"), Transcript("two")]) as oa:
        engine = make(oa, model="whisper-1", interim_decoder=local, interim_interval=0.3)
        assert engine.capabilities.interim_results
        events = await run(engine.stream(language="en"), audio)
    assert [e.text for e in events if e.kind is K.FINAL] == ["one", "two"]
    assert local.calls >= 1
    assert {e.text for e in events if e.kind is K.INTERIM} == {"(local interim)"}
    assert oa.log.transcriptions[0].include == [] and oa.log.transcriptions[0].model == "whisper-1"


async def test_transient_errors_are_retried_by_the_sdk(speech: tuple[AudioArray, list[float]]) -> None:
    audio, _ = speech
    script: list[TranscriptionReply] = [Error(503, "overloaded"), Transcript("one"), Transcript("two")]
    async with FakeOpenAI(transcriptions=script) as oa:
        engine = make(oa, max_retries=1)
        events = await run(engine.stream(language="en"), audio)
    assert [e.text for e in events if e.kind is K.FINAL] == ["one", "two"]
    assert len(oa.log.transcriptions) == 3


async def test_a_failed_utterance_is_skipped_and_persistent_failure_raises(
    speech: tuple[AudioArray, list[float]],
) -> None:
    audio, _ = speech
    async with FakeOpenAI(transcriptions=[Error(500), Transcript("two")]) as oa:
        engine = make(oa, max_retries=0)
        events = await run(engine.stream(language="en"), audio)
    assert [e.text for e in events if e.kind is K.FINAL] == ["", "two"]

    async with FakeOpenAI(transcriptions=[Error(500), Error(502)]) as oa:
        engine = make(oa, max_retries=0, max_consecutive_failures=2)
        with pytest.raises(STTError) as info:
            await run(engine.stream(language="en"), audio)
    assert info.value.retryable is False


async def test_a_rejected_key_fails_the_stream(speech: tuple[AudioArray, list[float]]) -> None:
    audio, _ = speech
    async with FakeOpenAI(transcriptions=[Transcript("never")]) as oa:
        engine = make(oa, "sk-wrong", vad=VadOptions(min_silence_ms=300), max_retries=0)
        with pytest.raises(STTError, match="401") as info:
            await run(engine.stream(language="en"), audio)
    assert info.value.retryable is False
