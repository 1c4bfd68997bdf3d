"""Two server instances on one PostgreSQL and one Redis, as deployed.

StreamCall on A, everything else on B: B's watcher sees the live call
(ephemeral events included) with gapless durable sequences; EndCall and tool
decisions sent to B take effect on A; SIGKILL of A ends the call OWNER_LOST
on B with its finals; Redis lost mid-call leaves A's call running and gives
B's watcher UNAVAILABLE, from which it resumes once Redis is back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from callpilot.client import AsyncCallpilot, CallpilotError
from callpilot.v1 import call_pb2, common_pb2, events_pb2
from redis_support import RedisProcess
from support import ROOT, ServerProcess, create_pg_database, drop_pg_database, run_async

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
CUSTOMER = common_pb2.SPEAKER_ROLE_CUSTOMER
STEP_S = 30.0
ARTIFACTS = ROOT / "artifacts"


@dataclass
class Pair:
    a: ServerProcess
    b: ServerProcess
    redis: RedisProcess
    env: dict[str, str]


@pytest.fixture
def pair(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Pair]:
    url = run_async(create_pg_database())
    assert isinstance(url, str)
    redis = RedisProcess()
    redis.start()
    env = {
        "CALLPILOT_DATABASE_URL": url,
        "CALLPILOT_DATA_DIR": str(tmp_path),
        "CALLPILOT_STT": "null",
        "CALLPILOT_REDIS_URL": redis.url,
    }
    marker = request.node.get_closest_marker("server_env")
    if marker is not None:
        env.update(marker.args[0])
    name = request.node.name.replace("[", "-").replace("]", "")
    a = ServerProcess(env, ARTIFACTS / f"server-{name}-a.log").start()
    b = ServerProcess(env, ARTIFACTS / f"server-{name}-b.log").start()
    try:
        yield Pair(a, b, redis, env)
    finally:
        a.stop()
        b.stop()
        redis.stop()
        run_async(drop_pg_database(url))


def _open(cp: AsyncCallpilot):  # type: ignore[no-untyped-def]
    hint = call_pb2.CustomerHint(customer_id="C-1001")
    return cp.stream_call(None, call_pb2.CallConfig(customer_hint=hint), end_when_audio_ends=False)


async def _until(
    events: AsyncIterator[events_pb2.CallEvent], seen: list[events_pb2.CallEvent], what: str, pred
):  # type: ignore[no-untyped-def]
    async with asyncio.timeout(STEP_S):
        async for event in events:
            seen.append(event)
            if pred(event):
                return event
    raise AssertionError(f"stream ended before {what}")


def _gapless(events: list[events_pb2.CallEvent]) -> None:
    durable = [e.sequence for e in events if e.durable]
    assert durable == list(range(1, len(durable) + 1)), durable


async def test_watch_on_b_sees_the_live_call_on_a_and_endcall_on_b_ends_it(pair: Pair) -> None:
    async with AsyncCallpilot(pair.a.address) as on_a, AsyncCallpilot(pair.b.address) as on_b:
        a_events: list[events_pb2.CallEvent] = []
        async with _open(on_a) as call:
            a_iter = call.__aiter__()
            started = await _until(a_iter, a_events, "call_started", lambda e: e.HasField("call_started"))
            watched: list[events_pb2.CallEvent] = []
            watcher = on_b.watch_call(started.call_id, from_sequence=1, resume=False).__aiter__()
            await _until(watcher, watched, "call_started on B", lambda e: e.HasField("call_started"))
            await call.send_text(CUSTOMER, "Hi, where is my order 78901?")
            await _until(watcher, watched, "a suggestion on B", lambda e: e.HasField("suggestion_completed"))
            # EndCall sent to B ends the call on A, its owner.
            ended = await on_b.end_call(started.call_id, "wrap-up from another instance")
            assert ended.state == call_pb2.CALL_STATE_ENDED
            assert ended.end_reason == call_pb2.CALL_END_REASON_END_CALL_RPC
            await _until(a_iter, a_events, "call_ended on A", lambda e: e.HasField("call_ended"))
            await _until(watcher, watched, "call_ended on B", lambda e: e.HasField("call_ended"))
    # B saw the live call, ephemeral events included, durable ones once each, in order.
    assert any(e.HasField("suggestion_delta") for e in watched), "no live deltas crossed instances"
    _gapless(watched)
    assert [e.sequence for e in watched if e.durable] == [e.sequence for e in a_events if e.durable]


async def test_tool_decision_sent_to_b_runs_on_a(pair: Pair) -> None:
    async with AsyncCallpilot(pair.a.address) as on_a, AsyncCallpilot(pair.b.address) as on_b:
        events: list[events_pb2.CallEvent] = []
        async with _open(on_a) as call:
            it = call.__aiter__()
            await call.send_text(CUSTOMER, "My headphones keep disconnecting, please open a ticket for that.")
            proposed = await _until(
                it,
                events,
                "a proposed ticket",
                lambda e: (
                    e.HasField("tool_call")
                    and e.tool_call.status == events_pb2.TOOL_CALL_STATUS_PENDING_CONFIRMATION
                ),
            )
            outcome = await on_b.decide_tool(
                proposed.call_id, proposed.tool_call.tool_call_id, events_pb2.TOOL_DECISION_KIND_CONFIRM
            )
            assert outcome.status == events_pb2.TOOL_CALL_STATUS_SUCCEEDED
            # The owner (A) ran it and recorded it in the call's one log.
            done = await _until(
                it,
                events,
                "the decided tool on A",
                lambda e: e.HasField("tool_call") and e.tool_call.HasField("decision"),
            )
            assert done.tool_call.tool_call_id == proposed.tool_call.tool_call_id
            # Deciding again on B is the recorded outcome (safe to retry), not a second ticket.
            again = await on_b.decide_tool(
                proposed.call_id, proposed.tool_call.tool_call_id, events_pb2.TOOL_DECISION_KIND_CONFIRM
            )
            assert again.status == outcome.status
            await call.end()


async def test_sigkill_of_the_owner_ends_the_call_owner_lost_on_b(pair: Pair) -> None:
    async with AsyncCallpilot(pair.b.address) as on_b:
        finals: list[str] = []
        async with AsyncCallpilot(pair.a.address) as on_a:
            call = _open(on_a)
            await call.__aenter__()
            it = call.__aiter__()
            events: list[events_pb2.CallEvent] = []
            started = await _until(it, events, "call_started", lambda e: e.HasField("call_started"))
            for text in ("First, my order is 78901.", "Second, it arrived broken."):
                await call.send_text(CUSTOMER, text)
                final = await _until(
                    it, events, "a final", lambda e: e.HasField("transcript") and e.transcript.is_final
                )
                finals.append(final.transcript.text)
            pair.a.kill()
            with contextlib.suppress(Exception):  # the owner is gone; how the stream breaks does not matter
                await call.__aexit__(None, None, None)
        watched = [e async for e in on_b.watch_call(started.call_id, from_sequence=1, resume=True)]
        assert watched[-1].call_ended.reason == call_pb2.CALL_END_REASON_OWNER_LOST
        got = await on_b.get_call(started.call_id)
        assert [s.text for s in got.transcript] == finals
        _gapless(watched)


async def test_redis_lost_mid_call_keeps_the_owner_going_and_b_resumes(pair: Pair) -> None:
    async with AsyncCallpilot(pair.a.address) as on_a, AsyncCallpilot(pair.b.address) as on_b:
        events: list[events_pb2.CallEvent] = []
        async with _open(on_a) as call:
            it = call.__aiter__()
            started = await _until(it, events, "call_started", lambda e: e.HasField("call_started"))
            watched: list[events_pb2.CallEvent] = []
            watcher = on_b.watch_call(started.call_id, from_sequence=1, resume=False).__aiter__()
            await _until(watcher, watched, "call_started on B", lambda e: e.HasField("call_started"))
            pair.redis.stop()
            # B's watcher is told live events are unavailable.
            with pytest.raises(CallpilotError) as lost:
                async with asyncio.timeout(STEP_S):
                    async for event in watcher:
                        watched.append(event)
            assert lost.value.code == grpc.StatusCode.UNAVAILABLE
            # The owner goes on: a turn during the outage is transcribed and stored.
            await call.send_text(CUSTOMER, "During the outage: my order is 78901.")
            await _until(
                it, events, "a final on A", lambda e: e.HasField("transcript") and e.transcript.is_final
            )
            pair.redis.start()
            await call.end()
            await _until(it, events, "call_ended on A", lambda e: e.HasField("call_ended"))
        # Resuming after the outage, B gets everything durable: nothing was lost.
        last = max(e.sequence for e in watched if e.durable)
        rest = [e async for e in on_b.watch_call(started.call_id, from_sequence=last + 1, resume=False)]
        assert rest[-1].HasField("call_ended")
        assert [e.sequence for e in watched + rest if e.durable] == [e.sequence for e in events if e.durable]


async def test_the_floor_on_b_follows_a_call_streamed_on_a_live(pair: Pair) -> None:
    from callpilot.v1 import floor_service_pb2, floor_service_pb2_grpc

    async with (
        AsyncCallpilot(pair.a.address) as on_a,
        grpc.aio.insecure_channel(pair.b.address) as channel,
    ):
        floor = floor_service_pb2_grpc.FloorServiceStub(channel).WatchFloor(
            floor_service_pb2.WatchFloorRequest()
        )
        async with asyncio.timeout(STEP_S):
            first = await floor.read()
        assert first.HasField("snapshot") and len(first.snapshot.calls) == 0
        # The call starts on A after B's floor took its snapshot: only the live stream can show it.
        seen: list[events_pb2.CallEvent] = []
        async with _open(on_a) as call:
            it = call.__aiter__()
            started = await _until(it, [], "call_started", lambda e: e.HasField("call_started"))
            await call.send_text(CUSTOMER, "Hi, where is my order 78901?")
            async with asyncio.timeout(STEP_S):
                while not any(e.HasField("context") for e in seen):
                    reply = await floor.read()
                    assert reply.HasField("event"), "no new snapshot: the stream did not lag or fail"
                    seen.append(reply.event)
            await on_a.end_call(started.call_id, "done")
            async with asyncio.timeout(STEP_S):
                while not seen[-1].HasField("call_ended"):
                    seen.append((await floor.read()).event)
        floor.cancel()
    assert {e.call_id for e in seen} == {started.call_id}
    assert seen[0].HasField("call_started")
    kinds = [e.WhichOneof("payload") for e in seen]
    assert set(kinds) <= {"call_started", "context", "alert", "call_ended"}
    assert [e.sequence for e in seen] == sorted(e.sequence for e in seen)


@pytest.mark.server_env({"CALLPILOT_MAX_CALLS_PER_TENANT": "1"})
async def test_a_tenants_call_limit_holds_across_instances(pair: Pair) -> None:
    async with AsyncCallpilot(pair.a.address) as on_a, AsyncCallpilot(pair.b.address) as on_b:
        async with _open(on_a) as call:
            it = call.__aiter__()
            started = await _until(it, [], "call_started", lambda e: e.HasField("call_started"))
            # B has no live call of its own, but the tenant's one place is taken on A.
            with pytest.raises(CallpilotError) as refused:
                async with _open(on_b) as second:
                    await _until(second.__aiter__(), [], "call_started", lambda e: e.HasField("call_started"))
            assert refused.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "across all instances" in refused.value.message
            stored = [c.call_id for c in (await on_b.list_calls()).calls]
            assert stored == [started.call_id], "the refused call left no record"
            await on_a.end_call(started.call_id, "done")
            await _until(it, [], "call_ended", lambda e: e.HasField("call_ended"))
        # The place is free again, for any instance.
        async with _open(on_b) as third:
            got = await _until(
                third.__aiter__(), [], "call_started on B", lambda e: e.HasField("call_started")
            )
            await on_b.end_call(got.call_id, "done")
