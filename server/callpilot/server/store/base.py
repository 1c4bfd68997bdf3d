"""What every part of the SQL store shares: the tenant, the pool, and turns.

`Store` (store.py) is assembled from per-concern mixins (directory
queries, calls, events, feedback, data loading), each a subclass of
`StoreBase`, so each concern's module states only its own SQL while the
tenant scoping and the connection policy live here once:

- `_read()` hands out a connection, `_write()` a transaction (BEGIN
  IMMEDIATE on SQLite, see engine.py); neither is held across awaits that
  are not database work.
- An in-memory SQLite database has a single connection, which concurrent
  transactions would trample, so `_turn()` makes callers take turns on it.
- A SQLite file has a single writer, so writes of this process queue on a
  fair lock (`_writer()`, the engine's `writer_turn`, which the webhook
  outbox takes too), in the order they asked; no write is nested in
  another.
- Every query a mixin writes filters on `self._tenant`.
- Durable events do not take a transaction each: they are group-committed
  (group_commit.py) by one writer task per pool, on the same `_write()`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from callpilot.server.errors import InvalidArgument, Violation
from callpilot.server.store import schema
from callpilot.server.store.group_commit import GroupCommit
from callpilot.server.store.knowledge import KnowledgeIndex
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

DEFAULT_TENANT = "default"


def check_id(value: str, field_path: str, max_len: int = schema.ID_LENGTH) -> None:
    """Reject an empty or oversized id as the caller's INVALID_ARGUMENT.

    Checked up front so that it is not a driver error from a column limit.
    """
    if not value:
        raise InvalidArgument(Violation(field_path, "is required"))
    if len(value) > max_len:
        raise InvalidArgument(Violation(field_path, f"is longer than {max_len} characters"))


@dataclass
class KnowledgeCache:
    """A tenant's knowledge index and the (count, newest update) it was built from."""

    version: tuple[int, datetime | None]
    index: KnowledgeIndex


@dataclass
class Shared:
    """What sibling Stores of different tenants share: the pool and caches."""

    engine: AsyncEngine
    write_engine: AsyncEngine
    # In-memory SQLite has a single connection, which concurrent transactions
    # would trample; this lock takes turns instead. None for real databases.
    serial: asyncio.Lock | None = None
    # SQLite has one writer per file. Taking turns on this (FIFO) lock in the
    # process, instead of polling SQLite's busy timeout, is what lets a live
    # call's event write go next when a batched import releases the writer.
    # None where the database has row locks (PostgreSQL) or `serial` is used.
    writer: asyncio.Lock | None = None
    knowledge: dict[str, KnowledgeCache] = field(default_factory=dict)
    # The one writer of durable events (group commit, see group_commit.py),
    # made on the first append so that it belongs to the running loop.
    commits: GroupCommit[Any] | None = None
    closed: bool = False


class StoreBase:
    """Tenant and connection plumbing; the mixins add the queries."""

    def __init__(self, shared: Shared, tenant_id: str) -> None:
        """Internal: use `Store.open` or `Store.for_tenant`."""
        check_id(tenant_id, "tenant_id")
        self._shared = shared
        self._tenant = tenant_id

    @property
    def tenant_id(self) -> str:
        return self._tenant

    @property
    def backend(self) -> str:
        """The SQL dialect in use: "sqlite" or "postgresql"."""
        return self._shared.engine.dialect.name

    @property
    def engine(self) -> AsyncEngine:
        """The pool itself, for workers that manage their own transactions (the webhook outbox)."""
        return self._shared.engine

    def reading(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A read connection, for components that keep tables of their own (API keys, join
        tokens, the webhook outbox); the same pool and turn-taking as the store's queries."""
        return self._read()

    def writing(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A write transaction on the store's single-writer path (see `reading`)."""
        return self._write()

    async def ping(self) -> None:
        """Round-trip to the database, for health checks; raises when it is unreachable."""
        async with self._read() as conn:
            await conn.execute(select(1))

    @asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        if self._shared.serial is None:
            yield
        else:
            async with self._shared.serial:
                yield

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        async with self._turn(), self._shared.engine.connect() as conn:
            yield conn

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        async with self._turn(), self._writer(), self._shared.write_engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def _writer(self) -> AsyncIterator[None]:
        if self._shared.writer is None:
            yield
        else:
            async with self._shared.writer:
                yield
