"""What the Whisper decoder is told: call context as hotwords, recent finals as the prompt.

The model's `transcribe` is wrapped to record its keyword arguments, then
called through as usual, so these tests check what reaches the real decoder.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from callpilot.server.stt.base import SpeechEvent, SpeechEventKind, STTStream
from callpilot.server.stt.whisper import WhisperEngine, is_hallucination

pytestmark = pytest.mark.slow
session_loop = pytest.mark.asyncio(loop_scope="session")

K = SpeechEventKind
Say = Callable[..., np.ndarray]


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(16000 * seconds), dtype=np.float32)


@pytest.fixture
def decoder_calls(
    whisper_engine: WhisperEngine, monkeypatch: pytest.MonkeyPatch
) -> Iterator[list[dict[str, Any]]]:
    model = whisper_engine._load_model()
    seen: list[dict[str, Any]] = []
    original = model.transcribe

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(model, "transcribe", spy)
    yield seen


async def transcribe(stream: STTStream, audio: np.ndarray) -> list[SpeechEvent]:
    events: list[SpeechEvent] = []

    async def consume() -> None:
        async for event in stream:
            events.append(event)

    consumer = asyncio.create_task(consume())
    for i in range(0, len(audio), 320):
        await stream.push_audio(audio[i : i + 320])
        await asyncio.sleep(0)
    stream.end_input()
    await asyncio.wait_for(consumer, timeout=120)
    return events


@session_loop
async def test_the_customers_name_and_orders_reach_the_decoder(
    whisper_engine: WhisperEngine, say: Say, decoder_calls: list[dict[str, Any]]
) -> None:
    stream = whisper_engine.stream(language="en", phrase_hints=["refund"])
    # What the session does once the directory identified the customer.
    stream.update_context(names=["Siobhan Kowalczyk"], numbers=["48213", "50917"])
    await transcribe(stream, np.concatenate([say("Hi, this is Siobhan Kowalczyk."), silence(0.8)]))
    finals = [c for c in decoder_calls if c.get("beam_size", 1) > 1]
    assert finals, "no final decode reached the model"
    for call in decoder_calls:
        assert call["hotwords"] == "Siobhan Kowalczyk, 48213, 50917, refund"


@session_loop
async def test_recent_finals_become_the_prompt_of_the_next_decode(
    whisper_engine: WhisperEngine, say: Say, decoder_calls: list[dict[str, Any]]
) -> None:
    stream = whisper_engine.stream(language="en")
    audio = np.concatenate(
        [say("I ordered a pair of headphones."), silence(0.9), say("They arrived broken."), silence(0.9)]
    )
    events = await transcribe(stream, audio)
    finals = [e for e in events if e.kind is K.FINAL]
    assert len(finals) == 2 and finals[0].text
    final_calls = [c for c in decoder_calls if c.get("beam_size", 1) > 1]
    assert final_calls[0]["initial_prompt"] is None
    # The second utterance's final is decoded with the first final as context.
    assert final_calls[-1]["initial_prompt"] == finals[0].text


@dataclass
class _Segment:
    compression_ratio: float
    no_speech_prob: float
    avg_logprob: float


def test_hallucination_signals_are_whispers_own() -> None:
    assert not is_hallucination(_Segment(1.6, 0.02, -0.2))  # ordinary speech
    assert is_hallucination(_Segment(3.1, 0.01, -0.3))  # a repetition loop
    assert is_hallucination(_Segment(1.2, 0.7, -0.95))  # "Thank you." on a breath
    assert not is_hallucination(_Segment(1.2, 0.7, -0.3))  # unlikely speech, confidently decoded


@session_loop
async def test_interims_give_way_to_finals_when_the_worker_is_busy(
    whisper_engine: WhisperEngine, say: Say
) -> None:
    audio = say("Please cancel my subscription and send me a confirmation email.")
    skipped_before = whisper_engine.stats.interims_skipped
    final = asyncio.create_task(whisper_engine.transcribe(audio, final=True))
    await asyncio.sleep(0)  # the final takes the only worker
    # The worker is decoding a final: an interim is skipped (None), never queued ahead of it...
    assert await whisper_engine.transcribe(audio, final=False) is None
    # ...while a second final waits its turn and is decoded.
    second = await whisper_engine.transcribe(audio, final=True)
    first = await final
    assert first is not None and second is not None and "subscription" in second.text.lower()
    assert whisper_engine.stats.interims_skipped >= skipped_before + 1
