"""The Redis Streams bus: events of a call owned by one instance reach watchers on another."""

from __future__ import annotations

import asyncio

import pytest
from callpilot.server.bus import BusUnavailable
from callpilot.server.cluster.hub import RedisHub
from callpilot.server.cluster.redis_bus import RedisBus
from callpilot.v1 import call_pb2, events_pb2
from redis_support import RedisProcess

pytestmark = pytest.mark.redis
STEP_S = 10.0


def transcript(call_id: str, seq: int, text: str, *, final: bool) -> events_pb2.CallEvent:
    return events_pb2.CallEvent(
        call_id=call_id,
        sequence=seq,
        durable=final,
        transcript=events_pb2.TranscriptUpdate(segment_id="seg-0001", text=text, is_final=final),
    )


def ended(call_id: str, seq: int) -> events_pb2.CallEvent:
    return events_pb2.CallEvent(
        call_id=call_id,
        sequence=seq,
        durable=True,
        call_ended=events_pb2.CallEnded(reason=call_pb2.CALL_END_REASON_CLIENT_ENDED),
    )


async def test_events_cross_instances_in_order_and_end(hubs: tuple[RedisHub, RedisHub]) -> None:
    owner, other = RedisBus(hubs[0], "acme"), RedisBus(hubs[1], "acme")
    try:
        local = owner.subscribe("c1")
        remote = other.subscribe("c1")
        await asyncio.sleep(0.2)  # the remote reader has found the stream's tail
        sent = [
            transcript("c1", 0, "I want", final=False),
            transcript("c1", 1, "I want a refund", final=True),
            ended("c1", 2),
        ]
        for event in sent:
            owner.publish(event)
        owner.finish("c1")
        got = [e async for e in _drain(remote)]
        assert got == sent  # interims included, order kept, iteration ends at call_ended
        assert [e async for e in _drain(local)] == sent
    finally:
        await owner.aclose()
        await other.aclose()


async def test_tenants_do_not_share_streams(hubs: tuple[RedisHub, RedisHub]) -> None:
    owner, other_tenant = RedisBus(hubs[0], "acme"), RedisBus(hubs[1], "beta")
    try:
        sub = other_tenant.subscribe("c1")
        await asyncio.sleep(0.2)
        owner.publish(transcript("c1", 1, "secret", final=True))
        await asyncio.sleep(0.5)
        assert sub._queue.empty()
        assert owner.stream_key("c1") != other_tenant.stream_key("c1")
    finally:
        await owner.aclose()
        await other_tenant.aclose()


async def test_stream_is_trimmed_and_expires_after_the_call(hubs: tuple[RedisHub, RedisHub]) -> None:
    from callpilot.server.cluster import redis_bus

    owner = RedisBus(hubs[0], "acme")
    try:
        for i in range(redis_bus.STREAM_MAXLEN * 2):
            owner.publish(transcript("c2", i, "x", final=False))
        owner.publish(ended("c2", 1))
        owner.finish("c2")
        await asyncio.wait_for(owner._out.join(), STEP_S)
        key = owner.stream_key("c2")
        length = await hubs[0].redis.xlen(key)
        assert length <= redis_bus.STREAM_MAXLEN * 1.2  # approximate trimming
        ttl = await hubs[0].redis.ttl(key)
        assert 0 < ttl <= redis_bus.ENDED_TTL_S
    finally:
        await owner.aclose()


async def test_redis_lost_fails_remote_watchers_but_not_the_owner(own_redis: RedisProcess) -> None:
    a, b = RedisHub(own_redis.url), RedisHub(own_redis.url)
    owner, other = RedisBus(a, "acme"), RedisBus(b, "acme")
    try:
        local = owner.subscribe("c3")
        remote = other.subscribe("c3")
        await asyncio.sleep(0.2)
        own_redis.stop()
        # The owner keeps publishing to its local watchers; nothing raises into the call.
        owner.publish(transcript("c3", 1, "still here", final=True))
        assert (await asyncio.wait_for(local.next(), STEP_S)) is not None
        with pytest.raises(BusUnavailable):
            await asyncio.wait_for(remote.next(), STEP_S)
        await asyncio.sleep(0.6)
        assert owner.dropped >= 1
    finally:
        await owner.aclose()
        await other.aclose()
        await a.aclose()
        await b.aclose()


