"""Deepgram live streaming STT, through the official deepgram-sdk (v7).

One `DeepgramStream` holds one websocket to Deepgram's `/v1/listen` for one
speaker. The stream is built for calls of any length and for a network that
fails:

* **Mapping.** Deepgram sends `Results` (interim when `is_final` is false,
  a finalised *part* when `is_final` is true, the end of an utterance when
  `speech_final` is also true), `SpeechStarted` (with `vad_events`) and
  `UtteranceEnd` (a gap after the last finalised word, sent even when noise
  kept `speech_final` from firing). Our utterance is the span from the first
  speech to `speech_final` / `UtteranceEnd` / a `Finalize` answer: its FINAL
  text is the finalised parts joined with single spaces, in order. Interim
  events carry the whole utterance so far (finalised parts + the current
  interim hypothesis) because the session replaces a segment's interim text
  rather than appending to it.
* **Silence.** Deepgram closes a socket that sees neither audio nor a text
  frame for 10 s (NET-0001). The sender sends `KeepAlive` whenever no audio
  went out for `keepalive_interval` seconds (holds, muted legs, a client that
  stops sending chunks).
* **End.** `end_input` sends the remaining audio, then `Finalize` and
  `CloseStream`; the stream ends when Deepgram has answered with the last
  results and closed the socket, so the last words of a call are not lost.
* **Drops.** Every pushed sample goes into a bounded ledger keyed by its
  absolute sample offset. A final result covering audio up to offset *t*
  releases the ledger up to *t*. When the socket drops, a new one is opened
  and the ledger is replayed from the end of the last final; the new
  connection's timestamps are shifted by that offset, and results ending at or
  before the covered offset are discarded, so nothing is transcribed twice and
  nothing is skipped. Consecutive failures without progress are bounded by a
  `ReconnectPolicy`; when it is exhausted the iterator raises
  `STTError(retryable=False)` after emitting the finals it has, and
  `unfinalised_audio()` hands the uncovered audio to whoever takes over.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
import weakref
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import websockets.exceptions
from callpilot.server.errors import ConfigError
from callpilot.server.stt.base import (
    SAMPLE_RATE,
    AudioArray,
    SpeechEvent,
    SpeechEventKind,
    STTCapabilities,
    STTEngine,
    STTError,
    STTStream,
)
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


# --------------------------------------------------------------------------- policy


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    """How hard a stream tries to get its socket back.

    `max_attempts` counts consecutive connection attempts that made no
    progress (no result received); a connection that delivered results resets
    the count, so a long call survives any number of isolated drops while a
    dead endpoint or a revoked key ends the stream within
    `max_attempts` back-offs.
    """

    max_attempts: int = 5
    initial_backoff: float = 0.25
    max_backoff: float = 4.0
    multiplier: float = 2.0

    def backoff(self, failures: int) -> float:
        """Delay before the next attempt after `failures` failed ones (0 → at once)."""
        if failures <= 0:
            return 0.0
        return float(min(self.max_backoff, self.initial_backoff * self.multiplier ** (failures - 1)))


# --------------------------------------------------------------------------- audio


def float_to_linear16(pcm: AudioArray) -> bytes:
    """float32 [-1, 1] → signed 16-bit little-endian PCM (Deepgram's `linear16`)."""
    clipped = np.clip(np.asarray(pcm, dtype=np.float32), -1.0, 1.0)
    return (clipped * 32767.0).round().astype("<i2").tobytes()


@dataclass(slots=True)
class _Chunk:
    start: int  # absolute sample offset of the first sample
    data: bytes  # linear16
    pushed: float  # wall clock of push_audio

    @property
    def end(self) -> int:
        return self.start + len(self.data) // 2


class AudioLedger:
    """Pushed audio not yet covered by a final result, by absolute sample offset.

    Bounded to `max_samples`: if the upstream is away for longer than that
    (or never finalises), the oldest audio is dropped with a warning and the
    replay starts at the oldest retained sample. Finals release audio through
    `release_to`, so in normal operation the ledger holds a few seconds.
    """

    def __init__(self, max_samples: int) -> None:
        self._chunks: collections.deque[_Chunk] = collections.deque()
        self._max = max_samples
        self._size = 0
        self.end = 0  # offset one past the last pushed sample
        self.dropped = 0  # samples dropped by the bound (never by release)

    @property
    def first(self) -> int:
        """Offset of the oldest retained sample (== end when empty)."""
        return self._chunks[0].start if self._chunks else self.end

    def append(self, data: bytes, pushed: float) -> None:
        chunk = _Chunk(self.end, data, pushed)
        self._chunks.append(chunk)
        self._size += len(data) // 2
        self.end = chunk.end
        while self._size > self._max and self._chunks:
            old = self._chunks.popleft()
            n = len(old.data) // 2
            self._size -= n
            self.dropped += n
            log.warning("deepgram: replay buffer full, dropped %.2fs of unfinalised audio", n / SAMPLE_RATE)

    def release_to(self, offset: int) -> None:
        """Forget audio before `offset` (covered by a final)."""
        while self._chunks and self._chunks[0].end <= offset:
            old = self._chunks.popleft()
            self._size -= len(old.data) // 2
        if self._chunks and self._chunks[0].start < offset:
            head = self._chunks[0]
            cut = (offset - head.start) * 2
            self._chunks[0] = _Chunk(offset, head.data[cut:], head.pushed)
            self._size -= cut // 2

    def read(self, offset: int, max_samples: int) -> tuple[int, bytes]:
        """Up to `max_samples` from `offset` (or from the oldest retained sample
        if `offset` was dropped); returns (actual start offset, bytes)."""
        offset = max(offset, self.first)
        out: list[bytes] = []
        want = max_samples
        pos = offset
        for chunk in self._chunks:
            if chunk.end <= pos:
                continue
            if want <= 0:
                break
            lo = (pos - chunk.start) * 2
            piece = chunk.data[lo : lo + want * 2]
            out.append(piece)
            pos += len(piece) // 2
            want -= len(piece) // 2
        return offset, b"".join(out)

    def pushed_at(self, offset: int) -> float:
        """When the sample at `offset` was pushed (0 if no longer held)."""
        for chunk in self._chunks:
            if chunk.start <= offset < chunk.end or chunk.start >= offset:
                return chunk.pushed
        return self._chunks[-1].pushed if self._chunks else 0.0

    def samples(self) -> AudioArray:
        """Everything retained, as float32."""
        raw = b"".join(c.data for c in self._chunks)
        return (np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32767.0).astype(np.float32)


# --------------------------------------------------------------------------- output queue


class SpeechEventQueue:
    """The hand-off from a recogniser to the stream's consumer.

    Policy: interim events coalesce (a newer INTERIM of the same utterance
    replaces one still queued, since interims replace each other anyway);
    START/FINAL/END are never dropped. At most `max_events` durable events
    wait; beyond that `put` waits, which pushes back on the socket reader (the
    provider buffers) rather than on `push_audio`.
    """

    def __init__(self, max_events: int = 256) -> None:
        self._items: collections.deque[SpeechEvent] = collections.deque()
        self._max = max_events
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self._closed = False
        self._error: BaseException | None = None

    async def put(self, event: SpeechEvent) -> None:
        if self._closed:
            return
        if event.kind is SpeechEventKind.INTERIM and self._items:
            last = self._items[-1]
            if last.kind is SpeechEventKind.INTERIM and last.utterance == event.utterance:
                self._items[-1] = event
                return
        while len(self._items) >= self._max and not self._closed:
            self._writable.clear()
            await self._writable.wait()
        self._items.append(event)
        self._readable.set()

    def close(self, error: BaseException | None = None) -> None:
        """No more events; the consumer gets `error` (if any) after the queued ones."""
        if self._closed:
            return
        self._closed = True
        self._error = error
        self._readable.set()
        self._writable.set()

    async def get(self) -> SpeechEvent:
        """The next event; StopAsyncIteration at the end, or the closing error."""
        while not self._items:
            if self._closed:
                if self._error is not None:
                    err, self._error = self._error, None
                    raise err
                raise StopAsyncIteration
            self._readable.clear()
            await self._readable.wait()
        event = self._items.popleft()
        self._writable.set()
        return event


# --------------------------------------------------------------------------- utterances


@dataclass(slots=True)
class _Part:
    text: str
    confidence: float
    start: float
    end: float


class _Assembler:
    """Turns Deepgram's result stream into our utterance events (see module doc)."""

    def __init__(self, out: SpeechEventQueue) -> None:
        self._out = out
        self.utterance = 0
        self.open = False
        self.parts: list[_Part] = []
        self.interim_shown = False  # for metrics/debugging: the UI saw text for this utterance
        self.latest: _Part | None = None  # the current interim hypothesis, not yet final
        self.start = 0.0
        self.last_end = 0.0

    async def _begin(self, start: float, input_time: float) -> None:
        if self.open:
            return
        self.open = True
        self.start = start
        self.last_end = start
        await self._out.put(
            SpeechEvent(
                SpeechEventKind.START_OF_SPEECH, self.utterance, start=start, end=start, input_time=input_time
            )
        )

    async def speech_started(self, at: float, input_time: float) -> None:
        await self._begin(at, input_time)

    async def interim(self, part: _Part, input_time: float) -> None:
        if not part.text:
            return
        await self._begin(part.start, input_time)
        self.interim_shown = True
        self.latest = part
        self.last_end = max(self.last_end, part.end)
        text = " ".join([p.text for p in self.parts] + [part.text])
        await self._out.put(
            SpeechEvent(
                SpeechEventKind.INTERIM,
                self.utterance,
                text=text,
                confidence=part.confidence,
                start=self.start,
                end=part.end,
                input_time=input_time,
            )
        )

    async def final_part(self, part: _Part, input_time: float) -> None:
        if not part.text:
            return
        await self._begin(part.start, input_time)
        self.parts.append(part)
        self.latest = None
        self.last_end = max(self.last_end, part.end)
        # Show the finalised part at once: it will not change any more.
        self.interim_shown = True
        await self._out.put(
            SpeechEvent(
                SpeechEventKind.INTERIM,
                self.utterance,
                text=" ".join(p.text for p in self.parts),
                confidence=part.confidence,
                start=self.start,
                end=part.end,
                input_time=input_time,
            )
        )

    def promote_interim(self) -> float | None:
        """Take the current interim hypothesis as a final part (a flush that
        got no answer); returns the end offset it covers."""
        part, self.latest = self.latest, None
        if part is None or not self.open:
            return None
        self.parts.append(part)
        return part.end

    async def end(self, at: float | None, input_time: float) -> None:
        """Close the open utterance: END_OF_SPEECH, then its one FINAL.

        The order and the "exactly one FINAL per END, empty when no words
        were heard" rule are the embedded engines' (see `stt.streaming`), so
        the session handles every engine alike.
        """
        if not self.open:
            return
        now = time.time()
        end = self.parts[-1].end if self.parts else (at if at is not None else self.last_end)
        end = max(end, self.start)
        weights = [max(p.end - p.start, _EPS) for p in self.parts]
        total = sum(weights)
        weighted = sum(p.confidence * w for p, w in zip(self.parts, weights, strict=True))
        start = min(self.parts[0].start, self.start) if self.parts else self.start
        await self._out.put(
            SpeechEvent(
                SpeechEventKind.END_OF_SPEECH,
                self.utterance,
                start=start,
                end=end,
                input_time=input_time,
                speech_end_time=now,
            )
        )
        await self._out.put(
            SpeechEvent(
                SpeechEventKind.FINAL,
                self.utterance,
                text=" ".join(p.text for p in self.parts),
                confidence=weighted / total if total else 0.0,
                start=start,
                end=end,
                input_time=input_time,
                speech_end_time=now,
            )
        )
        self.utterance += 1
        self.open = False
        self.parts = []
        self.latest = None
        self.interim_shown = False


# --------------------------------------------------------------------------- engine


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
        self.keepalive_interval = keepalive_interval
        self.reconnect = reconnect or ReconnectPolicy()
        self.replay_buffer_samples = int(replay_buffer_seconds * SAMPLE_RATE)
        self.connect_timeout = connect_timeout
        self.close_timeout = close_timeout
        self.finalize_timeout = finalize_timeout
        self.send_chunk_samples = max(320, int(send_chunk_seconds * SAMPLE_RATE))
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
            async with asyncio.timeout(self.connect_timeout), self._open(params) as conn:
                await conn.send_close_stream()
                async for _ in conn:
                    pass
        except ApiError as exc:
            if exc.status_code in (400, 401, 402, 403, 404):
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


class _Fatal(Exception):
    """A failure no reconnection will fix (bad key, bad parameters)."""


class _Dropped(Exception):
    """The socket went away without our CloseStream."""


class DeepgramStream(STTStream):
    """One speaker's audio over one (re)connecting Deepgram socket."""

    def __init__(self, engine: DeepgramEngine, *, language: str, phrase_hints: Sequence[str]) -> None:
        self._engine = engine
        self._params = engine._connect_params(language, phrase_hints)
        self._ledger = AudioLedger(engine.replay_buffer_samples)
        self._out = SpeechEventQueue()
        self._asm = _Assembler(self._out)
        self._wake = asyncio.Event()
        self._covered = 0  # absolute sample offset finalised by Deepgram
        self._conn_base = 0  # absolute sample offset of the current socket's t=0
        self._ended = False
        self._close_sent = False
        self._finalize_pending = False  # a flush() waiting for its Finalize to go out
        self._finalized = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.connections = 0  # sockets opened so far (for metrics and tests)
        with contextlib.suppress(RuntimeError):  # no running loop: start on first use
            self._start()

    # ------------------------------------------------------------ public API

    async def push_audio(self, pcm: AudioArray) -> None:
        if self._ended:
            raise STTError("push_audio after end_input")
        self._start()
        if len(pcm):
            self._ledger.append(float_to_linear16(pcm), time.time())
            self._wake.set()

    async def flush(self) -> None:
        """Ask Deepgram to finalise what it holds and close the utterance.

        Waits (up to `finalize_timeout`) for the `from_finalize` answer. If it
        does not come (the socket is down, or Deepgram had nothing pending) the
        latest interim hypothesis is taken as final and the covered offset moves
        past it, so Deepgram's own final for that audio, when it comes, is
        deduplicated away instead of repeating the words.
        """
        if self._ended:
            return
        self._start()
        self._finalized.clear()
        self._finalize_pending = True
        self._wake.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._engine.finalize_timeout):
                await self._finalized.wait()
        self._finalize_pending = False
        promoted = self._asm.promote_interim()
        if promoted is not None:
            self._covered = max(self._covered, round(promoted * SAMPLE_RATE))
        await self._asm.end(None, time.time())

    def end_input(self) -> None:
        self._ended = True
        self._start()
        self._wake.set()

    def __aiter__(self) -> AsyncIterator[SpeechEvent]:
        self._start()
        return self._events()

    async def _events(self) -> AsyncIterator[SpeechEvent]:
        while True:
            try:
                event = await self._out.get()
            except StopAsyncIteration:
                return
            yield event

    async def aclose(self) -> None:
        self._ended = True
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._out.close()

    def unfinalised_audio(self) -> tuple[float, AudioArray]:
        """(offset in seconds, samples) of pushed audio no final covers yet.

        After a persistent failure the session can push these samples into a
        fallback engine so the words spoken during the outage are not lost.
        """
        start = max(self._covered, self._ledger.first)
        self._ledger.release_to(start)
        return start / SAMPLE_RATE, self._ledger.samples()

    # ------------------------------------------------------------ runner

    def _start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="deepgram-stream")

    async def _run(self) -> None:
        policy = self._engine.reconnect
        failures = 0
        last_error = ""
        try:
            while True:
                delay = policy.backoff(failures)
                if delay:
                    await asyncio.sleep(delay)
                progressed = False
                try:
                    progressed = await self._connection()
                    break  # closed after our CloseStream: done
                except _Fatal as exc:
                    raise STTError(f"Deepgram rejected the stream: {exc}", retryable=False) from exc
                except _Dropped as exc:
                    progressed = exc.args[1] if len(exc.args) > 1 else False
                    last_error = str(exc.args[0])
                except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
                    last_error = f"{type(exc).__name__}: {exc}"
                except ApiError as exc:
                    last_error = f"HTTP {exc.status_code}"
                failures = 0 if progressed else failures + 1
                log.warning(
                    "deepgram: upstream lost (%s); reconnecting (%d/%d), replaying from %.2fs",
                    last_error,
                    failures,
                    policy.max_attempts,
                    self._covered / SAMPLE_RATE,
                )
                if failures >= policy.max_attempts:
                    raise STTError(
                        f"Deepgram unreachable after {failures} attempts ({last_error})", retryable=False
                    )
        except STTError as exc:
            await self._asm.end(None, time.time())
            self._out.close(exc)
            return
        except asyncio.CancelledError:
            self._out.close()
            raise
        except Exception as exc:  # a bug: surface it rather than hang the consumer
            log.exception("deepgram: stream failed")
            await self._asm.end(None, time.time())
            self._out.close(STTError(f"Deepgram stream failed: {exc}", retryable=False))
            return
        await self._asm.end(None, time.time())
        self._out.close()

    async def _connection(self) -> bool:
        """Run one socket until Deepgram closes it after our CloseStream (returns)
        or it drops (raises _Dropped with whether results were received)."""
        self._close_sent = False
        start = max(self._covered, self._ledger.first)
        if start > self._covered:
            lost = (start - self._covered) / SAMPLE_RATE
            log.warning("deepgram: %.2fs of audio lost to the replay bound", lost)
        async with contextlib.AsyncExitStack() as stack:
            try:
                async with asyncio.timeout(self._engine.connect_timeout):
                    conn = await stack.enter_async_context(self._engine._open(self._params))
            except ApiError as exc:
                if exc.status_code in (400, 401, 402, 403, 404):
                    raise _Fatal(f"HTTP {exc.status_code}: {exc.body}") from exc
                raise
            self.connections += 1
            self._conn_base = start
            progress = [False]
            sender = asyncio.create_task(self._send(conn, start), name="deepgram-send")
            receiver = asyncio.create_task(self._receive(conn, progress), name="deepgram-recv")
            try:
                done, _ = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
                if sender in done:
                    send_error = sender.exception()
                    if send_error is not None:
                        raise send_error
                if receiver not in done:  # CloseStream sent but no close within close_timeout
                    receiver.cancel()
                    return True
                error = receiver.exception()
                if error is not None:
                    raise _Dropped(f"{type(error).__name__}: {error}", progress[0]) from error
                if self._close_sent:
                    return True
                raise _Dropped("closed by server", progress[0])
            finally:
                for task in (sender, receiver):
                    task.cancel()
                for task in (sender, receiver):
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task

    async def _send(self, conn: Any, start: int) -> None:
        """Audio from the ledger in order, KeepAlive in silence, Finalize on
        request, Finalize + CloseStream after end_input."""
        engine = self._engine
        pos = start
        loop = asyncio.get_running_loop()
        last_sent = loop.time()
        try:
            while True:
                self._wake.clear()
                at, data = self._ledger.read(pos, engine.send_chunk_samples)
                if data:
                    if at != pos:
                        log.warning("deepgram: skipping %.2fs of dropped audio", (at - pos) / SAMPLE_RATE)
                    await conn.send_media(data)
                    pos = at + len(data) // 2
                    last_sent = loop.time()
                    continue
                if self._finalize_pending:
                    self._finalize_pending = False
                    await conn.send_finalize()
                    last_sent = loop.time()
                    continue
                if self._ended:
                    await conn.send_finalize()
                    await conn.send_close_stream()
                    self._close_sent = True
                    await asyncio.sleep(engine.close_timeout)
                    log.warning("deepgram: no close %.1fs after CloseStream; ending", engine.close_timeout)
                    return
                idle = loop.time() - last_sent
                if idle >= engine.keepalive_interval:
                    await conn.send_keep_alive()
                    last_sent = loop.time()
                    continue
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(engine.keepalive_interval - idle):
                        await self._wake.wait()
        except websockets.exceptions.ConnectionClosed:
            await asyncio.Future()  # the receiver reports the drop; wait to be cancelled

    async def _receive(self, conn: Any, progress: list[bool]) -> None:
        async for message in conn:
            if isinstance(message, ListenV1Results):
                progress[0] = True
                await self._on_results(message)
            elif isinstance(message, ListenV1SpeechStarted):
                at = (self._conn_base / SAMPLE_RATE) + float(message.timestamp)
                await self._asm.speech_started(at, self._ledger.pushed_at(int(at * SAMPLE_RATE)))
            elif isinstance(message, ListenV1UtteranceEnd):
                # Closes the utterance when noise kept speech_final from coming;
                # after a speech_final it finds nothing open and is a no-op.
                at = (self._conn_base / SAMPLE_RATE) + float(message.last_word_end)
                await self._asm.end(at, time.time())
            elif isinstance(message, ListenV1Metadata):
                log.debug("deepgram: metadata %s, %.2fs", message.request_id, message.duration)
            elif isinstance(message, ListenV1Error):
                log.warning("deepgram: error %s: %s", message.variant, message.description)
            else:
                log.debug("deepgram: ignoring message %r", type(message).__name__)

    async def _on_results(self, r: ListenV1Results) -> None:
        base = self._conn_base / SAMPLE_RATE
        covered = self._covered / SAMPLE_RATE
        start = base + float(r.start)
        end = start + float(r.duration)
        alt = r.channel.alternatives[0] if r.channel.alternatives else None
        text = alt.transcript.strip() if alt is not None else ""
        conf = float(alt.confidence) if alt is not None else 0.0
        words = list(alt.words) if alt is not None else []
        input_time = self._ledger.pushed_at(int(end * SAMPLE_RATE) - 1)
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
        part = _Part(text, conf, start, base + float(words[-1].end) if words else end)
        if not r.is_final:
            if end > covered + _EPS:
                await self._asm.interim(part, input_time)
            return
        if end > covered + _EPS:
            self._covered = round(end * SAMPLE_RATE)
            self._ledger.release_to(self._covered)
            await self._asm.final_part(part, input_time)
        if r.speech_final or r.from_finalize:
            await self._asm.end(None, input_time)
        if r.from_finalize:
            self._finalized.set()
