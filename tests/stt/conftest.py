"""Fixtures for the speech-to-text tests: synthesised speech and one shared Whisper engine.

Speech must be bit-for-bit reproducible (see `support.synth`, which turns off
sox's randomly seeded dither): Whisper base is close to the edge on a few of
these sentences, so slightly different noise each session used to flip words
about one session in seven, which looked like load-dependent flakiness.
"""

from __future__ import annotations

import wave
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio
from callpilot.server.stt.model import ensure_whisper_base
from callpilot.server.stt.whisper import WhisperEngine
from support import synth


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as wav:
        assert wav.getframerate() == 16000 and wav.getnchannels() == 1
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float32) / 32768


def speak(text: str, path: Path, *, speed: int = 150) -> np.ndarray:
    """`synth` read back as float32 samples: the same text always gives the same samples."""
    return read_wav(synth(text, path, speed=speed))


@pytest.fixture(scope="session")
def speak_uncached() -> Callable[..., np.ndarray]:
    """`speak` itself, for tests that need a fresh synthesis rather than `say`'s cached one."""
    return speak


@pytest.fixture(scope="session")
def say(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., np.ndarray]:
    """`say(text, speed=150)` -> 16 kHz float32 speech (see `speak`), cached for the session."""
    folder = tmp_path_factory.mktemp("speech")
    cache: dict[tuple[str, int], np.ndarray] = {}

    def _say(text: str, speed: int = 150) -> np.ndarray:
        key = (text, speed)
        if key not in cache:
            cache[key] = speak(text, folder / f"utt{len(cache)}.wav", speed=speed)
        return cache[key]

    return _say


@pytest.fixture(scope="session")
def whisper_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded Whisper base, assembled (and checksum-verified) once per session."""
    return ensure_whisper_base(tmp_path_factory.mktemp("models"))


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def whisper_engine(whisper_model_dir: Path) -> AsyncIterator[WhisperEngine]:
    """One engine (one loaded WhisperModel) for every Whisper test; the tests share its loop."""
    engine = WhisperEngine(whisper_model_dir, cpu_threads=2, workers=1, interim_interval=0.7)
    await engine.warm_up()
    yield engine
    await engine.aclose()
