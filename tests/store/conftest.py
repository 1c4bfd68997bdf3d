"""Fixtures that run every store test against SQLite and the real PostgreSQL.

PostgreSQL isolation: one throw-away database per test session (named after
this process, dropped at the end), and inside it a fresh tenant per test,
which the schema scopes every row by. So tests never see each other's rows,
never touch anyone else's databases, and the migrations run once per
session instead of once per test. SQLite gets a new file per test.

Set CALLPILOT_TEST_POSTGRES_URL to point elsewhere; deselect the PostgreSQL
half with `-m "not postgres"` on a machine without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import os
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest
from callpilot.server.store import Store, schema
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

PG_URL = os.environ.get("CALLPILOT_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
DB_PREFIX = "callpilot_test_store_"
# A hung test (a lock never released) dumps stacks and ends the run rather than hanging CI.
TEST_TIMEOUT_S = 120

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def _admin_dsn() -> str:
    url = make_url(PG_URL).set(drivername="postgresql", database="postgres")
    return url.render_as_string(hide_password=False)


def _pg_url(database: str) -> str:
    return make_url(PG_URL).set(database=database).render_as_string(hide_password=False)


async def _admin(statements: list[str]) -> None:
    conn = await asyncpg.connect(_admin_dsn(), timeout=10)
    try:
        for statement in statements:
            await conn.execute(statement, timeout=30)
    finally:
        await conn.close()


async def _stale_databases() -> list[str]:
    """Databases left by earlier sessions of this suite whose process is gone."""
    conn = await asyncpg.connect(_admin_dsn(), timeout=10)
    try:
        names = [r["datname"] for r in await conn.fetch("SELECT datname FROM pg_database")]
    finally:
        await conn.close()
    stale = []
    for name in names:
        match = re.fullmatch(rf"{DB_PREFIX}(\d+)_[0-9a-f]+", name)
        if match is None:
            continue
        try:
            os.kill(int(match.group(1)), 0)
        except ProcessLookupError:
            stale.append(name)
        except PermissionError:
            pass
    return stale


def create_pg_database() -> str:
    """A new empty database on the test server; returns its name."""
    name = f"{DB_PREFIX}{os.getpid()}_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin([f'CREATE DATABASE "{name}"']))
    return name


def drop_pg_database(name: str) -> None:
    asyncio.run(_admin([f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)']))


@pytest.fixture(scope="session")
def pg_session_url() -> Iterator[str]:
    stale = asyncio.run(_stale_databases())
    if stale:
        asyncio.run(_admin([f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)' for n in stale]))
    name = create_pg_database()
    try:
        yield _pg_url(name)
    finally:
        drop_pg_database(name)


@pytest.fixture
def fresh_pg_url() -> Iterator[str]:
    """A database of its own, for tests about what an empty database becomes."""
    name = create_pg_database()
    try:
        yield _pg_url(name)
    finally:
        drop_pg_database(name)


@pytest.fixture(autouse=True)
def _bounded_time() -> Iterator[None]:
    faulthandler.dump_traceback_later(TEST_TIMEOUT_S, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("pg_session_url"))


@pytest.fixture
def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


OpenStore = Callable[..., Awaitable[Store]]


@pytest.fixture
async def open_store(db_url: str, tenant: str) -> AsyncIterator[OpenStore]:
    """Opens Stores on this test's database and closes them afterwards."""
    opened: list[Store] = []

    async def _open(*, seed_demo: bool = False, tenant_id: str | None = None) -> Store:
        store = await Store.open(db_url, seed_demo=seed_demo, tenant_id=tenant_id or tenant)
        opened.append(store)
        return store

    yield _open
    for store in opened:
        with contextlib.suppress(Exception):
            await store.close()


@pytest.fixture
async def store(open_store: OpenStore) -> Store:
    """A store with the demo data, on a tenant of its own."""
    return await open_store(seed_demo=True)


@pytest.fixture
async def empty_store(open_store: OpenStore) -> Store:
    """A migrated store with nothing in it."""
    return await open_store()


CountRows = Callable[[Store], Awaitable[dict[str, int]]]


async def _row_counts(store: Store) -> dict[str, int]:
    counts: dict[str, int] = {}
    async with store._shared.engine.connect() as conn:
        for table in schema.DIRECTORY_TABLES:
            result = await conn.execute(
                select(func.count()).select_from(table).where(table.c.tenant_id == store.tenant_id)
            )
            counts[table.name] = int(result.scalar_one())
    return counts


@pytest.fixture
def count_rows() -> CountRows:
    """Rows per directory table for a store's tenant, read through the store's own pool."""
    return _row_counts