def started(call_id: str, tenant: str = "acme") -> events_pb2.CallEvent:
    call = call_pb2.Call(call_id=call_id, tenant_id=tenant, state=call_pb2.CALL_STATE_ACTIVE)
    return events_pb2.CallEvent(
        call_id=call_id, sequence=1, durable=True, call_started=events_pb2.CallStarted(call=call)
    )


async def _floor_events(sub: object, count: int) -> list[events_pb2.CallEvent]:
    from callpilot.server.bus import Subscription

    assert isinstance(sub, Subscription)
    got: list[events_pb2.CallEvent] = []
    while len(got) < count:
        event = await asyncio.wait_for(sub.next(), STEP_S)
        assert event is not None
        got.append(event)
    return got


async def test_the_floor_follows_calls_owned_by_another_instance(hubs: tuple[RedisHub, RedisHub]) -> None:
    owner, other, other_tenant = (
        RedisBus(hubs[0], "acme"),
        RedisBus(hubs[1], "acme"),
        RedisBus(hubs[1], "beta"),
    )
    try:
        # The call starts while B's floor reader is still starting: the look-back catches it.
        remote_floor = other.subscribe_all()
        local_floor = owner.subscribe_all()
        beta_floor = other_tenant.subscribe_all()
        context = events_pb2.CallEvent(
            call_id="f1",
            sequence=3,
            durable=True,
            context=events_pb2.ContextUpdate(topics=[events_pb2.TOPIC_REFUND]),
        )
        sent = [
            started("f1"),
            transcript("f1", 2, "I want a refund", final=True),
            transcript("f1", 2, "and", final=False),
            context,
            ended("f1", 4),
        ]
        for event in sent:
            owner.publish(event)
        owner.finish("f1")
        floor = [sent[0], sent[3], sent[4]]  # the kinds the floor reads, durable ones only
        assert await _floor_events(remote_floor, 3) == floor
        # The owner's own floor gets every durable event once, from the in-process bus only.
        assert await _floor_events(local_floor, 4) == [sent[0], sent[1], sent[3], sent[4]]
        await asyncio.sleep(0.5)
        assert local_floor._queue.empty() and remote_floor._queue.empty()
        assert beta_floor._queue.empty()  # another tenant's floor sees nothing
        local_floor.close()
        remote_floor.close()
        beta_floor.close()
    finally:
        await owner.aclose()
        await other.aclose()
        await other_tenant.aclose()


async def test_redis_lost_ends_a_remote_floor_with_unavailable(own_redis: RedisProcess) -> None:
    a, b = RedisHub(own_redis.url), RedisHub(own_redis.url)
    owner, other = RedisBus(a, "acme"), RedisBus(b, "acme")
    try:
        local = owner.subscribe_all()
        remote = other.subscribe_all()
        await asyncio.sleep(0.2)
        own_redis.stop()
        owner.publish(started("f2"))
        assert (await asyncio.wait_for(local.next(), STEP_S)) is not None  # the owner's floor goes on
        with pytest.raises(BusUnavailable):
            await asyncio.wait_for(remote.next(), STEP_S)
    finally:
        await owner.aclose()
        await other.aclose()
        await a.aclose()
        await b.aclose()


async def _drain(sub: object) -> object:
    from callpilot.server.bus import Subscription

    assert isinstance(sub, Subscription)
    while True:
        event = await asyncio.wait_for(sub.next(), STEP_S)
        if event is None:
            return
        yield event
