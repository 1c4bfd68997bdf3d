"""The event log under faults: cancellations at random points, and a crashed process.

These run on the real SQL store (SQLite and PostgreSQL): a cancel that
lands while the database commits is exactly what used to leave the
sequence counter behind the store, so that call_ended collided and the
call stayed ACTIVE. Each test has a tenant of its own on the shared
PostgreSQL database.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from callpilot.client import AsyncCallpilot
from callpilot.server import metrics
from callpilot.server.api.replay import replay_then_follow
from callpilot.server.app import CallpilotServer
from callpilot.server.bus import InProcessBus
from callpilot.server.config import Settings
from callpilot.server.manager import SessionManager
from callpilot.server.session import SessionDeps
from callpilot.server.store import Store
from callpilot.v1 import call_pb2, common_pb2
from session.harness import ScriptedAssistant, ScriptedSTT, WritableDirectory, answer

CUSTOMER = common_pb2.SPEAKER_ROLE_CUSTOMER


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'callpilot.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    s = await Store.open(store_url)
    yield s.for_tenant(f"t-{uuid.uuid4().hex[:12]}")
    await s.close()


def _deps(store: Store, scripts: int = 0) -> SessionDeps:
    assistant = ScriptedAssistant(scripts=[answer("Say sorry.", "Say ", "sorry.") for _ in range(scripts)])
    return SessionDeps(
        store=store, bus=InProcessBus(), stt=ScriptedSTT(), assistant=assistant, directory=WritableDirectory()
    )


async def _all_calls(store: Store) -> list[call_pb2.Call]:
    calls, token = await store.list_calls(page_size=100)
    assert token == ""
    return calls


async def _assert_closed_and_gapless(store: Store, call: call_pb2.Call) -> None:
    events = await store.read_events(call.call_id, 1)
    sequences = [e.sequence for e in events]
    assert sequences == list(range(1, len(events) + 1)), call.call_id
    assert call.state == call_pb2.CALL_STATE_ENDED, call.call_id
    assert events[0].HasField("call_started"), call.call_id
    assert events[-1].HasField("call_ended"), call.call_id
    assert call.last_sequence == events[-1].sequence


async def test_cancelling_handlers_at_random_points_leaves_no_call_active(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    manager = SessionManager(_deps(store, scripts=200), tenant_id=store.tenant_id, max_calls=200)
    rng = random.Random(20261130)
    gauge = metrics.ACTIVE_CALLS._value.get()

    async def handler() -> None:
        session = await manager.open(call_pb2.CallConfig())
        try:
            await session.start()
            for n in range(6):
                await session.add_text_turn(CUSTOMER, f"My order number {n} never arrived.", time.time())
        finally:
            # What StreamCall does when its client goes away.
            session.request_end(call_pb2.CALL_END_REASON_STREAM_ABORTED, "the client went away")

    for _ in range(40):
        task = asyncio.create_task(handler())
        await asyncio.sleep(rng.uniform(0.0, 0.03))
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    # Opens and ends run on in their own tasks after their caller is cancelled.
    # (an abandoned open starts its call's end when it completes).
    while others := asyncio.all_tasks() - {asyncio.current_task()}:
        _done, pending = await asyncio.wait(others, timeout=60)
        assert not pending
    assert not manager.sessions
    assert metrics.ACTIVE_CALLS._value.get() == gauge  # the gauge agrees with the database
    calls = await _all_calls(store)
    # A cancel may land before a call is created; most calls exist.
    assert len(calls) >= 20
    for call in calls:
        await _assert_closed_and_gapless(store, call)
    # Aborted by the client, not "ended by the client".
    assert {c.end_reason for c in calls} == {call_pb2.CALL_END_REASON_STREAM_ABORTED}
    problems = [r.getMessage() for r in caplog.records if "already written" in r.getMessage()]
    assert problems == []
    assert not any("behind the store" in r.getMessage() for r in caplog.records)


async def test_cancelling_the_waiter_of_an_end_still_records_call_ended(store: Store) -> None:
    manager = SessionManager(_deps(store), tenant_id=store.tenant_id, max_calls=10)
    session = await manager.open(call_pb2.CallConfig())
    await session.start()
    await session.add_text_turn(CUSTOMER, "Hello.", time.time())
    waiter = asyncio.create_task(session.end(call_pb2.CALL_END_REASON_END_CALL_RPC))
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    async with asyncio.timeout(10):
        await session.ended.wait()
    call = await store.get_call(session.call_id)
    assert call is not None
    await _assert_closed_and_gapless(store, call)


async def _crashed_call(store: Store) -> tuple[str, int]:
    """A call a 'dead process' left ACTIVE: started, two turns, never ended."""
    deps = _deps(store)
    manager = SessionManager(deps, tenant_id=store.tenant_id, max_calls=10)
    session = await manager.open(call_pb2.CallConfig())
    await session.start()
    await session.add_text_turn(CUSTOMER, "Hello, I need help.", time.time())
    await session.add_text_turn(CUSTOMER, "My order is late.", time.time())
    call = await store.get_call(session.call_id)
    assert call is not None and call.state == call_pb2.CALL_STATE_ACTIVE
    return call.call_id, call.last_sequence


async def test_recovery_ends_calls_a_dead_process_left_active(store: Store) -> None:
    call_id, last = await _crashed_call(store)
    before = await store.read_events(call_id, 1)
    manager = SessionManager(_deps(store), tenant_id=store.tenant_id, max_calls=10)
    assert await manager.recover() == 1
    call = await store.get_call(call_id)
    assert call is not None
    await _assert_closed_and_gapless(store, call)
    assert call.end_reason == call_pb2.CALL_END_REASON_SERVER_RESTART
    after = await store.read_events(call_id, 1)
    assert after[: len(before)] == before  # everything durable intact
    assert after[-1].sequence == last + 1
    # A watcher resuming from the last sequence it saw + 1 gets call_ended.
    bus = InProcessBus()

    async def over() -> bool:
        return True

    resumed = [e async for e in replay_then_follow(store, bus, call_id, after=last, is_over=over)]
    assert [e.WhichOneof("payload") for e in resumed] == ["call_ended"]
    assert await manager.recover() == 0


async def test_a_starting_server_ends_orphaned_calls_and_watchers_see_call_ended(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'server.db'}"
    store = await Store.open(url)
    try:
        call_id, last = await _crashed_call(store)
    finally:
        await store.close()
    settings = Settings(
        host="127.0.0.1", port=0, database_url=url, data_dir=tmp_path / "data", stt="null", seed_demo=False
    )
    server = CallpilotServer(settings)
    await server.start()
    try:
        async with AsyncCallpilot(f"127.0.0.1:{server.port}") as client:
            async with asyncio.timeout(20):
                events = [e async for e in client.watch_call(call_id, from_sequence=last + 1)]
                got = await client.get_call(call_id)
        assert [e.WhichOneof("payload") for e in events] == ["call_ended"]
        assert events[0].sequence == last + 1
        assert events[0].call_ended.reason == call_pb2.CALL_END_REASON_SERVER_RESTART
        assert got.call.state == call_pb2.CALL_STATE_ENDED
        assert len(got.transcript) == 2
    finally:
        await server.stop()
