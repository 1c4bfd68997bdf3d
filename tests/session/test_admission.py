"""Admission across tenants: the server's CALLPILOT_MAX_CALLS holds for all of them together.

Each tenant's SessionManager has its own gate (CALLPILOT_MAX_CALLS_PER_TENANT)
and shares the server's gate; a burst opened concurrently in two tenants is
admitted up to the server's limit and no further, and every slot comes back
when the calls end (or their creation fails).
"""

from __future__ import annotations

import asyncio

import grpc
import pytest
from callpilot.server.admission import Gate
from callpilot.server.bus import InProcessBus
from callpilot.server.errors import NotFound, ResourceExhausted
from callpilot.server.manager import SessionManager
from callpilot.server.session import CallSession, SessionDeps
from callpilot.v1 import call_pb2
from session.harness import MemoryCallLog, ScriptedAssistant, ScriptedSTT, WritableDirectory


def _manager(tenant: str, gate: Gate, max_calls: int) -> SessionManager:
    deps = SessionDeps(
        store=MemoryCallLog(delay=0.01),
        bus=InProcessBus(),
        stt=ScriptedSTT(),
        assistant=ScriptedAssistant(scripts=[]),
        directory=WritableDirectory(),
    )
    return SessionManager(deps, tenant_id=tenant, max_calls=max_calls, server_gate=gate)


async def test_the_server_limit_holds_across_tenants() -> None:
    gate = Gate(5, what="this server", setting="CALLPILOT_MAX_CALLS")
    a, b = _manager("a", gate, 4), _manager("b", gate, 4)
    opens = [m.open(call_pb2.CallConfig()) for m in (a, b) for _ in range(15)]
    results = await asyncio.gather(*opens, return_exceptions=True)
    sessions = [r for r in results if isinstance(r, CallSession)]
    refused = [r for r in results if isinstance(r, ResourceExhausted)]
    assert len(sessions) == 5 and len(refused) == 25
    assert all(r.code == grpc.StatusCode.RESOURCE_EXHAUSTED and r.retry_delay_s for r in refused)
    assert a.calls_admitted <= 4 and b.calls_admitted <= 4 and gate.in_use == 5
    await asyncio.gather(*(s.end(call_pb2.CALL_END_REASON_CLIENT_ENDED) for s in sessions))
    assert gate.in_use == 0 and a.calls_admitted == 0 and b.calls_admitted == 0


async def test_a_failed_open_and_an_ended_reservation_give_their_slot_back() -> None:
    gate = Gate(1, what="this server", setting="CALLPILOT_MAX_CALLS")
    manager = _manager("a", gate, 1)
    with pytest.raises(NotFound):
        await manager.open(call_pb2.CallConfig(call_id="no-such-call"))
    assert gate.in_use == 0
    created = await manager.create_call(call_pb2.CallConfig())
    with pytest.raises(ResourceExhausted):
        await manager.create_call(call_pb2.CallConfig())
    # The created call's stream brings its reserved slot: no second slot is needed.
    session = await manager.open(call_pb2.CallConfig(call_id=created.call_id))
    assert gate.in_use == 1
    await session.end(call_pb2.CALL_END_REASON_CLIENT_ENDED)
    assert gate.in_use == 0
    again = await manager.create_call(call_pb2.CallConfig())
    await manager.end_call(again.call_id, "not needed")
    assert gate.in_use == 0
