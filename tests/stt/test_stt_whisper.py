"""The embedded Whisper engine on synthesised speech (one model for the whole session).

Assertions are about words and event structure, never exact strings or speed.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from callpilot.server.errors import InvalidArgument
from callpilot.server.stt.base import SpeechEvent, SpeechEventKind, STTStream
from callpilot.server.stt.whisper import WhisperEngine, hotwords_from_hints, whisper_language

pytestmark = pytest.mark.slow
# The engine fixture lives on the session's loop (an engine serves one loop), so its tests do too.
session_loop = pytest.mark.asyncio(loop_scope="session")

K = SpeechEventKind
Say = Callable[..., np.ndarray]
REFUND = "I would like a refund for order seven eight nine oh one"


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(16000 * seconds), dtype=np.float32)


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


async def transcribe(stream: STTStream, audio: np.ndarray, *, chunk: int = 320) -> list[SpeechEvent]:
    """Push 20 ms chunks, yielding to the loop between them (faster than real time), then end input."""
    events: list[SpeechEvent] = []

    async def consume() -> None:
        async for event in stream:
            events.append(event)

    consumer = asyncio.create_task(consume())
    for i in range(0, len(audio), chunk):
        await stream.push_audio(audio[i : i + chunk])
        await asyncio.sleep(0)
    stream.end_input()
    await asyncio.wait_for(consumer, timeout=120)
    return events


@session_loop
async def test_sentence_gives_interims_then_a_final_with_the_words(
    whisper_engine: WhisperEngine, say: Say
) -> None:
    audio = np.concatenate([silence(0.3), say(REFUND), silence(1.0)])
    events = await transcribe(whisper_engine.stream(language="en-US"), audio)
    kinds = [e.kind for e in events]
    assert kinds[0] is K.START_OF_SPEECH and kinds[-1] is K.FINAL
    assert kinds.count(K.FINAL) == 1 and kinds.count(K.END_OF_SPEECH) == 1
    assert K.INTERIM in kinds[: kinds.index(K.FINAL)]
    assert all(e.text for e in events if e.kind is K.INTERIM)
    final = events[-1]
    assert {"refund", "order"} <= words(final.text)
    assert 0.0 < final.confidence <= 1.0
    assert 0.0 <= final.start < 0.5 < final.end
    assert final.end == pytest.approx(0.3 + len(say(REFUND)) / 16000, abs=0.5)
    assert final.input_time > 0 and final.speech_end_time >= final.input_time


@session_loop
async def test_two_utterances_give_two_finals_in_order(whisper_engine: WhisperEngine, say: Say) -> None:
    audio = np.concatenate(
        [
            say("Hello, I am calling about my account."),
            silence(1.0),
            say("Can you check the status of my order please?"),
            silence(0.8),
        ]
    )
    events = await transcribe(whisper_engine.stream(language="en"), audio)
    finals = [e for e in events if e.kind is K.FINAL]
    assert [f.utterance for f in finals] == [0, 1]
    assert finals[0].start < finals[0].end <= finals[1].start < finals[1].end
    assert "account" in words(finals[0].text)
    assert {"status", "order"} <= words(finals[1].text)


@session_loop
async def test_decoding_runs_off_the_event_loop_thread(whisper_engine: WhisperEngine) -> None:
    # Earlier tests decoded through the engine; every decode ran in a pool thread.
    loop_thread = threading.get_ident()
    assert whisper_engine.stats.finals > 0
    assert whisper_engine.stats.decode_threads
    assert loop_thread not in whisper_engine.stats.decode_threads


@session_loop
async def test_end_input_flushes_an_utterance_cut_mid_speech(whisper_engine: WhisperEngine, say: Say) -> None:
    speech = say("Please cancel my subscription and send me a confirmation email.")
    cut = speech[: int(2.2 * 16000)]  # stops mid-sentence, no trailing silence
    events = await transcribe(whisper_engine.stream(language="en"), cut)
    kinds = [e.kind for e in events]
    # An interim already decoding when the input ended may land between END and FINAL.
    assert kinds[0] is K.START_OF_SPEECH and kinds[-1] is K.FINAL
    assert kinds.count(K.END_OF_SPEECH) == 1 and kinds.index(K.END_OF_SPEECH) < len(kinds) - 1
    assert {"cancel", "subscription"} <= words(events[-1].text)
    assert events[-1].end == pytest.approx(2.2, abs=0.05)


@session_loop
async def test_phrase_hints_reach_the_decoder(
    whisper_engine: WhisperEngine, say: Say, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = whisper_engine._load_model()
    seen: list[Any] = []
    original = model.transcribe

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("hotwords"))
        return original(*args, **kwargs)

    monkeypatch.setattr(model, "transcribe", spy)
    stream = whisper_engine.stream(language="en", phrase_hints=["refund", "Zorblax Prime", " refund "])
    audio = np.concatenate([say(REFUND), silence(0.8)])
    events = await transcribe(stream, audio)
    assert seen and all(h == "refund, Zorblax Prime" for h in seen)
    assert "refund" in words(events[-1].text)


def test_synthesised_speech_is_reproducible(speak_uncached: Say, tmp_path: Path) -> None:
    # sox's default random dither made every session's audio differ slightly, enough to flip
    # Whisper on these sentences ("riff on" for "refund") about once in seven sessions.
    first = speak_uncached(REFUND, tmp_path / "a.wav")
    second = speak_uncached(REFUND, tmp_path / "b.wav")
    assert first.size > 16000
    assert np.array_equal(first, second)


FinalKey = tuple[int, float, float, str]


async def finals_of(engine: WhisperEngine, audio: np.ndarray) -> tuple[list[FinalKey], list[float], int]:
    events = await transcribe(engine.stream(language="en"), audio)
    finals = [e for e in events if e.kind is K.FINAL]
    keys = [(e.utterance, e.start, e.end, e.text) for e in finals]
    return keys, [e.confidence for e in finals], sum(e.kind is K.INTERIM for e in events)


@session_loop
async def test_finals_do_not_depend_on_decode_speed(
    whisper_engine: WhisperEngine, say: Say, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same audio in, same FINALs out, whether decodes are quick or slow enough to interleave.

    Slow decodes (what CPU load does) keep an interim in flight when speech ends, so each
    FINAL waits for the worker behind it and the next utterance is endpointed meanwhile;
    none of that may change which audio a FINAL decodes or what it says.
    """
    audio = np.concatenate(
        [
            silence(0.3),
            say(REFUND),
            silence(1.0),
            say("Can you check the status of my order please?"),
            silence(0.8),
        ]
    )
    idle, idle_confidence, _ = await finals_of(whisper_engine, audio)
    assert [key[0] for key in idle] == [0, 1]

    original = whisper_engine._transcribe_sync

    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.25)
        return original(*args, **kwargs)

    monkeypatch.setattr(whisper_engine, "_transcribe_sync", slow)
    stats = whisper_engine.stats
    before = stats.interims + stats.interims_skipped
    loaded, loaded_confidence, _ = await finals_of(whisper_engine, audio)
    # Interims really were competing with the finals: decoded, or skipped by the adaptive policy.
    assert stats.interims + stats.interims_skipped > before
    assert loaded == idle
    assert loaded_confidence == pytest.approx(idle_confidence, abs=1e-3)


def test_language_and_hint_normalisation() -> None:
    assert whisper_language("en-US") == "en"
    assert whisper_language("") == "en"
    assert whisper_language("pt_BR") == "pt"
    with pytest.raises(InvalidArgument) as err:
        whisper_language("xx-YY")
    assert err.value.violations[0].field == "config.language_code"
    assert hotwords_from_hints([]) is None
    assert hotwords_from_hints(["  Acme   Pro ", "acme pro", "Zed"]) == "Acme Pro, Zed"
