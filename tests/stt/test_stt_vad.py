"""Streaming endpointing on real (synthesised) speech."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import pytest
from callpilot.server.stt.vad import Endpointer, SileroVad, SpeechEnd, SpeechStart, VadEvent, VadOptions

Say = Callable[..., np.ndarray]


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(16000 * seconds), dtype=np.float32)


LONG_FLUENT = (
    "so what I have been trying to explain to your colleagues for the last three weeks is that the "
    "package never arrived at my house and nobody seems to know where it went"
)
LONG_WITH_COMMAS = (
    "I called on monday, and again on tuesday, and then on friday, but nobody could tell me "
    "where my parcel was or when it would finally arrive"
)


def run(endpointer: Endpointer, audio: np.ndarray, chunk: int = 320) -> list[VadEvent]:
    events: list[VadEvent] = []
    for i in range(0, len(audio), chunk):
        events.extend(endpointer.push(audio[i : i + chunk]))
    events.extend(endpointer.finish())
    return events


def ends(events: list[VadEvent]) -> list[SpeechEnd]:
    return [e for e in events if isinstance(e, SpeechEnd)]


def test_probabilities_do_not_depend_on_chunking(say: Say) -> None:
    audio = say("Hello there, how are you?")
    whole = SileroVad()(audio)
    streamed = SileroVad()
    parts = [streamed(audio[i : i + 333]) for i in range(0, len(audio), 333)]
    np.testing.assert_allclose(np.concatenate(parts), whole, atol=1e-5)
    assert len(whole) == len(audio) // 512


def test_two_utterances_separated_by_a_second_of_silence(say: Say) -> None:
    first, second = say("Hello, I am calling about my account."), say("Can you check my order please?")
    audio = np.concatenate([silence(0.5), first, silence(1.0), second, silence(1.0)])
    events = run(Endpointer(VadOptions()), audio)
    assert [type(e) for e in events] == [SpeechStart, SpeechEnd, SpeechStart, SpeechEnd]
    a, b = ends(events)
    assert a.reason == b.reason == "silence"
    assert a.end <= b.start  # no overlap
    # The first utterance is where the first sentence is (within VAD + padding slack).
    assert 0.5 * 16000 - 8000 < a.start < 0.5 * 16000 + 4000
    assert abs(b.start / 16000 - (0.5 + len(first) / 16000 + 1.0)) < 0.5
    assert len(a.audio) == a.end - a.start and a.audio.dtype == np.float32


@pytest.mark.parametrize("text", [LONG_FLUENT, LONG_WITH_COMMAS])
def test_long_speech_is_cut_before_the_limit(say: Say, text: str) -> None:
    audio = np.concatenate([say(text, speed=170), silence(1.0)])
    assert len(audio) > 8 * 16000
    limit = 4.0
    pieces = ends(run(Endpointer(VadOptions(max_utterance_s=limit)), audio))
    assert len(pieces) >= 2
    for piece in pieces:
        assert (piece.end - piece.start) / 16000 <= limit
    assert any(p.reason == "max_length" for p in pieces)
    # Consecutive pieces tile the speech without gaps or overlaps.
    for a, b in itertools.pairwise(pieces):
        if a.reason == "max_length":
            assert b.start >= a.end


def test_cut_prefers_a_pause(say: Say) -> None:
    """With commas there are pauses: cuts made at a pause land in silence, not inside a word."""
    audio = say(LONG_WITH_COMMAS, speed=170)
    probs = SileroVad()(audio)
    pieces = ends(run(Endpointer(VadOptions(max_utterance_s=4.0)), audio))
    at_pauses = [p for p in pieces if p.reason == "max_length" and p.speech_end < p.end]
    assert at_pauses
    for cut in at_pauses:
        assert probs[cut.end // 512] < 0.5


def test_fluent_speech_is_hard_cut_at_the_limit(say: Say) -> None:
    audio = say(LONG_FLUENT, speed=170)
    opts = VadOptions(max_utterance_s=3.0, min_pause_ms=2000)  # no pause qualifies
    pieces = ends(run(Endpointer(opts), audio))
    for piece in pieces[:-1]:
        assert piece.reason == "max_length"
        assert piece.end - piece.start <= 3 * 16000


def test_clicks_and_silence_do_not_open_an_utterance() -> None:
    rng = np.random.default_rng(7)
    audio = (rng.standard_normal(16000 * 3) * 0.001).astype(np.float32)
    audio[16000:16040] = 0.8  # a click
    assert run(Endpointer(), audio) == []


def test_end_of_input_closes_open_speech(say: Say) -> None:
    audio = say("I would like a refund for order seven eight nine oh one")
    cut = audio[: int(1.5 * 16000)]
    endpointer = Endpointer()
    events = []
    for i in range(0, len(cut), 320):
        events.extend(endpointer.push(cut[i : i + 320]))
    assert [type(e) for e in events] == [SpeechStart]
    assert endpointer.in_speech and len(endpointer.open_audio()) > 0
    (end,) = endpointer.finish()
    assert isinstance(end, SpeechEnd) and end.reason == "end_of_input"
    assert end.end == len(cut)


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="threshold"):
        VadOptions(threshold=1.5)
    with pytest.raises(ValueError, match="max_utterance_s"):
        VadOptions(max_utterance_s=60)
