"""The bus never blocks a publisher and never loses a durable event silently."""

from __future__ import annotations

import asyncio

import pytest
from callpilot.server.bus import InProcessBus, Lagged
from callpilot.v1 import events_pb2


def event(seq: int, *, durable: bool) -> events_pb2.CallEvent:
    return events_pb2.CallEvent(call_id="c1", sequence=seq, durable=durable)


async def test_ephemeral_events_are_dropped_for_a_slow_subscriber() -> None:
    bus = InProcessBus(queue_size=4)
    sub = bus.subscribe("c1")
    for seq in range(1, 11):
        bus.publish(event(seq, durable=False))  # never blocks
    got = [await sub.next() for _ in range(4)]
    assert [e.sequence for e in got if e] == [1, 2, 3, 4]
    assert not sub.lagged


async def test_a_durable_event_that_does_not_fit_marks_the_subscriber_lagged() -> None:
    bus = InProcessBus(queue_size=3)
    sub = bus.subscribe("c1")
    for seq in range(1, 6):
        bus.publish(event(seq, durable=True))
    assert sub.lagged
    with pytest.raises(Lagged):
        await sub.next()


async def test_finish_ends_iteration_after_queued_events() -> None:
    bus = InProcessBus()
    sub = bus.subscribe("c1")
    bus.publish(event(1, durable=True))
    bus.publish(event(2, durable=False))
    bus.finish("c1")
    assert [e.sequence async for e in sub] == [1, 2]
    assert bus.subscriber_count("c1") == 0


async def test_finish_with_a_full_queue_still_wakes_the_consumer() -> None:
    bus = InProcessBus(queue_size=2)
    sub = bus.subscribe("c1")
    bus.publish(event(1, durable=True))
    bus.publish(event(2, durable=True))
    bus.finish("c1")
    with pytest.raises(Lagged):
        async with asyncio.timeout(5):
            while await sub.next() is not None:
                pass


async def test_other_calls_are_not_affected() -> None:
    bus = InProcessBus(queue_size=1)
    slow, other = bus.subscribe("c1"), bus.subscribe("c2")
    for seq in range(1, 4):
        bus.publish(event(seq, durable=True))
    bus.publish(events_pb2.CallEvent(call_id="c2", sequence=1, durable=True))
    assert slow.lagged and not other.lagged
    got = await other.next()
    assert got is not None and got.call_id == "c2"


async def test_a_subscriber_arriving_after_the_end_ends_at_once() -> None:
    """A watcher re-subscribing after a lag must not wait on a call that publishes nothing more."""
    bus = InProcessBus()
    bus.finish("c1")
    late = bus.subscribe("c1")
    async with asyncio.timeout(5):
        assert [e async for e in late] == []
    # A session re-attached to the call makes its events flow again.
    bus.open("c1")
    again = bus.subscribe("c1")
    bus.publish(event(1, durable=True))
    bus.finish("c1")
    async with asyncio.timeout(5):
        assert [e.sequence async for e in again] == [1]
