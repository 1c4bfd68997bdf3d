"""Reconnect-with-replay: what every websocket STT stream needs besides its protocol.

`ReplayingStream` is the base of a stream that holds one (re)connecting socket
to a cloud recogniser for one speaker. It owns everything that does not depend
on the provider's wire format, so a new provider writes only how to connect,
how to send audio and control messages, and how to read its results:

* **Ledger.** Every pushed sample goes into a bounded `AudioLedger` keyed by
  its absolute sample offset. `_cover(t)` (a final result covering audio up to
  *t*) releases the ledger up to *t*.
* **Sender.** One task per connection sends the ledger in order (in chunks of
  `send_chunk_samples`), a keep-alive after `keepalive_interval` without audio
  (providers close idle sockets), a finalize request on `flush`, and
  finalize + close after `end_input`.
* **Drops.** When the socket drops, a new one is opened and the ledger is
  replayed from the end of the last final; `_conn_base` is that offset, so the
  subclass shifts the new connection's timestamps by it and discards results
  ending at or before `_covered`: nothing is transcribed twice and nothing is
  skipped. Consecutive failures without progress (no result received) are
  bounded by a `ReconnectPolicy`; when it is exhausted, or on a `Fatal`
  failure (bad key, bad parameters), the iterator raises
  `STTError(retryable=False)` after the events it has, and
  `unfinalised_audio()` hands the uncovered audio to whoever takes over.
* **Events.** Results become utterance events through an
  `UtteranceAssembler` into the shared bounded `EventQueue`.

Subclass contract: `_connect` (open a socket inside the exit stack, raising
`Fatal` for a rejection no retry will fix), `_send_audio`, `_send_finalize`,
`_send_keepalive`, `_send_close`, and `_on_message` (map one received
message; True when it was a result, i.e. progress). The connection object is
iterated with `async for` for messages; the iteration ending means the
server closed the socket.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from abc import abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from callpilot.server.stt.base import SAMPLE_RATE, AudioArray, SpeechEvent, STTError, STTStream
from callpilot.server.stt.queue import EventQueue
from callpilot.server.stt.utterances import UtteranceAssembler

log = logging.getLogger(__name__)


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


def float_to_linear16(pcm: AudioArray) -> bytes:
    """float32 [-1, 1] → signed 16-bit little-endian PCM (`linear16`, what websocket STTs take)."""
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
            log.warning("replay buffer full, dropped %.2fs of unfinalised audio", n / SAMPLE_RATE)

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


@dataclass(frozen=True, slots=True)
class ConnectionOptions:
    """The timing and bounds of a `ReplayingStream` (one value per engine).

    keepalive_interval: seconds without audio before a keep-alive goes out.
    connect_timeout: bound of one connection attempt. close_timeout: how long
    to wait for the server to close after our close request. finalize_timeout:
    how long `flush` waits for the answer to its finalize request.
    send_chunk_samples: most samples per audio frame. replay_buffer_samples:
    bound of the ledger (unfinalised audio kept for replay).
    max_events: bound of the output `EventQueue`.
    """

    keepalive_interval: float = 4.0
    connect_timeout: float = 10.0
    close_timeout: float = 10.0
    finalize_timeout: float = 3.0
    send_chunk_samples: int = 4000
    replay_buffer_samples: int = 120 * SAMPLE_RATE
    reconnect: ReconnectPolicy = field(default_factory=ReconnectPolicy)
    max_events: int = 256


class Fatal(Exception):
    """A failure no reconnection will fix (bad key, bad parameters)."""


class Dropped(Exception):
    """The socket went away without our close request (or could not be opened)."""

    def __init__(self, reason: str, progressed: bool = False) -> None:
        super().__init__(reason)
        self.progressed = progressed


class ReplayingStream(STTStream):
    """One speaker's audio over one (re)connecting socket; see the module docstring."""

    provider: ClassVar[str] = "STT provider"
    """The provider's name in logs and error messages."""
    transient_errors: ClassVar[tuple[type[BaseException], ...]] = (OSError, TimeoutError)
    """Exceptions of a connection that a reconnection may fix."""
    closed_errors: ClassVar[tuple[type[BaseException], ...]] = ()
    """Exceptions of a send that mean "the socket is gone" (the receiver reports why)."""

    def __init__(self, options: ConnectionOptions) -> None:
        """Subclasses set their own fields first: this may start the runner task."""
        self._options = options
        self._ledger = AudioLedger(options.replay_buffer_samples)
        self._out = EventQueue(options.max_events)
        self.utterances = UtteranceAssembler(self._out)
        self._wake = asyncio.Event()
        self._covered = 0  # absolute sample offset finalised by the provider
        self._conn_base = 0  # absolute sample offset of the current socket's t=0
        self._ended = False
        self._close_sent = False
        self._finalize_pending = False  # a flush() waiting for its finalize request to go out
        self._finalized = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        with contextlib.suppress(RuntimeError):  # no running loop: start on first use
            self._start()

    # ------------------------------------------------------------ protocol hooks

    @abstractmethod
    async def _connect(self, stack: contextlib.AsyncExitStack) -> Any:
        """Open a socket (entered into `stack`); raise `Fatal` when retrying cannot help."""

    @abstractmethod
    async def _send_audio(self, conn: Any, data: bytes) -> None:
        """Send linear16 samples."""

    @abstractmethod
    async def _send_finalize(self, conn: Any) -> None:
        """Ask the provider to finalise what it holds (its answer calls `_finalize_answered`)."""

    @abstractmethod
    async def _send_keepalive(self, conn: Any) -> None:
        """Keep an idle socket open."""

    @abstractmethod
    async def _send_close(self, conn: Any) -> None:
        """Ask the provider to send its last results and close the socket."""

    @abstractmethod
    async def _on_message(self, message: Any) -> bool:
        """Map one received message; True when it was a result (progress)."""

    def _describe(self, exc: BaseException) -> str:
        """A transient error, in a log line."""
        return f"{type(exc).__name__}: {exc}"

    # ------------------------------------------------------------ helpers for the protocol

    @property
    def _conn_offset(self) -> float:
        """Seconds on the stream's timeline of the current socket's t=0."""
        return self._conn_base / SAMPLE_RATE

    @property
    def _covered_seconds(self) -> float:
        return self._covered / SAMPLE_RATE

    def _cover(self, end: float) -> None:
        """Audio up to `end` (seconds on the stream's timeline) is final: stop holding it."""
        self._covered = max(self._covered, round(end * SAMPLE_RATE))
        self._ledger.release_to(self._covered)

    def _pushed_at(self, at: float) -> float:
        """Wall clock at which the sample at `at` seconds was pushed."""
        return self._ledger.pushed_at(int(at * SAMPLE_RATE))

    def _finalize_answered(self) -> None:
        self._finalized.set()

    # ------------------------------------------------------------ STTStream

    async def push_audio(self, pcm: AudioArray) -> None:
        if self._ended:
            raise STTError("push_audio after end_input")
        self._start()
        if len(pcm):
            self._ledger.append(float_to_linear16(pcm), time.time())
            self._wake.set()

    async def flush(self) -> None:
        """Ask the provider to finalise what it holds and close the utterance.

        Waits (up to `finalize_timeout`) for the answer. If it does not come
        (the socket is down, or nothing was pending) the latest interim
        hypothesis is taken as final and the covered offset moves past it, so
        the provider's own final for that audio, when it comes, is
        deduplicated away instead of repeating the words.
        """
        if self._ended:
            return
        self._start()
        self._finalized.clear()
        self._finalize_pending = True
        self._wake.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._options.finalize_timeout):
                await self._finalized.wait()
        self._finalize_pending = False
        promoted = self.utterances.promote_interim()
        if promoted is not None:
            self._cover(promoted)
        await self.utterances.end(None, time.time())

    def end_input(self) -> None:
        self._ended = True
        self._start()
        self._wake.set()

    def __aiter__(self) -> AsyncIterator[SpeechEvent]:
        self._start()
        return self._events()

    async def _events(self) -> AsyncIterator[SpeechEvent]:
        while (event := await self._out.get()) is not None:
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
        """(offset in seconds, samples) of pushed audio no final covers yet."""
        start = max(self._covered, self._ledger.first)
        self._ledger.release_to(start)
        return start / SAMPLE_RATE, self._ledger.samples()

    # ------------------------------------------------------------ runner

    def _start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"{self.provider}-stream")

    async def _run(self) -> None:
        policy = self._options.reconnect
        failures = 0
        try:
            while True:
                delay = policy.backoff(failures)
                if delay:
                    await asyncio.sleep(delay)
                try:
                    await self._connection()
                    break  # closed after our close request: done
                except Fatal as exc:
                    raise STTError(f"{self.provider} rejected the stream: {exc}", retryable=False) from exc
                except Dropped as exc:
                    progressed, last_error = exc.progressed, str(exc)
                except self.transient_errors as exc:
                    progressed, last_error = False, self._describe(exc)
                failures = 0 if progressed else failures + 1
                log.warning(
                    "%s: upstream lost (%s); reconnecting (%d/%d), replaying from %.2fs",
                    self.provider,
                    last_error,
                    failures,
                    policy.max_attempts,
                    self._covered_seconds,
                )
                if failures >= policy.max_attempts:
                    raise STTError(
                        f"{self.provider} unreachable after {failures} attempts ({last_error})",
                        retryable=False,
                    )
        except STTError as exc:
            await self.utterances.end(None, time.time())
            self._out.fail(exc)
            return
        except asyncio.CancelledError:
            self._out.close()
            raise
        except Exception as exc:  # a bug: surface it rather than hang the consumer
            log.exception("%s: stream failed", self.provider)
            await self.utterances.end(None, time.time())
            self._out.fail(STTError(f"{self.provider} stream failed: {exc}", retryable=False))
            return
        await self.utterances.end(None, time.time())
        self._out.close()

    async def _connection(self) -> None:
        """Run one socket until the provider closes it after our close request
        (returns) or it drops (raises `Dropped` with whether results came)."""
        self._close_sent = False
        start = max(self._covered, self._ledger.first)
        if start > self._covered:
            lost = (start - self._covered) / SAMPLE_RATE
            log.warning("%s: %.2fs of audio lost to the replay bound", self.provider, lost)
        async with contextlib.AsyncExitStack() as stack:
            async with asyncio.timeout(self._options.connect_timeout):
                conn = await self._connect(stack)
            self._conn_base = start
            progress = [False]
            sender = asyncio.create_task(self._send(conn, start), name=f"{self.provider}-send")
            receiver = asyncio.create_task(self._receive(conn, progress), name=f"{self.provider}-recv")
            try:
                done, _ = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
                if sender in done:
                    send_error = sender.exception()
                    if send_error is not None:
                        raise send_error
                if receiver not in done:  # close requested but no close within close_timeout
                    return
                error = receiver.exception()
                if error is not None:
                    raise Dropped(f"{type(error).__name__}: {error}", progress[0]) from error
                if not self._close_sent:
                    raise Dropped("closed by server", progress[0])
            finally:
                for task in (sender, receiver):
                    task.cancel()
                for task in (sender, receiver):
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task

    async def _send(self, conn: Any, start: int) -> None:
        """Audio from the ledger in order, keep-alives in silence, finalize on
        request, finalize + close after end_input."""
        options = self._options
        pos = start
        loop = asyncio.get_running_loop()
        last_sent = loop.time()
        try:
            while True:
                self._wake.clear()
                at, data = self._ledger.read(pos, options.send_chunk_samples)
                if data:
                    if at != pos:
                        log.warning(
                            "%s: skipping %.2fs of dropped audio", self.provider, (at - pos) / SAMPLE_RATE
                        )
                    await self._send_audio(conn, data)
                    pos = at + len(data) // 2
                    last_sent = loop.time()
                    continue
                if self._finalize_pending:
                    self._finalize_pending = False
                    await self._send_finalize(conn)
                    last_sent = loop.time()
                    continue
                if self._ended:
                    await self._send_finalize(conn)
                    await self._send_close(conn)
                    self._close_sent = True
                    await asyncio.sleep(options.close_timeout)
                    log.warning(
                        "%s: no close %.1fs after the close request; ending",
                        self.provider,
                        options.close_timeout,
                    )
                    return
                idle = loop.time() - last_sent
                if idle >= options.keepalive_interval:
                    await self._send_keepalive(conn)
                    last_sent = loop.time()
                    continue
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(options.keepalive_interval - idle):
                        await self._wake.wait()
        except self.closed_errors:
            await asyncio.Future()  # the receiver reports the drop; wait to be cancelled

    async def _receive(self, conn: Any, progress: list[bool]) -> None:
        async for message in conn:
            if await self._on_message(message):
                progress[0] = True
