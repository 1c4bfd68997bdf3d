"""OpenAI (or any OpenAI-compatible) transcription as an STT engine.

The transcription endpoint takes a whole audio file and returns its text, so
the stream endpoints locally: it is a `SegmentingStream` (the Silero VAD
endpointer shared with the embedded engines) whose `_decode` uploads each
finished utterance as a 16 kHz mono 16-bit WAV through the openai SDK and
emits its FINAL. START/END_OF_SPEECH come from our VAD at once, so the
session learns about turn ends without waiting for the upload.

Interim text is off by default (one upload per utterance). It can come from
a local decoder (`interim_decoder`, e.g. the embedded `WhisperEngine`): the
session then shows the embedded engine's INTERIMs, which the OpenAI FINAL
replaces; or, with `interim_interval` and no local decoder, from re-uploading
the open utterance (costly, for demos).

Failures: the SDK retries transient errors (`max_retries`, with its
back-off). An utterance whose upload still fails yields an empty FINAL (the
session skips empty text) and a warning; `max_consecutive_failures` such
failures in a row, or a rejected key or model (401/403/404/400), end the
stream with `STTError(retryable=False)` so the session can fall back.
"""

from __future__ import annotations

import asyncio
import io
import logging
import math
import wave
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import openai
from callpilot.server.errors import ConfigError
from callpilot.server.stt.base import SAMPLE_RATE, AudioArray, STTCapabilities, STTEngine, STTError
from callpilot.server.stt.streaming import Hypothesis, SegmentingOptions, SegmentingStream
from callpilot.server.stt.vad import VadOptions, load_silero_session
from openai import AsyncOpenAI

log = logging.getLogger(__name__)

_FATAL_STATUS = (400, 401, 403, 404, 422)
_MAX_PROMPT_CHARS = 600  # whisper-1 reads at most 224 prompt tokens


class InterimDecoder(Protocol):
    """A local recogniser for interim text (the embedded WhisperEngine fits)."""

    async def transcribe(
        self, audio: AudioArray, *, language: str = "en", hotwords: str | None = None, final: bool = True
    ) -> Hypothesis | None: ...

    def has_idle_worker(self) -> bool: ...


def to_wav(audio: AudioArray) -> bytes:
    """16 kHz mono float32 → a 16-bit PCM WAV file in memory."""
    pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(pcm)
    return buf.getvalue()


def iso_language(code: str) -> str:
    """BCP-47 "en-US" → ISO-639-1 "en", which the endpoint wants."""
    return (code or "en").split("-")[0].split("_")[0].lower()


def hints_prompt(phrase_hints: Sequence[str]) -> str:
    """Phrase hints as a transcription prompt (spellings the model should prefer)."""
    hints = [h.strip() for h in phrase_hints if h.strip()]
    if not hints:
        return ""
    text = "Vocabulary: " + ", ".join(hints) + "."
    return text if len(text) <= _MAX_PROMPT_CHARS else text[:_MAX_PROMPT_CHARS].rsplit(",", 1)[0] + "."


