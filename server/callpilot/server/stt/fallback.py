"""An engine that hands a speaker to a second engine when the first fails for good.

`FallbackEngine(primary, fallback)` is an `STTEngine` like any other, so the
session needs no fallback logic: it opens one stream per speaker and reads
events. A `FallbackStream` forwards to the primary's stream until that stream
ends with `STTError(retryable=False)` (a cloud engine out of reconnection
attempts, a revoked key). Then, once per stream:

1. the primary's `unfinalised_audio()` (audio pushed but not yet covered by a
   FINAL, with its offset) is taken, a fallback stream is opened and becomes
   the target of `push_audio` before any await, so no chunk goes to the
   failed stream;
2. one `DEGRADED` event says why (the session turns it into a notice);
3. the unfinalised audio is replayed into the fallback stream by a task of
   its own (the iterator keeps draining the fallback's events meanwhile, so a
   long replay cannot dead-lock on the fallback's bounded queues); audio
   pushed during the replay waits for it (back-pressure, as when a decoder
   is behind), so it reaches the fallback after the replayed audio, in order;
4. the fallback's events are placed on the stream's timeline (their offsets
   shifted by where the replay starts) and its utterances numbered after the
   last one the primary used, so utterance ids stay unique per stream.

`end_input` before the switch goes to the primary (and, if the primary then
fails, to the fallback after the replay); during the replay it is passed on
when the replay is done; after it, to the fallback. A retryable `STTError`,
any other exception, or a failure of the fallback itself ends the iteration
with that error, as for a single engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Sequence

from callpilot.server.stt.base import (
    SAMPLE_RATE,
    AudioArray,
    SpeechEvent,
    SpeechEventKind,
    STTEngine,
    STTError,
    STTStream,
)

log = logging.getLogger(__name__)

REPLAY_CHUNK_SAMPLES = SAMPLE_RATE // 2
"""The replay goes in half-second pieces so the endpointer never holds the loop for long."""


class FallbackEngine(STTEngine):
    """`primary`'s streams, each handed to `fallback` if it fails for good.

    fallback_name: how the DEGRADED text names the fallback ("the embedded engine").
    """

    def __init__(
        self, primary: STTEngine, fallback: STTEngine, *, fallback_name: str = "the embedded engine"
    ) -> None:
        self.primary = primary
        self.fallback = fallback
        self.fallback_name = fallback_name
        self.capabilities = primary.capabilities

    def stream(self, *, language: str, phrase_hints: Sequence[str] = ()) -> FallbackStream:
        return FallbackStream(self, language=language, phrase_hints=phrase_hints)

    async def warm_up(self) -> None:
        """Both engines: a misconfigured primary fails at start-up, and the fallback is ready."""
        await self.primary.warm_up()
        await self.fallback.warm_up()

    async def aclose(self) -> None:
        results = await asyncio.gather(self.primary.aclose(), self.fallback.aclose(), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                log.warning("closing an STT engine failed: %s", result)


class FallbackStream(STTStream):
    """One speaker on the primary engine, then (after a fatal failure) on the fallback."""

    def __init__(self, engine: FallbackEngine, *, language: str, phrase_hints: Sequence[str]) -> None:
        self._engine = engine
        self._language = language
        self._phrase_hints = tuple(phrase_hints)
        self._primary = engine.primary.stream(language=language, phrase_hints=phrase_hints)
        self._fallback: STTStream | None = None
        self._active = self._primary
        self._pushed = 0  # samples pushed so far (the timeline when the primary keeps no audio)
        self._offset = 0.0  # seconds: where the fallback's t=0 sits on the stream's timeline
        self._next_utterance = 0  # first utterance number the fallback may use
        self._replayed = asyncio.Event()  # set except while the replay runs
        self._replayed.set()
        self._replay: asyncio.Task[None] | None = None
        self._ended = False
        self._closed = False
        self._context: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())

    @property
    def degraded(self) -> bool:
        """Whether the stream has switched to the fallback."""
        return self._fallback is not None

    # ------------------------------------------------------------ STTStream

    async def push_audio(self, pcm: AudioArray) -> None:
        if self._ended:
            raise STTError("push_audio after end_input")
        if not self._replayed.is_set():
            await self._replayed.wait()
        self._pushed += len(pcm)
        await self._active.push_audio(pcm)

    async def flush(self) -> None:
        if not self._replayed.is_set():
            await self._replayed.wait()
        await self._active.flush()

    def end_input(self) -> None:
        if self._ended:
            return
        self._ended = True
        if self._replayed.is_set():
            self._active.end_input()
        # else: the replay passes it on once the replayed audio is in

    def __aiter__(self) -> AsyncIterator[SpeechEvent]:
        return self._events()

    async def aclose(self) -> None:
        self._closed = True
        self._ended = True
        if self._replay is not None and not self._replay.done():
            self._replay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._replay
        self._replayed.set()
        streams = [self._primary] if self._fallback is None else [self._fallback, self._primary]
        for stream in streams:
            with contextlib.suppress(Exception):
                await stream.aclose()

    def update_context(self, *, names: Sequence[str] = (), numbers: Sequence[str] = ()) -> None:
        """Passed to the active stream, and remembered for a fallback opened later."""
        self._context = (tuple(names), tuple(numbers))
        self._active.update_context(names=names, numbers=numbers)

    def unfinalised_audio(self) -> tuple[float, AudioArray | None]:
        offset, audio = self._active.unfinalised_audio()
        return (offset + self._offset if self._fallback is not None else offset), audio

    # ------------------------------------------------------------ events

    async def _events(self) -> AsyncIterator[SpeechEvent]:
        try:
            async for event in self._primary:
                self._next_utterance = max(self._next_utterance, event.utterance + 1)
                yield event
            return
        except STTError as exc:
            if exc.retryable or self._closed:
                raise
            failure = exc
        yield self._switch(failure)
        fallback = self._fallback
        assert fallback is not None
        async for event in fallback:
            yield dataclasses.replace(
                event,
                utterance=event.utterance + self._next_utterance,
                start=event.start + self._offset,
                end=event.end + self._offset,
            )

    def _switch(self, failure: STTError) -> SpeechEvent:
        """Open the fallback, make it the target of push_audio and start the replay.

        Synchronous on purpose: nothing can be pushed into the failed stream
        between taking its unfinalised audio and the swap.
        """
        offset, pending = self._primary.unfinalised_audio()
        if pending is None:  # the primary keeps no audio: the fallback starts at the present
            offset = self._pushed / SAMPLE_RATE
        fallback = self._engine.fallback.stream(language=self._language, phrase_hints=self._phrase_hints)
        names, numbers = self._context
        if names or numbers:
            fallback.update_context(names=names, numbers=numbers)
        self._fallback = fallback
        self._active = fallback
        self._offset = offset
        self._replayed.clear()
        self._replay = asyncio.get_running_loop().create_task(
            self._replay_into(fallback, pending), name="stt-fallback-replay"
        )
        reason = f"Speech recognition switched to {self._engine.fallback_name}: {failure}"
        log.warning("%s (replaying %.2fs)", reason, 0.0 if pending is None else len(pending) / SAMPLE_RATE)
        return SpeechEvent(
            kind=SpeechEventKind.DEGRADED,
            utterance=self._next_utterance,
            text=reason,
            start=offset,
            end=offset,
        )

    async def _replay_into(self, fallback: STTStream, pending: AudioArray | None) -> None:
        """Push the failed stream's unfinalised audio into the fallback, then release the pushers."""
        try:
            if pending is not None:
                for i in range(0, len(pending), REPLAY_CHUNK_SAMPLES):
                    await fallback.push_audio(pending[i : i + REPLAY_CHUNK_SAMPLES])
                    await asyncio.sleep(0)
        except STTError as exc:  # the fallback is closed or failed: its iterator reports it
            log.warning("replaying unfinalised audio into the fallback failed: %s", exc)
        finally:
            self._replayed.set()
            if self._ended and not self._closed:
                fallback.end_input()
            with contextlib.suppress(Exception):
                await self._primary.aclose()
