"""Tenants never see each other: 10,000 random (credential, call id) pairs, 0 cross-tenant reads.

A real server with authentication on, two tenants with their own keys and
calls. Every RPC that names a call answers NOT_FOUND for another tenant's
call, exactly as for a call that does not exist (no existence leak), and
never changes it; listings and the directory show only the caller's tenant.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator

import grpc
import pytest
from callpilot.client import AsyncCallpilot, CallpilotError
from callpilot.v1 import assist_service_pb2, call_pb2, common_pb2, events_pb2
from support import ROOT, ServerProcess, create_key

PAIRS = 10_000
CALLS_PER_TENANT = 25
TENANTS = ("default", "globex")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("tenants")
    env = {
        "CALLPILOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'tenants.sqlite'}",
        "CALLPILOT_DATA_DIR": str(tmp),
        "CALLPILOT_STT": "null",
        "CALLPILOT_AUTH": "on",
        "CALLPILOT_RATE_LIMIT_PER_S": "100000",
        "CALLPILOT_RATE_LIMIT_BURST": "100000",
    }
    proc = ServerProcess(env, ROOT / "artifacts" / "server-tenants.log").start()
    yield proc, env
    proc.stop()


async def _status(coro: object) -> grpc.StatusCode:
    try:
        await coro  # type: ignore[misc]
    except CallpilotError as err:
        return err.code
    return grpc.StatusCode.OK


async def test_ten_thousand_random_pairs_never_cross_tenants(
    server: tuple[ServerProcess, dict[str, str]],
) -> None:
    proc, env = server
    integrators = {t: create_key(env, t, "integrator") for t in TENANTS}
    agents = {t: create_key(env, t, "agent") for t in TENANTS}
    calls: dict[str, list[str]] = {}
    clients: list[AsyncCallpilot] = []
    try:
        for tenant in TENANTS:
            async with AsyncCallpilot(proc.address, api_key=integrators[tenant]) as cp:
                ids = [(await cp.create_call(call_pb2.CallConfig())).call_id for _ in range(CALLS_PER_TENANT)]
                # A few calls with real content, so there is something to leak.
                for call_id in ids[:3]:
                    async with cp.stream_call(
                        None, call_pb2.CallConfig(call_id=call_id), end_when_audio_ends=False
                    ) as call:
                        await call.send_text(common_pb2.SPEAKER_ROLE_CUSTOMER, f"{tenant} secret order 78901")
                        await call.end()
                        _ = [e async for e in call]
                calls[tenant] = ids
        agent = {t: AsyncCallpilot(proc.address, api_key=agents[t]) for t in TENANTS}
        clients.extend(agent.values())
        rng = random.Random(20261130)
        gate = asyncio.Semaphore(64)
        crossed: list[tuple[str, str, str, grpc.StatusCode]] = []
        checked = 0

        async def probe(caller: str, owner: str, call_id: str, rpc: str) -> None:
            nonlocal checked
            cp = agent[caller]
            async with gate:
                if rpc == "get":
                    code = await _status(cp.get_call(call_id))
                elif rpc == "watch":
                    code = await _status(_drain(cp.watch_call(call_id, from_sequence=1, resume=False)))
                elif rpc == "feedback":
                    code = await _status(
                        cp.submit_feedback(call_id, "sug-x", assist_service_pb2.FEEDBACK_KIND_USED)
                    )
                else:
                    code = await _status(
                        cp.decide_tool(call_id, "tool-x", events_pb2.TOOL_DECISION_KIND_CANCEL)
                    )
            checked += 1
            expected_other = grpc.StatusCode.NOT_FOUND
            if caller != owner and code != expected_other:
                crossed.append((caller, owner, rpc, code))
            if caller == owner and code == grpc.StatusCode.NOT_FOUND and rpc in ("get", "watch"):
                crossed.append((caller, owner, rpc, code))

        tasks = []
        for _ in range(PAIRS):
            caller, owner = rng.choice(TENANTS), rng.choice(TENANTS)
            rpc = rng.choices(["get", "watch", "feedback", "decide"], weights=[70, 10, 10, 10])[0]
            tasks.append(probe(caller, owner, rng.choice(calls[owner]), rpc))
        await asyncio.gather(*tasks)
        assert checked == PAIRS
        assert crossed == [], crossed[:10]

        # EndCall on another tenant's call is NOT_FOUND and leaves it alone.
        victim = calls["globex"][-1]
        assert await _status(agent["default"].end_call(victim)) == grpc.StatusCode.NOT_FOUND
        assert (await agent["globex"].get_call(victim)).call.state == call_pb2.CALL_STATE_ACTIVE
        # Listings show only the caller's calls; the directory only the caller's customers.
        for tenant in TENANTS:
            listed = {c.call_id async for c in agent[tenant].iter_calls(page_size=100)}
            assert listed == set(calls[tenant])
        async with AsyncCallpilot(proc.address, api_key=integrators["globex"]) as other:
            assert await _status(other.get_customer("C-1001")) == grpc.StatusCode.NOT_FOUND
        async with AsyncCallpilot(proc.address, api_key=integrators["default"]) as own:
            assert (await own.get_customer("C-1001")).customer.customer_id == "C-1001"
    finally:
        for cp in clients:
            await cp.close()


async def _drain(events: object) -> None:
    """Read a watch until it ends, or for a moment if the call is still live (that is an answer too)."""
    try:
        async with asyncio.timeout(2):
            async for _ in events:  # type: ignore[attr-defined]
                pass
    except TimeoutError:
        return
