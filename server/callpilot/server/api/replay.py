"""The no-gaps guarantee, written once: replay stored events, then follow live ones.

Used by StreamCall (after a lag) and WatchCall. Rules (see CallEvent.sequence):

- `last` is the sequence of the last durable event delivered. A durable
  event is delivered only if its sequence is greater; durable events are
  therefore delivered once each, in order, without gaps.
- Ephemeral events are delivered live only, and only if they were emitted
  after the last durable event delivered (their sequence >= `last`); they
  are never replayed.
- The subscription is taken before the store is read, so an event stored
  after the read is queued; duplicates are dropped by sequence.
- A durable event that skips a sequence (a bus across instances dropped
  or has not yet delivered some) first sends the watcher to the store for
  what lies before it; a subscription quiet for `IDLE_RECHECK_S` also
  re-reads the store. A bus that cannot deliver at all ends the stream with
  UNAVAILABLE naming the sequence to resume from.
- When the subscriber lags (its bounded queue overflowed with a durable
  event) it re-subscribes and replays from the store. When the call's
  events end (bus finished, or call_ended delivered) the function returns:
  durable events are stored before they are published, so whatever the
  bus did not deliver is in the store, call_ended included.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from callpilot.server import metrics
from callpilot.server.bus import BusUnavailable, InProcessBus, Lagged, Subscription
from callpilot.server.errors import Unavailable
from callpilot.server.store.protocols import CallLog
from callpilot.v1 import events_pb2

# Events per store read: what one watcher holds in memory at a time while it replays
# (a transcript event is at most ~40 KB, so a page stays in the low megabytes).
REPLAY_PAGE = 100
# A watcher whose subscription is quiet this long re-reads the store: with a
# bus across instances, an event can be stored before its live copy arrives.
IDLE_RECHECK_S = 5.0


async def _stored(store: CallLog, call_id: str, after: int) -> AsyncIterator[events_pb2.CallEvent]:
    """Stored events after `after`, read a page at a time (a long call is not loaded at once)."""
    while True:
        page = await store.read_events(call_id, after + 1, REPLAY_PAGE)
        for event in page:
            after = event.sequence
            yield event
        if len(page) < REPLAY_PAGE:
            return


async def replay_then_follow(
    store: CallLog,
    bus: InProcessBus,
    call_id: str,
    *,
    after: int,
    is_over: Callable[[], Awaitable[bool]],
    subscription: Subscription | None = None,
) -> AsyncIterator[events_pb2.CallEvent]:
    """Every event of `call_id` after durable sequence `after`, until call_ended.

    `is_over` says whether the call has ended with no live session (its
    events will never be published again); it is asked after each replay,
    so a watcher of a call that ended without a stored call_ended (old data)
    does not wait forever; when it says so, the store is read once more
    after the last event delivered (call_ended may have been stored while
    the replay was being delivered). `subscription`, if given, is one
    already taken (StreamCall subscribes before the call starts, to miss
    nothing).
    """
    last = after
    sub = subscription if subscription is not None else bus.subscribe(call_id)
    replay = subscription is None
    try:
        while True:
            if replay:
                async for event in _stored(store, call_id, last):
                    last = event.sequence
                    yield event
                    if event.HasField("call_ended"):
                        return
                if await is_over():
                    # The call may have ended while the replay above was being
                    # delivered (after its last read): once it is over the store
                    # is final, so read what came after once more.
                    async for event in _stored(store, call_id, last):
                        last = event.sequence
                        yield event
                    return
            replay = True
            idle = False
            try:
                while True:
                    try:
                        live = await asyncio.wait_for(sub.next(), IDLE_RECHECK_S)
                    except TimeoutError:
                        # Quiet for a while: look in the store (an event another
                        # instance stored may not have reached this one's bus).
                        idle = True
                        break
                    if live is None:
                        break
                    event = live
                    if event.durable:
                        if event.sequence <= last:
                            continue
                        if event.sequence > last + 1:
                            # A gap (a cross-instance bus dropped or has not yet
                            # delivered some): the store has everything before it.
                            async for stored in _stored(store, call_id, last):
                                if stored.sequence >= event.sequence:
                                    break
                                last = stored.sequence
                                yield stored
                                if stored.HasField("call_ended"):
                                    return
                        last = event.sequence
                    elif event.sequence < last:
                        continue
                    metrics.EMIT_TO_WATCHER.observe(max(0.0, time.time() - event.time.ToNanoseconds() / 1e9))
                    yield event
                    if event.HasField("call_ended"):
                        return
                if idle:
                    continue  # replay from the store, then go on following
            except Lagged:
                metrics.WATCHER_LAGS.inc()
                sub.close()
                sub = bus.subscribe(call_id)
                continue
            except BusUnavailable as exc:
                err = Unavailable(
                    f"{exc}; resume with from_sequence={last + 1}",
                    metadata={"call_id": call_id, "next_sequence": str(last + 1)},
                )
                err.reason = "LIVE_EVENTS_UNAVAILABLE"
                raise err from None
            # The bus finished the call: anything durable left is in the store.
            async for event in _stored(store, call_id, last):
                last = event.sequence
                yield event
                if event.HasField("call_ended"):
                    return
            return
    finally:
        sub.close()
