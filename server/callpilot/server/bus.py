"""Fan-out of a call's events to every watcher.

Audio must never wait for a slow watcher, so publishing never blocks: each
subscriber has a bounded queue. Policy when it is full: ephemeral events
(interim transcripts, suggestion deltas) are dropped for that subscriber;
a durable event that does not fit marks the subscriber as lagged, and its
consumer re-reads durable events from the store from the last sequence it
delivered (durable events are persisted before they are published, so the
store always has them). Durable events are therefore never lost, only
re-fetched.

`subscribe_all` is the tenant-wide view (the supervisor's floor): it gets
the durable events of every call, never ephemeral ones, with the same
bounded queue; on lag its consumer re-reads a snapshot from the store.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, defaultdict
from collections.abc import AsyncIterator

from callpilot.v1 import events_pb2

DEFAULT_QUEUE_SIZE = 512
ALL_CALLS = "*"
# The event kinds the supervisor's floor reads from `subscribe_all`; across
# instances (cluster/redis_bus.py) only these travel on the tenant's stream.
FLOOR_KINDS = frozenset({"call_started", "context", "alert", "call_ended"})
# Calls whose events ended recently: a subscriber arriving after the end
# (a watcher re-subscribing after a lag) ends at once instead of waiting on
# a call that will publish nothing more. Bounded, oldest forgotten first.
FINISHED_MEMORY = 10_000


class Lagged(Exception):
    """The subscriber fell behind; replay durable events from the store."""


class BusUnavailable(Exception):
    """Live events cannot be delivered (the cross-instance bus is down).

    The consumer ends its stream with UNAVAILABLE; the client resumes from
    its last sequence later, and the store fills in every durable event.
    """


class Subscription:
    """A bounded queue of one call's live events for one consumer.

    `call_id` is ALL_CALLS for a `subscribe_all` subscription.
    """

    def __init__(self, bus: InProcessBus, call_id: str, maxsize: int) -> None:
        self._bus = bus
        self.call_id = call_id
        self._queue: asyncio.Queue[events_pb2.CallEvent | None] = asyncio.Queue(maxsize)
        self.lagged = False
        self.closed = False
        self.failed: str | None = None

    def _offer(self, event: events_pb2.CallEvent) -> None:
        if self.lagged or self.closed:
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            if event.durable:
                self.lagged = True
                self._wake()

    def _wake(self) -> None:
        # Make room for the wake-up marker: dropping a queued item is safe
        # because the consumer replays from the store after a lag.
        if self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait(None)

    def _fail(self, why: str) -> None:
        self.failed = why
        self._end()

    def _end(self) -> None:
        self.closed = True
        if self._queue.full():
            self.lagged = True
            self._queue.get_nowait()
        self._queue.put_nowait(None)

    async def next(self) -> events_pb2.CallEvent | None:
        """The next live event; None when the call's stream of events is over.

        Raises Lagged when events were dropped for this subscriber.
        """
        if self.lagged:
            raise Lagged()
        event = await self._queue.get()
        if event is None:
            if self.failed is not None:
                raise BusUnavailable(self.failed)
            if self.lagged:
                raise Lagged()
            return None
        return event

    def __aiter__(self) -> AsyncIterator[events_pb2.CallEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[events_pb2.CallEvent]:
        while True:
            event = await self.next()
            if event is None:
                return
            yield event

    def close(self) -> None:
        self._bus._unsubscribe(self)


class InProcessBus:
    """The single-process bus; the default."""

    def __init__(self, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        self._subs: dict[str, set[Subscription]] = defaultdict(set)
        self._queue_size = queue_size
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._all: set[Subscription] = set()

    def subscribe(self, call_id: str, queue_size: int | None = None) -> Subscription:
        """A subscription to the call's live events; already ended if the call's events ended."""
        sub = Subscription(self, call_id, queue_size or self._queue_size)
        if call_id in self._finished:
            sub._end()
            return sub
        self._subs[call_id].add(sub)
        return sub

    def subscribe_all(self, queue_size: int | None = None) -> Subscription:
        """Durable events of every call, until closed (a call's end does not end it)."""
        sub = Subscription(self, ALL_CALLS, queue_size or self._queue_size)
        self._all.add(sub)
        return sub

    def open(self, call_id: str) -> None:
        """A session (re-)attached to the call: its events flow again."""
        self._finished.pop(call_id, None)

    def _unsubscribe(self, sub: Subscription) -> None:
        if sub.call_id == ALL_CALLS:
            self._all.discard(sub)
            return
        subs = self._subs.get(sub.call_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.call_id]

    def publish(self, event: events_pb2.CallEvent) -> None:
        for sub in list(self._subs.get(event.call_id, ())):
            sub._offer(event)
        if event.durable:
            for sub in list(self._all):
                sub._offer(event)

    def finish(self, call_id: str) -> None:
        """The call ended: every subscriber's iteration ends after what it has queued."""
        self._finished[call_id] = None
        self._finished.move_to_end(call_id)
        while len(self._finished) > FINISHED_MEMORY:
            self._finished.popitem(last=False)
        for sub in list(self._subs.pop(call_id, ())):
            sub._end()

    def fail(self, call_id: str, why: str) -> None:
        """Live delivery for the call broke: every subscriber's `next` raises BusUnavailable."""
        for sub in list(self._subs.pop(call_id, ())):
            sub._fail(why)

    def subscriber_count(self, call_id: str) -> int:
        return len(self._subs.get(call_id, ()))
