"""The SQL store: directory lookups, call records and the durable event log.

One class serves both backends (SQLite through aiosqlite, PostgreSQL through
asyncpg), so everything above it is written once. All I/O goes through the
async drivers; the only CPU work of note, building the knowledge index, runs
in a worker thread.

Every row belongs to a tenant. A Store object is bound to one tenant, and
`for_tenant` hands out siblings that share its connection pool, so a
multi-tenant server opens the database once.

`Store` is assembled from one mixin per concern, each in its own module on
top of base.StoreBase (tenant, pool, read/write turns):

- directory_queries.DirectoryQueries: the `Directory` protocol (+ create_ticket)
- calls.CallRecords and events.EventLog: the `CallLog` protocol
- feedback.Feedback: suggestion feedback history
- loading.DataLoading: `import_data` and demo seeding
- floor.FloorQueries and insights.InsightsQueries: the supervisor's floor and analytics

Mixins rather than a facade delegating to per-concern objects: every method
is a thin query over the same tenant and connection plumbing, so delegation
would only restate each of the ~30 signatures a second time, and one class
keeps `Store` satisfying `Directory` and `CallLog` structurally (checked at
the bottom of this module and in tests/store/test_store_protocols.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING

from callpilot.server.store import fuzzy
from callpilot.server.store.base import DEFAULT_TENANT, Shared
from callpilot.server.store.calls import DEFAULT_PAGE_SIZE, CallRecords
from callpilot.server.store.directory_queries import DirectoryQueries
from callpilot.server.store.engine import (
    WRITE_OPTION,
    create_engine,
    is_single_connection,
    normalize_url,
    sqlite_file,
    writer_turn,
)
from callpilot.server.store.events import EventLog
from callpilot.server.store.feedback import Feedback
from callpilot.server.store.floor import FloorQueries
from callpilot.server.store.importer import DataImportError, ImportReport
from callpilot.server.store.insights import InsightsQueries
from callpilot.server.store.loading import DataLoading, load_demo_document
from callpilot.server.store.migrate import upgrade_to_head
from callpilot.server.store.wrapups import WrapUps
from callpilot.v1 import directory_pb2

if TYPE_CHECKING:
    from callpilot.server.directory import Directory, DirectoryWriter, FuzzyDirectory
    from callpilot.server.store.protocols import CallLog


class Store(
    DirectoryQueries, CallRecords, EventLog, Feedback, DataLoading, FloorQueries, InsightsQueries, WrapUps
):
    """Persistence for one tenant; create it with `await Store.open(url)`."""

    @classmethod
    async def open(cls, url: str, *, seed_demo: bool = False, tenant_id: str = DEFAULT_TENANT) -> Store:
        """Connect, migrate to the latest schema, and optionally seed demo data.

        Migrating at open means a new deployment or a new SQLite file is
        usable straight away; seeding only touches a tenant whose directory
        is empty, so it never overwrites real data.
        """
        parsed = normalize_url(url)
        path = sqlite_file(parsed)
        if path is not None:
            await asyncio.to_thread(path.expanduser().resolve().parent.mkdir, parents=True, exist_ok=True)
        engine = create_engine(parsed)
        single = is_single_connection(parsed)
        try:
            await upgrade_to_head(engine)
            shared = Shared(
                engine=engine,
                write_engine=engine.execution_options(**{WRITE_OPTION: True}),
                serial=asyncio.Lock() if single else None,
                writer=writer_turn(engine),
            )
            store = cls(shared, tenant_id)
            if seed_demo:
                await store.seed_demo_data()
        except BaseException:
            await engine.dispose()
            raise
        return store

    async def close(self) -> None:
        """Close the connection pool (for every sibling Store of other tenants too)."""
        if not self._shared.closed:
            self._shared.closed = True
            if self._shared.commits is not None:
                await self._shared.commits.close()  # events already accepted are written first
            await self._shared.engine.dispose()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def for_tenant(self, tenant_id: str) -> Store:
        """A Store for another tenant on the same pool; closing either closes both."""
        return Store(self._shared, tenant_id)

    # --- matching what was heard (directory.FuzzyDirectory; queries in store/fuzzy.py) ---

    async def customer_names(self, limit: int = fuzzy.NAME_INDEX_LIMIT) -> list[tuple[str, str]]:
        """(customer_id, name) pairs for matching names as heard."""
        async with self._read() as conn:
            return await fuzzy.customer_names(conn, self._tenant, limit)

    async def find_orders(self, order_numbers: Sequence[str]) -> list[directory_pb2.Order]:
        """Orders with any of these numbers (the one-edit variants of a number as heard)."""
        async with self._read() as conn:
            return await self._with_items(conn, await fuzzy.order_rows(conn, self._tenant, order_numbers))


if TYPE_CHECKING:

    def _store_is_a_directory(store: Store) -> Directory:
        """Lets mypy prove Store satisfies the Directory protocol structurally."""
        return store

    def _store_is_a_fuzzy_directory(store: Store) -> FuzzyDirectory:
        return store

    def _store_is_a_directory_writer(store: Store) -> DirectoryWriter:
        return store

    def _store_is_a_call_log(store: Store) -> CallLog:
        """Lets mypy prove Store satisfies the CallLog protocol structurally."""
        return store


__all__ = [
    "DEFAULT_PAGE_SIZE",
    "DEFAULT_TENANT",
    "DataImportError",
    "ImportReport",
    "Store",
    "load_demo_document",
]
