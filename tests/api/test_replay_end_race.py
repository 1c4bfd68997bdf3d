"""A watcher whose replay is being delivered when the call ends still gets call_ended.

The race seen under load: the watcher reads the last page of stored
events, and while it delivers them the call stores call_ended and closes
its session. Asked afterwards, `is_over` says the call is over; the
watcher must look in the store once more instead of ending without
call_ended.
"""

from __future__ import annotations

import asyncio

from callpilot.server.api.replay import replay_then_follow
from callpilot.server.bus import InProcessBus
from callpilot.v1 import call_pb2, common_pb2, events_pb2
from session.harness import MemoryCallLog


def _event(call_id: str, sequence: int) -> events_pb2.CallEvent:
    event = events_pb2.CallEvent(call_id=call_id, sequence=sequence, durable=True)
    event.time.GetCurrentTime()
    return event


async def test_a_call_ending_while_its_replay_is_delivered_still_ends_the_watch_with_call_ended() -> None:
    store = MemoryCallLog()
    call = call_pb2.Call(call_id="call-race", state=call_pb2.CALL_STATE_ACTIVE)
    await store.create_call(call)
    started = _event(call.call_id, 1)
    started.call_started.call.CopyFrom(call)
    await store.append_event(started)
    for n in (2, 3):
        turn = _event(call.call_id, n)
        turn.transcript.CopyFrom(
            events_pb2.TranscriptUpdate(
                segment_id=f"seg-{n}", role=common_pb2.SPEAKER_ROLE_CUSTOMER, text="hello", is_final=True
            )
        )
        await store.append_event(turn)
    ended = False

    async def is_over() -> bool:
        return ended

    bus = InProcessBus()
    got: list[events_pb2.CallEvent] = []
    async with asyncio.timeout(10):
        async for event in replay_then_follow(store, bus, call.call_id, after=0, is_over=is_over):
            got.append(event)
            if event.sequence == 3:
                # While the last stored event is being delivered, the call ends:
                # call_ended is stored, the session closes, the bus finishes it.
                ended_event = _event(call.call_id, 4)
                ended_event.call_ended.detail = "done"
                await store.append_event(ended_event)
                ended = True
                bus.finish(call.call_id)
    assert [e.sequence for e in got] == [1, 2, 3, 4]
    assert got[-1].HasField("call_ended")
