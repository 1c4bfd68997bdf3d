"""StreamCall and WatchCall clients that lag through the end of the call still finish.

A real gRPC server on loopback, with a bus whose per-subscriber queue holds
one event, so every subscriber lags as soon as two durable events are
published together, including at call_ended (the bus then finishes the
call). Both RPCs must replay from the store and end with call_ended, with
durable sequences 1, 2, 3, ... delivered once each.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from callpilot.server import metrics
from callpilot.server.api.assist import AssistServicer
from callpilot.server.bus import InProcessBus
from callpilot.server.manager import SessionManager
from callpilot.server.session import SessionDeps
from callpilot.v1 import assist_service_pb2 as pb
from callpilot.v1 import assist_service_pb2_grpc as pb_grpc
from callpilot.v1 import call_pb2, common_pb2, events_pb2
from session.harness import MemoryCallLog, ScriptedAssistant, ScriptedSTT, WritableDirectory, answer

TURNS = 6


@dataclass
class Rig:
    stub: pb_grpc.AssistServiceStub
    store: MemoryCallLog


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    store = MemoryCallLog()
    assistant = ScriptedAssistant(scripts=[answer("Apologise.", "Apo", "logise.") for _ in range(TURNS)])
    deps = SessionDeps(
        store=store,
        bus=InProcessBus(queue_size=1),
        stt=ScriptedSTT(),
        assistant=assistant,
        directory=WritableDirectory(),
    )
    manager = SessionManager(deps, tenant_id="default", max_calls=10)
    server = grpc.aio.server()
    pb_grpc.add_AssistServiceServicer_to_server(AssistServicer(manager, store, deps.bus), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Rig(pb_grpc.AssistServiceStub(channel), store)
    finally:
        await channel.close()
        await manager.drain(5.0)
        await server.stop(1.0)


async def _requests(call_id: str = "") -> AsyncIterator[pb.StreamCallRequest]:
    yield pb.StreamCallRequest(config=call_pb2.CallConfig(call_id=call_id))
    for n in range(TURNS):
        turn = pb.TextTurn(role=common_pb2.SPEAKER_ROLE_CUSTOMER, text=f"Order {n} arrived broken.")
        yield pb.StreamCallRequest(text_turn=turn)
    yield pb.StreamCallRequest(control=pb.CallControl(end_of_call=pb.EndOfCall(detail="done")))


def _check(events: list[events_pb2.CallEvent], stored: list[events_pb2.CallEvent], first: int = 1) -> None:
    durable = [e.sequence for e in events if e.durable]
    assert durable == list(range(first, len(durable) + first))
    assert events[-1].HasField("call_ended")
    assert durable == [e.sequence for e in stored if e.sequence >= first]


def _lags() -> float:
    return float(metrics.WATCHER_LAGS._value.get())


async def test_a_streamcall_that_lags_through_the_end_still_ends_with_call_ended(rig: Rig) -> None:
    lags = _lags()
    async with asyncio.timeout(20):
        events = [r.event async for r in rig.stub.StreamCall(_requests())]
    assert _lags() > lags, "the client never lagged: the test did not exercise the replay"
    stored = await rig.store.read_events(events[0].call_id, 1)
    _check(events, stored)
    assert events[0].HasField("call_started")


async def test_a_watchcall_that_lags_through_the_end_still_ends_with_call_ended(rig: Rig) -> None:
    created = await rig.stub.CreateCall(pb.CreateCallRequest(config=call_pb2.CallConfig()))
    call_id = created.call.call_id
    watch = rig.stub.WatchCall(pb.WatchCallRequest(call_id=call_id, from_sequence=1))
    lags = _lags()
    async with asyncio.timeout(20):
        watched_task = asyncio.create_task(_collect(watch))
        await asyncio.sleep(0.1)  # the watcher is subscribed and waiting
        streamed = [r.event async for r in rig.stub.StreamCall(_requests(call_id))]
        watched = await watched_task
    assert _lags() > lags
    stored = await rig.store.read_events(call_id, 1)
    _check(watched, stored)
    _check(streamed, stored)
    # Resuming from the last durable sequence + 1 of any prefix misses nothing.
    middle = stored[len(stored) // 2].sequence
    resumed = rig.stub.WatchCall(pb.WatchCallRequest(call_id=call_id, from_sequence=middle))
    async with asyncio.timeout(10):
        tail = await _collect(resumed)
    assert tail == [e for e in stored if e.sequence >= middle]


async def _collect(stream: AsyncIterator[pb.WatchCallResponse]) -> list[events_pb2.CallEvent]:
    return [r.event async for r in stream]


async def test_a_cancelled_streamcall_is_recorded_as_aborted_not_client_ended(rig: Rig) -> None:
    hold = asyncio.Event()

    async def requests() -> AsyncIterator[pb.StreamCallRequest]:
        yield pb.StreamCallRequest(config=call_pb2.CallConfig())
        turn = pb.TextTurn(role=common_pb2.SPEAKER_ROLE_CUSTOMER, text="Hello, anyone there?")
        yield pb.StreamCallRequest(text_turn=turn)
        await hold.wait()  # the client never closes its side: it cancels

    call = rig.stub.StreamCall(requests())
    async with asyncio.timeout(20):
        first = await call.read()
        call_id = first.event.call_id
        while (await call.read()).event.WhichOneof("payload") != "transcript":
            pass
        call.cancel()
        while True:
            stored = await rig.store.get_call(call_id)
            assert stored is not None
            if stored.state == call_pb2.CALL_STATE_ENDED:
                break
            await asyncio.sleep(0.05)
    assert stored.end_reason == call_pb2.CALL_END_REASON_STREAM_ABORTED
    events = await rig.store.read_events(call_id, 1)
    assert events[-1].HasField("call_ended")
