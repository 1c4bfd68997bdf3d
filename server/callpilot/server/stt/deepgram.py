"""Deepgram live streaming STT, through the official deepgram-sdk (v7).

One `DeepgramStream` holds one websocket to Deepgram's `/v1/listen` for one
speaker. Reconnection, replay of unfinalised audio, keep-alives and the event
queue are `replay.ReplayingStream`'s; utterance assembly is
`utterances.UtteranceAssembler`'s. This module is Deepgram's protocol only:

* **Mapping.** Deepgram sends `Results` (interim when `is_final` is false,
  a finalised *part* when `is_final` is true, the end of an utterance when
  `speech_final` is also true), `SpeechStarted` (with `vad_events`) and
  `UtteranceEnd` (a gap after the last finalised word, sent even when noise
  kept `speech_final` from firing). Our utterance is the span from the first
  speech to `speech_final` / `UtteranceEnd` / a `Finalize` answer
  (`from_finalize`): its FINAL text is the finalised parts joined with single
  spaces, in order.
* **Control.** Audio goes as binary `linear16` frames; `KeepAlive` holds an
  idle socket (Deepgram closes one that sees neither audio nor a text frame
  for 10 s, NET-0001); `Finalize` answers a flush; `Finalize` + `CloseStream`
  end the stream, which ends when Deepgram has sent the last results and
  closed the socket, so the last words of a call are not lost.
* **Failures.** A handshake rejected with 400/401/402/403/404 is fatal (no
  reconnection fixes a bad key or model); anything else is a drop, replayed
  on a new socket. Results are placed on the stream's timeline by the
  current socket's offset and words already inside a final are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Sequence
from typing import Any, ClassVar

import websockets.exceptions
from callpilot.server.errors import ConfigError
from callpilot.server.stt.base import SAMPLE_RATE, STTCapabilities, STTEngine
from callpilot.server.stt.replay import ConnectionOptions, Fatal, ReconnectPolicy, ReplayingStream
from callpilot.server.stt.utterances import Part
from deepgram import AsyncDeepgramClient
from deepgram.core.api_error import ApiError
from deepgram.environment import DeepgramClientEnvironment
from deepgram.listen.v1.types import (
    ListenV1Error,
    ListenV1Metadata,
    ListenV1Results,
    ListenV1SpeechStarted,
    ListenV1UtteranceEnd,
)

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "wss://api.deepgram.com"
_EPS = 1e-3  # seconds; Deepgram rounds timestamps to the millisecond
_FATAL_STATUS = (400, 401, 402, 403, 404)


def _environment(base_url: str) -> DeepgramClientEnvironment:
    """Point every SDK endpoint at `base_url` (ws[s]:// or http[s]://)."""
    url = base_url.rstrip("/")
    for suffix in ("/v1/listen", "/v1"):
        if url.endswith(suffix):
            url = url[: -len(suffix)]
    if url.startswith(("http://", "https://")):
        ws = "ws" + url[len("http") :]
        http = url
    elif url.startswith(("ws://", "wss://")):
        ws = url
        http = "http" + url[len("ws") :]
    else:
        raise ConfigError(
            f"Deepgram base URL {base_url!r} must start with wss://, ws://, https:// or http://"
        )
    return DeepgramClientEnvironment(base=http, production=ws, agent=ws, agent_rest=http)


class DeepgramEngine(STTEngine):
    """Deepgram live STT; one websocket per stream, one SDK client per engine."""

    capabilities = STTCapabilities(streaming=True, interim_results=True)

    def __init__(
        self,
        api_key: str,
        *,
        model: str = "nova-3",
        language: str = "en",
        base_url: str | None = None,
        endpointing_ms: int = 300,
        utterance_end_ms: int = 1000,
        interim_results: bool = True,
        smart_format: bool = True,
        vad_events: bool = True,
        keepalive_interval: float = 4.0,
        reconnect: ReconnectPolicy | None = None,
        replay_buffer_seconds: float = 120.0,
        connect_timeout: float = 10.0,
        close_timeout: float = 10.0,
        finalize_timeout: float = 3.0,
        send_chunk_seconds: float = 0.25,
    ) -> None:
        if not api_key:
            raise ConfigError("Deepgram needs an API key", hints=["set DEEPGRAM_API_KEY"])
        if utterance_end_ms and not interim_results:
            raise ConfigError("Deepgram utterance_end_ms needs interim_results")
        if utterance_end_ms and utterance_end_ms < 1000:
            raise ConfigError("Deepgram utterance_end_ms must be at least 1000 (or 0 to disable)")
        if not 0 < keepalive_interval < 10:
            raise ConfigError("Deepgram keepalive_interval must be within (0, 10) s (server idle limit)")
        self.model = model
        self.language = language
        self.base_url = base_url or DEFAULT_BASE_URL
        self.endpointing_ms = endpointing_ms
        self.utterance_end_ms = utterance_end_ms
        self.interim_results = interim_results
        self.smart_format = smart_format
        self.vad_events = vad_events
        self.connection = ConnectionOptions(
            keepalive_interval=keepalive_interval,
            connect_timeout=connect_timeout,
            close_timeout=close_timeout,
            finalize_timeout=finalize_timeout,
            send_chunk_samples=max(320, int(send_chunk_seconds * SAMPLE_RATE)),
            replay_buffer_samples=int(replay_buffer_seconds * SAMPLE_RATE),
            reconnect=reconnect or ReconnectPolicy(),
        )
        self._client = AsyncDeepgramClient(api_key=api_key, environment=_environment(self.base_url))
        self._streams: weakref.WeakSet[DeepgramStream] = weakref.WeakSet()

    def stream(self, *, language: str, phrase_hints: Sequence[str] = ()) -> DeepgramStream:
        stream = DeepgramStream(self, language=language or self.language, phrase_hints=phrase_hints)
        self._streams.add(stream)
        return stream

    async def warm_up(self) -> None:
        """Open and close one socket, so a wrong key or model fails at start-up.

        A rejected handshake (401/403/400) is a `ConfigError`; an unreachable
        service is only logged, because it may be back by the first call and
        every stream reconnects on its own.
        """
        params = self._connect_params(self.language, ())
        try:
            async with asyncio.timeout(self.connection.connect_timeout), self._open(params) as conn:
                await conn.send_close_stream()
                async for _ in conn:
                    pass
        except ApiError as exc:
            if exc.status_code in _FATAL_STATUS:
                raise ConfigError(
                    f"Deepgram rejected the configuration (HTTP {exc.status_code}) at {self.base_url}",
                    hints=["check DEEPGRAM_API_KEY and the model/language settings"],
                ) from exc
            log.warning("deepgram: warm-up got HTTP %s; streams will retry", exc.status_code)
        except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
            log.warning("deepgram: %s unreachable at start-up (%s); streams will retry", self.base_url, exc)

    async def aclose(self) -> None:
        """Stop every stream still open (server shutdown)."""
        streams = list(self._streams)
        await asyncio.gather(*(s.aclose() for s in streams), return_exceptions=True)

    def _connect_params(self, language: str, phrase_hints: Sequence[str]) -> dict[str, Any]:
        """Query parameters of the live request (the SDK encodes lists as repeats)."""
        params: dict[str, Any] = {
            "model": self.model,
            "language": language,
            "encoding": "linear16",
            "sample_rate": SAMPLE_RATE,
            "channels": 1,
            "interim_results": self.interim_results,
            "smart_format": self.smart_format,
            "punctuate": True,
            "vad_events": self.vad_events,
            "endpointing": self.endpointing_ms if self.endpointing_ms > 0 else False,
        }
        if self.utterance_end_ms:
            params["utterance_end_ms"] = self.utterance_end_ms
        hints = [h.strip() for h in phrase_hints if h.strip()]
        if hints:
            # Nova-3 takes plain key terms; older models take legacy keywords.
            params["keyterm" if self.model.startswith("nova-3") else "keywords"] = hints
        return params

    def _open(self, params: dict[str, Any]) -> contextlib.AbstractAsyncContextManager[Any]:
        cm: contextlib.AbstractAsyncContextManager[Any] = self._client.listen.v1.connect(**params)
        return cm


# --------------------------------------------------------------------------- stream


class DeepgramStream(ReplayingStream):
    """One speaker's audio over one (re)connecting Deepgram socket."""

    provider: ClassVar[str] = "Deepgram"
    transient_errors = (OSError, TimeoutError, websockets.exceptions.WebSocketException, ApiError)
    closed_errors = (websockets.exceptions.ConnectionClosed,)

    def __init__(self, engine: DeepgramEngine, *, language: str, phrase_hints: Sequence[str]) -> None:
        self._engine = engine
        self._params = engine._connect_params(language, phrase_hints)
        super().__init__(engine.connection)

    async def _connect(self, stack: contextlib.AsyncExitStack) -> Any:
        try:
            return await stack.enter_async_context(self._engine._open(self._params))
        except ApiError as exc:
            if exc.status_code in _FATAL_STATUS:
                raise Fatal(f"HTTP {exc.status_code}: {exc.body}") from exc
            raise

    def _describe(self, exc: BaseException) -> str:
        if isinstance(exc, ApiError):
            return f"HTTP {exc.status_code}"
        return super()._describe(exc)

    async def _send_audio(self, conn: Any, data: bytes) -> None:
        await conn.send_media(data)

    async def _send_finalize(self, conn: Any) -> None:
        await conn.send_finalize()

    async def _send_keepalive(self, conn: Any) -> None:
        await conn.send_keep_alive()

    async def _send_close(self, conn: Any) -> None:
        await conn.send_close_stream()

    async def _on_message(self, message: Any) -> bool:
        if isinstance(message, ListenV1Results):
            await self._on_results(message)
            return True
        if isinstance(message, ListenV1SpeechStarted):
            at = self._conn_offset + float(message.timestamp)
            await self.utterances.speech_started(at, self._pushed_at(at))
        elif isinstance(message, ListenV1UtteranceEnd):
            # Closes the utterance when noise kept speech_final from coming;
            # after a speech_final it finds nothing open and is a no-op.
            await self.utterances.end(self._conn_offset + float(message.last_word_end), time.time())
        elif isinstance(message, ListenV1Metadata):
            log.debug("deepgram: metadata %s, %.2fs", message.request_id, message.duration)
        elif isinstance(message, ListenV1Error):
            log.warning("deepgram: error %s: %s", message.variant, message.description)
        else:
            log.debug("deepgram: ignoring message %r", type(message).__name__)
        return False

    async def _on_results(self, r: ListenV1Results) -> None:
        base = self._conn_offset
        covered = self._covered_seconds
        start = base + float(r.start)
        end = start + float(r.duration)
        alt = r.channel.alternatives[0] if r.channel.alternatives else None
        text = alt.transcript.strip() if alt is not None else ""
        conf = float(alt.confidence) if alt is not None else 0.0
        words = list(alt.words) if alt is not None else []
        input_time = self._pushed_at(end - 1 / SAMPLE_RATE)
        if words:
            # Dedupe by offset: words already inside a final are dropped.
            kept = [w for w in words if base + float(w.start) >= covered - _EPS]
            if len(kept) != len(words):
                text = " ".join((w.punctuated_word or w.word) for w in kept)
                words = kept
            if words:
                start = base + float(words[0].start)
        elif end <= covered + _EPS and r.is_final:
            text = ""
        part = Part(text, conf, start, base + float(words[-1].end) if words else end)
        if not r.is_final:
            if end > covered + _EPS:
                await self.utterances.interim(part, input_time)
            return
        if end > covered + _EPS:
            self._cover(end)
            await self.utterances.final_part(part, input_time)
        if r.speech_final or r.from_finalize:
            await self.utterances.end(None, input_time)
        if r.from_finalize:
            self._finalize_answered()
