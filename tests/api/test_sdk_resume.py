"""The Python SDK's resuming watch follows the sequence rules.

A real gRPC server on loopback whose WatchCall is scripted: the first
stream sends durable and ephemeral events, then fails with UNAVAILABLE;
the second replays with an overlap. The SDK must resume from the last
durable sequence + 1, deliver each durable event once, and keep ephemeral
events (which carry the sequence of the durable event before them).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
from callpilot.client import AsyncCallpilot
from callpilot.v1 import assist_service_pb2 as pb
from callpilot.v1 import assist_service_pb2_grpc as pb_grpc
from callpilot.v1 import events_pb2


def _durable(seq: int, code: str) -> events_pb2.CallEvent:
    return events_pb2.CallEvent(call_id="c1", sequence=seq, durable=True, notice=events_pb2.Notice(code=code))


def _ephemeral(seq: int, text: str) -> events_pb2.CallEvent:
    return events_pb2.CallEvent(
        call_id="c1", sequence=seq, durable=False, suggestion_delta=events_pb2.SuggestionDelta(text=text)
    )


class ScriptedWatch(pb_grpc.AssistServiceServicer):
    def __init__(self) -> None:
        self.requested: list[int] = []

    async def WatchCall(
        self, request: pb.WatchCallRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.WatchCallResponse]:
        self.requested.append(request.from_sequence)
        if len(self.requested) == 1:
            for event in (_durable(1, "d1"), _ephemeral(1, "e1"), _durable(2, "d2"), _ephemeral(2, "e2")):
                yield pb.WatchCallResponse(event=event)
            await context.abort(grpc.StatusCode.UNAVAILABLE, "connection dropped")
        ended = events_pb2.CallEvent(
            call_id="c1", sequence=4, durable=True, call_ended=events_pb2.CallEnded()
        )
        for event in (_durable(2, "d2"), _durable(3, "d3"), _ephemeral(3, "e3"), ended):
            yield pb.WatchCallResponse(event=event)


def _label(event: events_pb2.CallEvent) -> str:
    if event.HasField("notice"):
        return event.notice.code
    if event.HasField("suggestion_delta"):
        return event.suggestion_delta.text
    return event.WhichOneof("payload") or ""


async def test_watch_call_resumes_from_the_last_durable_sequence() -> None:
    servicer = ScriptedWatch()
    server = grpc.aio.server()
    pb_grpc.add_AssistServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with AsyncCallpilot(f"127.0.0.1:{port}") as client, asyncio.timeout(20):
            events = [e async for e in client.watch_call("c1")]
    finally:
        await server.stop(1.0)
    assert [_label(e) for e in events] == ["d1", "e1", "d2", "e2", "d3", "e3", "call_ended"]
    assert servicer.requested == [1, 3]