class OpenAITranscriptionEngine(STTEngine):
    """Utterance-at-a-time transcription through `audio.transcriptions.create`.

    max_concurrency bounds uploads in flight across all streams of the engine;
    a stream's finals wait for a slot (the stream's own `max_pending_finals`
    then back-pressures `push_audio`, as for the embedded engine).
    """

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str | None = None,
        model: str = "gpt-4o-transcribe",
        language: str = "en",
        vad: VadOptions | None = None,
        timeout: float = 15.0,
        max_retries: int = 2,
        max_concurrency: int = 8,
        max_consecutive_failures: int = 3,
        interim_decoder: InterimDecoder | None = None,
        interim_interval: float | None = None,
        max_pending_finals: int = 4,
        max_events: int = 64,
        client: AsyncOpenAI | None = None,
    ) -> None:
        if not api_key and client is None:
            raise ConfigError("OpenAI transcription needs an API key", hints=["set OPENAI_API_KEY"])
        if max_concurrency < 1 or max_consecutive_failures < 1:
            raise ConfigError(
                "OpenAI transcription max_concurrency and max_consecutive_failures must be >= 1"
            )
        self.model = model
        self.language = language
        self.interim_decoder = interim_decoder
        if interim_decoder is not None and interim_interval is None:
            interim_interval = 0.7
        self.segmenting = SegmentingOptions(
            vad or VadOptions(), interim_interval, max_pending_finals, max_events
        )
        self.max_consecutive_failures = max_consecutive_failures
        self.capabilities = STTCapabilities(streaming=False, interim_results=interim_interval is not None)
        self._client = client or AsyncOpenAI(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries
        )
        self._slots = asyncio.Semaphore(max_concurrency)

    def stream(self, *, language: str, phrase_hints: Sequence[str] = ()) -> OpenAITranscriptionStream:
        return OpenAITranscriptionStream(self, language=language or self.language, phrase_hints=phrase_hints)

    async def warm_up(self) -> None:
        load_silero_session()

    async def aclose(self) -> None:
        await self._client.close()

    async def transcribe(self, audio: AudioArray, *, language: str, prompt: str = "") -> Hypothesis:
        """Upload one utterance; raises openai errors as the SDK does."""
        if audio.size == 0:
            return Hypothesis("", 0.0)
        wants_logprobs = self.model.startswith(("gpt-4o-transcribe", "gpt-4o-mini-transcribe"))
        async with self._slots:
            result = await self._client.audio.transcriptions.create(
                file=("utterance.wav", to_wav(audio), "audio/wav"),
                model=self.model,
                language=iso_language(language),
                response_format="json",
                prompt=prompt or openai.omit,
                include=["logprobs"] if wants_logprobs else openai.omit,
            )
        confidence = 0.0
        if result.logprobs:
            values = [lp.logprob for lp in result.logprobs if lp.logprob is not None]
            if values:
                confidence = math.exp(sum(values) / len(values))
        return Hypothesis(result.text.strip(), confidence)


class OpenAITranscriptionStream(SegmentingStream):
    """One speaker: local VAD endpointing, one upload per utterance."""

    def __init__(
        self, engine: OpenAITranscriptionEngine, *, language: str, phrase_hints: Sequence[str]
    ) -> None:
        super().__init__(engine.segmenting)
        self._engine = engine
        self.language = language
        self.prompt = hints_prompt(phrase_hints)
        self._failures = 0
        self._interim_busy = False

    async def _decode(self, audio: AudioArray, *, final: bool) -> Hypothesis | None:
        if not final:
            return await self._interim(audio)
        try:
            hypothesis = await self._engine.transcribe(audio, language=self.language, prompt=self.prompt)
        except openai.APIStatusError as exc:
            if exc.status_code in _FATAL_STATUS:
                raise STTError(
                    f"OpenAI transcription rejected the request (HTTP {exc.status_code}): {exc.message}",
                    retryable=False,
                ) from exc
            return self._failed(exc)
        except (openai.APIError, TimeoutError, OSError) as exc:
            return self._failed(exc)
        self._failures = 0
        return hypothesis

    def _failed(self, exc: BaseException) -> Hypothesis:
        self._failures += 1
        log.warning("openai transcription failed (%d in a row): %s", self._failures, exc)
        if self._failures >= self._engine.max_consecutive_failures:
            raise STTError(f"OpenAI transcription failing: {exc}", retryable=False) from exc
        return Hypothesis("", 0.0)

    async def _interim(self, audio: AudioArray) -> Hypothesis | None:
        local = self._engine.interim_decoder
        if local is not None:
            return await local.transcribe(audio, language=iso_language(self.language), final=False)
        self._interim_busy = True
        try:
            return await self._engine.transcribe(audio, language=self.language, prompt=self.prompt)
        except (openai.APIError, TimeoutError, OSError):
            return None  # interims are best effort
        finally:
            self._interim_busy = False

    def _interim_possible(self) -> bool:
        local = self._engine.interim_decoder
        if local is not None:
            return local.has_idle_worker()
        return not self._interim_busy
