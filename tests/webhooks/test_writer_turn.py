"""In one process, the store and the webhook outbox take turns on one SQLite writer lock.

Without it they meet on the file's lock, where SQLite's busy handler polls
and gives up with "database is locked" once the busy timeout has passed: a
long store write (a directory import, a burst of events) then made a webhook
write fail. The busy timeout is shortened here so that the difference shows
in a second.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from callpilot.server.store import Store, engine
from callpilot.server.webhooks import outbox, payloads
from callpilot.server.webhooks.signing import new_secret


@pytest.fixture
async def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Store]:
    monkeypatch.setattr(engine, "SQLITE_BUSY_TIMEOUT_MS", 100)
    opened = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'turns.db'}")
    yield opened
    await opened.close()


async def test_an_outbox_write_waits_its_turn_behind_a_long_store_write(store: Store) -> None:
    held = asyncio.Event()

    async def long_store_write() -> None:
        async with store.writing() as conn:
            await conn.exec_driver_sql("DELETE FROM webhook_deliveries WHERE 0")  # takes the file's lock
            held.set()
            await asyncio.sleep(1.0)  # ten times the busy timeout

    async with asyncio.timeout(20):
        writing = asyncio.create_task(long_store_write())
        await held.wait()
        endpoint = await outbox.create_endpoint(
            store.engine, store.tenant_id, "http://127.0.0.1:9/x", payloads.EVENT_TYPES, "", new_secret()
        )
        await writing
    assert [e.endpoint_id for e in await outbox.list_endpoints(store.engine, store.tenant_id)] == [
        endpoint.endpoint_id
    ]


def test_every_copy_of_an_engine_shares_one_turn_and_postgresql_has_none(store: Store) -> None:
    turn = engine.writer_turn(store.engine)
    assert turn is not None
    assert engine.writer_turn(store.engine.execution_options(callpilot_write=True)) is turn
    postgres = engine.create_engine("postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    assert engine.writer_turn(postgres) is None
    assert engine.writer_turn(engine.create_engine("sqlite+aiosqlite://")) is None
