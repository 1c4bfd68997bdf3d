"""Calls created ahead of their stream, one stream per call, live watchers."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from callpilot.client import AsyncCallpilot, CallpilotError
from callpilot.v1 import call_pb2, common_pb2, events_pb2
from support import ServerProcess

CUSTOMER = common_pb2.SPEAKER_ROLE_CUSTOMER


async def test_stream_attaches_to_a_created_call(server: ServerProcess) -> None:
    async with AsyncCallpilot(server.address) as cp:
        created = await cp.create_call(call_pb2.CallConfig(labels={"queue": "returns"}))
        call = cp.stream_call(None, call_pb2.CallConfig(call_id=created.call_id), end_when_audio_ends=False)
        async with call:
            events = call.__aiter__()
            first = await asyncio.wait_for(events.__anext__(), 30)
            assert first.call_id == created.call_id and first.HasField("call_started")
            assert first.call_started.call.config.labels["queue"] == "returns"

            # A second stream for the same live call is refused.
            other = cp.stream_call(None, call_pb2.CallConfig(call_id=created.call_id))
            with pytest.raises(CallpilotError) as info:
                async with other:
                    _ = [e async for e in other]
            assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION
            assert info.value.reason == "CALL_ALREADY_STREAMING"

            await call.end()
            rest = [e async for e in events]
        assert rest[-1].HasField("call_ended")

        ended = cp.stream_call(None, call_pb2.CallConfig(call_id=created.call_id))
        with pytest.raises(CallpilotError) as info:
            async with ended:
                _ = [e async for e in ended]
        assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION and info.value.reason == "CALL_ENDED"


async def test_watchers_see_the_call_live(server: ServerProcess) -> None:
    """Two watchers, one from the start and one joining late, each see every
    durable event once, in order, and end with the call."""
    async with AsyncCallpilot(server.address) as cp:
        call = cp.stream_call(None, call_pb2.CallConfig(), end_when_audio_ends=False)
        async with call:
            stream_events = call.__aiter__()
            started = await asyncio.wait_for(stream_events.__anext__(), 30)
            call_id = started.call_id

            async def watch() -> list[events_pb2.CallEvent]:
                async with asyncio.timeout(60):
                    return [e async for e in cp.watch_call(call_id)]

            early = asyncio.create_task(watch())
            await call.send_text(CUSTOMER, "Hello, I need help with order 78901.")
            seen = [started]
            async for event in stream_events:
                seen.append(event)
                if event.HasField("suggestion_completed"):
                    break
            late = asyncio.create_task(watch())
            await call.send_text(CUSTOMER, "I would like to return it.")
            await call.end()
            seen.extend([e async for e in stream_events])
        durable = [e for e in seen if e.durable]
        for watched in await asyncio.gather(early, late):
            kept = [e for e in watched if e.durable]
            assert kept == durable
            assert watched[-1].HasField("call_ended")
            # Durable sequences strictly increase; ephemeral events repeat the one before them.
            sequences = [e.sequence for e in watched if e.durable]
            assert sequences == sorted(set(sequences))
            assert [e.sequence for e in watched] == sorted(e.sequence for e in watched)
