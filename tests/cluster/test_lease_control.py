"""Call ownership leases and requests forwarded to the owner, on a real Redis."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from callpilot.server.cluster import lease as lease_mod
from callpilot.server.cluster.control import ControlServer, RemoteError, forward
from callpilot.server.cluster.hub import RedisHub
from callpilot.server.cluster.lease import Leases
from callpilot.server.errors import FailedPrecondition, Unavailable

pytestmark = pytest.mark.redis


async def test_one_owner_at_a_time_and_release(hubs: tuple[RedisHub, RedisHub]) -> None:
    lost: list[tuple[str, str]] = []
    a = Leases(hubs[0], on_lost=lambda t, c: lost.append((t, c)))
    b = Leases(hubs[1], on_lost=lambda t, c: lost.append((t, c)))
    try:
        assert await a.acquire("acme", "c1") is None
        assert await b.acquire("acme", "c1") == hubs[0].instance_id
        assert await a.acquire("acme", "c1") is None  # re-entrant for the holder
        assert await b.acquire("beta", "c1") is None  # another tenant's call of the same id
        await a.release("acme", "c1")
        assert await b.acquire("acme", "c1") is None
        assert await b.owner("acme", "c1") == hubs[1].instance_id
        assert lost == []
    finally:
        await a.aclose()
        await b.aclose()


async def test_owner_takes_back_a_forgotten_lease_and_notices_a_stolen_one(
    hubs: tuple[RedisHub, RedisHub],
) -> None:
    lost: list[tuple[str, str]] = []
    a = Leases(hubs[0], on_lost=lambda t, c: lost.append((t, c)))
    try:
        assert await a.acquire("acme", "c1") is None
        assert await a.acquire("acme", "c2") is None
        # Redis forgot c1 (restart without persistence); another instance stole c2.
        await hubs[0].redis.delete(a.key("acme", "c1"))
        await hubs[0].redis.set(a.key("acme", "c2"), hubs[1].instance_id, px=lease_mod.LEASE_TTL_MS)
        await a.renew_all()
        assert await a.owner("acme", "c1") == hubs[0].instance_id
        assert lost == [("acme", "c2")]
        assert a.holds("acme", "c1") and not a.holds("acme", "c2")
        ttl = await hubs[0].redis.pttl(a.key("acme", "c1"))
        assert 0 < ttl <= lease_mod.LEASE_TTL_MS
    finally:
        await a.aclose()


async def test_a_tenants_live_calls_are_limited_across_instances(hubs: tuple[RedisHub, RedisHub]) -> None:
    a = Leases(hubs[0], on_lost=lambda t, c: None)
    b = Leases(hubs[1], on_lost=lambda t, c: None)
    try:
        assert await a.acquire("acme", "c1", limit=2) is None
        assert await b.acquire("acme", "c2", limit=2) is None
        with pytest.raises(lease_mod.TenantAtLimit) as full:
            await b.acquire("acme", "c3", limit=2)
        assert (full.value.live, full.value.limit) == (2, 2)
        assert await a.acquire("acme", "c1", limit=2) is None  # a call it already holds is not counted twice
        assert await b.acquire("beta", "c3", limit=2) is None  # another tenant has its own count
        assert await a.acquire("acme", "c9") is None  # no limit asked (recovery): taken and counted
        assert await a.live_calls("acme") == 3
        await a.release("acme", "c9")
        await a.release("acme", "c1")
        assert await a.live_calls("acme") == 1
        assert await b.acquire("acme", "c3", limit=2) is None
        # Racing for the last places from both instances: exactly the limit get in.
        results = await asyncio.gather(
            *((a if n % 2 else b).acquire("gamma", f"r{n}", limit=3) for n in range(10)),
            return_exceptions=True,
        )
        assert sum(r is None for r in results) == 3
        assert all(isinstance(r, lease_mod.TenantAtLimit) for r in results if r is not None)
    finally:
        await a.aclose()
        await b.aclose()


async def test_a_dead_instances_calls_leave_the_count_when_their_leases_expire(
    hubs: tuple[RedisHub, RedisHub], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lease_mod, "LEASE_TTL_MS", 300)
    dead = Leases(hubs[0], on_lost=lambda t, c: None)
    alive = Leases(hubs[1], on_lost=lambda t, c: None)
    try:
        assert await dead.acquire("acme", "d1", limit=1) is None
        with pytest.raises(lease_mod.TenantAtLimit):
            await alive.acquire("acme", "d2", limit=1)
        assert dead._task is not None
        dead._task.cancel()  # the instance dies: nothing renews its lease
        await asyncio.sleep(0.5)
        assert await alive.acquire("acme", "d2", limit=1) is None
        # A live instance's renewals keep its calls counted past the lease's first TTL.
        await asyncio.sleep(0.2)
        await alive.renew_all()
        await asyncio.sleep(0.2)
        with pytest.raises(lease_mod.TenantAtLimit):
            await dead.acquire("acme", "d3", limit=1)
    finally:
        await alive.aclose()


async def test_forwarded_requests_return_results_and_errors(hubs: tuple[RedisHub, RedisHub]) -> None:
    seen: list[tuple[str, str, str, bytes]] = []

    async def handler(tenant: str, call: str, op: str, body: bytes) -> bytes:
        seen.append((tenant, call, op, body))
        if op == "decide":
            raise FailedPrecondition(
                "already decided", reason="TOOL_CALL_ALREADY_DECIDED", metadata={"id": "t1"}
            )
        return b"done:" + body

    owner = ControlServer(hubs[0], handler)
    owner.start()
    try:
        await asyncio.sleep(0.2)
        assert await forward(hubs[1], hubs[0].instance_id, "acme", "c1", "end", b"\x01") == b"done:\x01"
        with pytest.raises(RemoteError) as err:
            await forward(hubs[1], hubs[0].instance_id, "acme", "c1", "decide", b"")
        assert err.value.code == grpc.StatusCode.FAILED_PRECONDITION
        assert (err.value.reason, err.value.metadata) == ("TOOL_CALL_ALREADY_DECIDED", {"id": "t1"})
        assert [s[:3] for s in seen] == [("acme", "c1", "end"), ("acme", "c1", "decide")]
    finally:
        await owner.aclose()


async def test_an_owner_that_does_not_answer_is_unavailable(
    hubs: tuple[RedisHub, RedisHub], monkeypatch: pytest.MonkeyPatch
) -> None:
    from callpilot.server.cluster import control

    monkeypatch.setattr(control, "REPLY_TIMEOUT_S", 1.0)
    with pytest.raises(Unavailable, match="did not answer"):
        await forward(hubs[1], "gone-instance", "acme", "c1", "end", b"")


async def test_reaper_ends_only_calls_unowned_for_long_enough(hubs: tuple[RedisHub, RedisHub]) -> None:
    from callpilot.server.cluster.reaper import REAP_AFTER_S, Reaper

    dead = Leases(hubs[0], on_lost=lambda t, c: None)
    alive = Leases(hubs[1], on_lost=lambda t, c: None)
    ended: list[tuple[str, str]] = []

    async def live() -> list[tuple[str, str]]:
        return [("acme", "orphan"), ("acme", "owned-elsewhere"), ("acme", "mine")]

    async def end(tenant: str, call: str) -> None:
        ended.append((tenant, call))

    try:
        assert await dead.acquire("acme", "owned-elsewhere") is None
        assert await alive.acquire("acme", "mine") is None
        reapers = [Reaper(hubs[1], alive, live, end), Reaper(hubs[1], alive, live, end)]
        await reapers[0].scan(now=100.0)
        assert ended == []  # a suspect is not reaped on first sight
        await reapers[0].scan(now=100.0 + REAP_AFTER_S / 2)
        assert ended == []
        await reapers[1].scan(now=100.0)
        await reapers[0].scan(now=100.0 + REAP_AFTER_S)
        await reapers[1].scan(now=100.0 + REAP_AFTER_S)  # the reaper lock: ended once
        assert ended == [("acme", "orphan")]
    finally:
        await dead.aclose()
        await alive.aclose()
