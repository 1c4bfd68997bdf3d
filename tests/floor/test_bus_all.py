"""The bus's every-call subscription (the floor's): durable events of every
call, not ended by a call's end, and a lag reported rather than events lost."""

from __future__ import annotations

import asyncio

import pytest
from callpilot.server.bus import InProcessBus, Lagged
from callpilot.v1 import events_pb2


def event(call_id: str, sequence: int, durable: bool = True) -> events_pb2.CallEvent:
    return events_pb2.CallEvent(call_id=call_id, sequence=sequence, durable=durable)


async def test_every_call_durable_only_and_survives_a_call_end() -> None:
    bus = InProcessBus()
    sub = bus.subscribe_all()
    bus.publish(event("a", 1))
    bus.publish(event("a", 1, durable=False))
    bus.publish(event("b", 1))
    bus.finish("a")
    bus.publish(event("b", 2))
    got = [await asyncio.wait_for(sub.next(), 5) for _ in range(3)]
    assert [(e.call_id if e else None, e.sequence if e else None) for e in got] == [
        ("a", 1),
        ("b", 1),
        ("b", 2),
    ]
    sub.close()
    bus.publish(event("c", 1))
    assert sub._queue.empty()


async def test_a_full_queue_lags_instead_of_dropping_durable_events() -> None:
    bus = InProcessBus()
    sub = bus.subscribe_all(queue_size=2)
    for n in range(1, 4):
        bus.publish(event("a", n))
    with pytest.raises(Lagged):
        while True:
            await asyncio.wait_for(sub.next(), 5)
    sub.close()
