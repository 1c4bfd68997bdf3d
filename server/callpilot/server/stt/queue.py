"""The bounded hand-off of `SpeechEvent`s from a recogniser to the stream's consumer.

Every engine (the locally endpointed ones in `streaming`, the websocket ones
built on `replay`) delivers through one `EventQueue`, so the queue policy is
the same whatever the provider:

  * durable events (START_OF_SPEECH, END_OF_SPEECH, FINAL, DEGRADED) are never
    dropped: `put` waits for room, which back-pressures the producer (the
    decoder, or the socket reader and so the provider's own buffers);
  * an INTERIM replaces an undelivered INTERIM of the same utterance
    (interims replace each other anyway), and is dropped when there is none
    to replace and the queue is full;
  * `fail(error)` ends the stream with an error the consumer raises after
    the events already queued, so finals emitted before a failure are kept.
"""

from __future__ import annotations

import asyncio
from collections import deque

from callpilot.server.stt.base import SpeechEvent, SpeechEventKind

__all__ = ["EventQueue"]


class EventQueue:
    """Bounded FIFO of `SpeechEvent`s with the policy described in the module docstring.

    Single consumer; any number of producers on the same event loop.
    """

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("EventQueue maxsize must be at least 1")
        self.maxsize = maxsize
        self._items: deque[SpeechEvent] = deque()
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self._closed = False
        self._error: BaseException | None = None
        self.interims_dropped = 0
        self.interims_coalesced = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    async def put(self, event: SpeechEvent) -> None:
        """Append a durable event, waiting for room; silently discarded once the queue is closed."""
        while len(self._items) >= self.maxsize and not self._closed:
            await self._writable.wait()
        self.put_force(event)

    def put_force(self, event: SpeechEvent) -> None:
        """Append without waiting, past `maxsize` if need be.

        Only for the one event `end_input` (a sync method) must enqueue, so the
        overshoot is bounded by a single event per stream.
        """
        if self._closed:
            return
        self._items.append(event)
        self._changed()

    def put_interim(self, event: SpeechEvent) -> bool:
        """Coalesce or drop-when-full; returns whether the interim is now queued."""
        if self._closed:
            return False
        for i in range(len(self._items) - 1, -1, -1):
            queued = self._items[i]
            if queued.utterance == event.utterance and queued.kind is SpeechEventKind.INTERIM:
                self._items[i] = event
                self.interims_coalesced += 1
                return True
        if len(self._items) >= self.maxsize:
            self.interims_dropped += 1
            return False
        self._items.append(event)
        self._changed()
        return True

    async def get(self) -> SpeechEvent | None:
        """Next event; None once closed and drained. Raises the error passed to `fail`, after the events."""
        while not self._items and not self._closed:
            await self._readable.wait()
        if self._items:
            event = self._items.popleft()
            self._changed()
            return event
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        return None

    def close(self, *, discard: bool = False) -> None:
        """No more events; the consumer drains what is queued (or nothing, with `discard`)."""
        self._closed = True
        if discard:
            self._items.clear()
        self._changed()

    def fail(self, error: BaseException) -> None:
        """Close, and have the consumer raise `error` after the queued events."""
        if not self._closed:
            self._error = error
        self.close()

    def _changed(self) -> None:
        if self._items or self._closed:
            self._readable.set()
        else:
            self._readable.clear()
        if len(self._items) < self.maxsize or self._closed:
            self._writable.set()
        else:
            self._writable.clear()
