"""Migrations, schema and engine set-up, on both backends."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from callpilot.server.errors import ConfigError
from callpilot.server.store import Store, default_sqlite_url, head_revision, normalize_url, schema
from callpilot.v1 import call_pb2, events_pb2
from sqlalchemy import Connection, inspect, text

EXPECTED_TABLES = {
    "customers",
    "orders",
    "order_items",
    "tickets",
    "policies",
    "articles",
    "calls",
    "call_events",
    "transcript_segments",
    "tool_calls",
    "suggestions",
    "suggestion_feedback",
    "call_contexts",
    "api_keys",
    "join_tokens",
    "webhook_endpoints",
    "webhook_deliveries",
    "webhook_attempts",
    "wrapups",
}


@pytest.fixture
def empty_db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'fresh' / 'nested' / 'cp.db'}"
    return str(request.getfixturevalue("fresh_pg_url"))


def _describe(conn: Connection) -> tuple[set[str], str | None, list[object]]:
    tables = set(inspect(conn).get_table_names())
    revision = MigrationContext.configure(conn).get_current_revision()
    diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), schema.metadata)
    return tables, revision, diff


async def test_migrations_create_the_schema_on_an_empty_database(empty_db_url: str) -> None:
    store = await Store.open(empty_db_url)
    try:
        async with store._shared.engine.connect() as conn:
            tables, revision, diff = await conn.run_sync(_describe)
        assert tables == EXPECTED_TABLES | {"alembic_version"}
        assert revision == head_revision()
        # The hand-written migration and schema.py describe the same database.
        assert diff == []
        assert await store.search_customers("maria") == []
    finally:
        await store.close()
    # Opening an up-to-date database again is a no-op, and seeding works on it later.
    again = await Store.open(empty_db_url, seed_demo=True)
    try:
        assert await again.get_customer("C-1001") is not None
    finally:
        await again.close()


def test_every_table_carries_a_tenant() -> None:
    for table in schema.metadata.tables.values():
        assert "tenant_id" in table.c, table.name
        assert not table.c.tenant_id.nullable


async def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    store = await Store.open(default_sqlite_url(tmp_path / "data"))
    try:
        assert (tmp_path / "data" / "callpilot.db").exists()
        async with store._shared.engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
            assert int((await conn.execute(text("PRAGMA busy_timeout"))).scalar() or 0) >= 1000
    finally:
        await store.close()


async def test_in_memory_sqlite_works_for_quick_experiments() -> None:
    async with await Store.open("sqlite+aiosqlite://", seed_demo=True) as store:
        assert (await store.get_order("78901")) is not None
        # One shared connection: concurrent work must take turns, not collide.
        await store.create_call(call_pb2.Call(call_id="mem"))
        events = [
            events_pb2.CallEvent(call_id="mem", sequence=i, notice=events_pb2.Notice(code="X"))
            for i in range(1, 11)
        ]
        await asyncio.gather(*(store.append_event(e) for e in events), store.search_customers("maria"))
        assert len(await store.read_events("mem", 0)) == 10


def test_url_normalisation() -> None:
    assert normalize_url("postgres://u@h/db").drivername == "postgresql+asyncpg"
    assert normalize_url("postgresql://u@h/db").drivername == "postgresql+asyncpg"
    assert normalize_url("sqlite:///x.db").drivername == "sqlite+aiosqlite"
    with pytest.raises(ConfigError, match="not supported"):
        normalize_url("postgresql+psycopg2://u@h/db")
    with pytest.raises(ConfigError, match="unsupported database"):
        normalize_url("mysql://u@h/db")
    url = default_sqlite_url(Path("/srv/callpilot"))
    assert url == "sqlite+aiosqlite:////srv/callpilot/callpilot.db"


async def test_two_stores_write_one_sqlite_file_concurrently(tmp_path: Path) -> None:
    # Stand-ins for two server processes: separate engines and pools, one file.
    url = default_sqlite_url(tmp_path)
    first, second = await asyncio.gather(Store.open(url, seed_demo=True), Store.open(url, seed_demo=True))
    try:
        await first.create_call(call_pb2.Call(call_id="a"))
        await second.create_call(call_pb2.Call(call_id="b"))

        async def write(store: Store, call_id: str) -> None:
            for i in range(1, 16):
                await store.append_event(
                    events_pb2.CallEvent(call_id=call_id, sequence=i, notice=events_pb2.Notice(code="X"))
                )

        await asyncio.gather(write(first, "a"), write(second, "b"), first.import_data({"articles": []}))
        assert len(await second.read_events("a", 0)) == 15
        assert len(await first.read_events("b", 0)) == 15
        calls, _ = await first.list_calls(page_size=10, page_token="")
        assert {c.call_id for c in calls} == {"a", "b"}
        assert len(await first.search_customers("garcia")) == 2  # seeded exactly once
    finally:
        await first.close()
        await second.close()
