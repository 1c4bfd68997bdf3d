"""One call's event log: numbering, persistence and publication.

Invariants:

- Durable events are numbered 1, 2, 3, ... with no gaps and no reuse, in
  the order they are stored and published. The number is allocated, the
  event stored and the counter advanced in one step that runs in its own
  task (`asyncio.shield`): a caller cancelled mid-write cannot leave the
  counter behind the store (the cause of "event N was already written" on
  every later event, call_ended included) nor ahead of it.
- An ephemeral event (interim transcript, suggestion delta, speech activity)
  consumes no number: it carries the sequence of the latest durable event
  published before it (0 before any) and `durable=false`. A watcher that
  resumes from "last durable sequence delivered + 1" therefore can never
  miss a durable event, before or after a crash.
- Publication order equals emission order (one lock); a durable event is
  published only once it is stored, so a lagging watcher finds it in the
  store.
- `after_durable`, when set (the alert stage), sees every durable event once
  it is stored, outside the lock, so it may emit events of its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from callpilot.server import metrics
from callpilot.server.bus import InProcessBus
from callpilot.server.errors import AlreadyExists, FailedPrecondition
from callpilot.server.store.protocols import CallLog
from callpilot.v1 import events_pb2
from google.protobuf.message import Message

log = logging.getLogger("callpilot.session")


class EventLog:
    """Numbers, stores (when durable) and publishes the events of one call."""

    def __init__(self, call_id: str, store: CallLog, bus: InProcessBus, *, last_sequence: int) -> None:
        self.call_id = call_id
        self._store = store
        self._bus = bus
        self._last = last_sequence
        self._lock = asyncio.Lock()
        self.after_durable: Callable[[events_pb2.CallEvent], Awaitable[None]] | None = None
        # Many instances: set when this instance lost the call's ownership
        # lease; from then on it writes nothing more into the call.
        self.fenced: str | None = None
        # Durable writes still running (their caller may have been cancelled).
        self._inflight: set[asyncio.Future[None]] = set()
        # Many instances: asked before continuing after a store that is ahead
        # of the counter, so a stale owner stops instead of interleaving.
        self.still_owner: Callable[[], Awaitable[bool]] | None = None

    def when_settled(self, callback: Callable[[], None]) -> None:
        """Run `callback` once every durable write already started has finished.

        The end of a call must not be announced (bus finished, session closed)
        before its call_ended is stored, even when the ending task was
        cancelled while that write ran on in its own task.
        """
        pending = [f for f in self._inflight if not f.done()]
        if not pending:
            callback()
            return
        gathered = asyncio.gather(*pending, return_exceptions=True)
        gathered.add_done_callback(lambda _f: callback())

    @property
    def last_sequence(self) -> int:
        """The sequence of the latest durable event stored (and published)."""
        return self._last

    async def emit(
        self,
        *,
        durable: bool,
        timings: events_pb2.EventTimings | None = None,
        **payload: Message,
    ) -> events_pb2.CallEvent:
        """Number, store when durable, then publish one event; returns it as published.

        A durable event is stored even if the caller is cancelled while it
        waits: the write runs to completion in its own task.
        """
        event = events_pb2.CallEvent(call_id=self.call_id, durable=durable)
        for name, message in payload.items():
            getattr(event, name).CopyFrom(message)
        if timings is not None:
            event.timings.CopyFrom(timings)
        if durable:
            commit = asyncio.ensure_future(self._commit(event))
            commit.add_done_callback(_retrieve)
            self._inflight.add(commit)
            commit.add_done_callback(self._inflight.discard)
            await asyncio.shield(commit)
        else:
            async with self._lock:
                event.sequence = self._last
                event.time.GetCurrentTime()
                self._bus.publish(event)
        kind = event.WhichOneof("payload") or "none"
        metrics.EVENTS.labels(kind=kind, durable=str(durable).lower()).inc()
        if durable and self.after_durable is not None:
            await self.after_durable(event)
        return event

    async def _commit(self, event: events_pb2.CallEvent) -> None:
        async with self._lock:
            if self.fenced is not None:
                raise FailedPrecondition(
                    self.fenced, reason="CALL_OWNER_CHANGED", metadata={"call_id": self.call_id}
                )
            event.sequence = self._last + 1
            event.time.GetCurrentTime()
            try:
                await self._store.append_event(event)
            except AlreadyExists:
                # The store is ahead of this counter: a previous process (or a
                # write whose acknowledgement was lost) stored more than we
                # know. Continue after what is stored rather than fail forever.
                call = await self._store.get_call(self.call_id)
                if call is None or call.last_sequence < event.sequence:
                    raise
                if self.still_owner is not None and not await self.still_owner():
                    self.fenced = "another instance owns this call now"
                    raise
                log.warning(
                    "call %s: event log was behind the store (%d < %d); continuing after it",
                    self.call_id,
                    self._last,
                    call.last_sequence,
                )
                self._last = call.last_sequence
                event.sequence = self._last + 1
                await self._store.append_event(event)
            self._last = event.sequence
            self._bus.publish(event)


def _retrieve(task: asyncio.Future[None]) -> None:
    # The waiter may have been cancelled: the error still reaches the log.
    if not task.cancelled() and task.exception() is not None:
        log.debug("event commit failed", exc_info=task.exception())
