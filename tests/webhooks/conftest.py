"""Webhook test fixtures: a fresh database per test on each backend.

A fresh database (not only a fresh tenant) because the delivery worker
claims every tenant's due deliveries, as it does in production.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from callpilot.server.store import Store
from support import create_pg_database, drop_pg_database


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'webhooks.db'}"
        return
    url = await create_pg_database()
    try:
        yield url
    finally:
        await drop_pg_database(url)


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    s = await Store.open(db_url, tenant_id=f"t-{uuid.uuid4().hex[:8]}")
    try:
        yield s
    finally:
        await s.close()
