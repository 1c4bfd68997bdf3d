"""Real recorded speech through a real server: live finals match the offline decode.

Uses the human recordings of Debian's pocketsphinx-testdata (see
`benchmarks.speech_recordings`); skipped with the install command when the
package is missing. One `callpilot serve` with the default (embedded
Whisper base) configuration serves the module.

Tolerance: the streamed finals may differ from the offline whole-file
decode of the same recording by at most one word (after normalising case,
punctuation and number formatting). The benchmark
(`tests/benchmarks/speech_accuracy.py`) reports the exact WER difference.
"""

from __future__ import annotations

import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from benchmarks.speech_recordings import INSTALL_HINT, available, librivox, normalise, tidigits
from callpilot.client import AsyncCallpilot, WavFile
from callpilot.v1 import events_pb2
from support import ServerProcess, synth

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not available(), reason=f"no real recordings: {INSTALL_HINT}"),
]
RATE = 16000


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), dtype=np.float32)


def write_wav(audio: np.ndarray, path: Path) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes((np.clip(audio, -1, 1) * 32767).round().astype("<i2").tobytes())
    return path


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as wav:
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float32) / 32768


def edit_distance(a: list[str], b: list[str]) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, y in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y))
        prev = cur
    return prev[-1]


@pytest.fixture(scope="module")
def speech_server(tmp_path_factory: pytest.TempPathFactory, artifacts: Path) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("speech-server")
    proc = ServerProcess({"CALLPILOT_DATA_DIR": str(data)}, artifacts / "server-real-speech.log").start()
    yield proc
    proc.stop()


async def stream(server: ServerProcess, wav: Path) -> list[events_pb2.CallEvent]:
    async with AsyncCallpilot(server.address) as cp, cp.stream_call(WavFile(wav, realtime=True)) as call:
        return [event async for event in call]


def offline(audio: np.ndarray, models: Path) -> str:
    from callpilot.server.stt.model import ensure_whisper_base
    from faster_whisper import WhisperModel

    model = WhisperModel(
        str(ensure_whisper_base(models)),
        device="cpu",
        compute_type="int8",
        cpu_threads=2,
        local_files_only=True,
    )
    segments, _ = model.transcribe(audio, language="en", beam_size=5, vad_filter=False)
    return " ".join(s.text.strip() for s in segments)


async def test_a_real_recording_streamed_gives_the_offline_words(
    speech_server: ServerProcess, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    rec = next(r for r in librivox() if r.name.endswith("0870"))  # 7 s, the longest sentence
    audio = np.concatenate([rec.audio, silence(1.5)])  # the same file is streamed and decoded offline
    events = await stream(speech_server, write_wav(audio, tmp_path / "r.wav"))
    finals = [e.transcript.text for e in events if e.HasField("transcript") and e.transcript.is_final]
    live = normalise(" ".join(finals))
    reference = normalise(offline(audio, tmp_path_factory.getbasetemp() / "models"))
    assert len(reference) >= 15
    assert edit_distance(reference, live) <= 1, (reference, live)


async def test_a_real_spoken_digit_string_becomes_the_order_number(
    speech_server: ServerProcess, tmp_path: Path
) -> None:
    cue = read_wav(synth("My order number is", tmp_path / "cue.wav"))
    digits = tidigits()[0]  # a man saying "two nine three four zero"
    audio = np.concatenate([silence(0.3), cue, silence(0.2), digits.audio, silence(1.5)])
    events = await stream(speech_server, write_wav(audio, tmp_path / "order.wav"))
    orders = {
        entity.value
        for e in events
        if e.HasField("context")
        for entity in e.context.entities
        if entity.type == events_pb2.ENTITY_TYPE_ORDER_NUMBER
    }
    assert digits.digits in orders, [e.transcript.text for e in events if e.HasField("transcript")]
