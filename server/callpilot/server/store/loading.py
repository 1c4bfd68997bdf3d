"""Loading directory data into the SQL store: `import_data` and demo seeding.

Validation and the SQL writes live in the importer package; this mixin
adds the transaction policy around them (see `import_data`).
"""

from __future__ import annotations

import asyncio
import json
from importlib import resources

from callpilot.server.store import convert, schema
from callpilot.server.store.base import StoreBase
from callpilot.server.store.importer import (
    DataDocument,
    ImportReport,
    existing_keys,
    parse_json,
    referenced_customer_ids,
    validate_document,
    write,
    write_document,
)
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection

DEMO_DATA = "demo_data.json"
#: On SQLite, an import larger than this is written in batches of this many records.
BATCH_RECORDS = 2_000
# First half of the (key, hashtext(tenant)) advisory lock taken while seeding.
_PG_SEED_LOCK = 0x5345_4544  # "SEED"


def load_demo_document() -> object:
    """The packaged demo data set, parsed (blocking: call it in a thread)."""
    raw = resources.files("callpilot.server.store").joinpath(DEMO_DATA).read_text(encoding="utf-8")
    return json.loads(raw)


class DataLoading(StoreBase):
    """Import and demo seeding for one tenant."""

    async def import_data(self, doc: object) -> ImportReport:
        """Validate and upsert a directory document (see docs/data-import.md); all or nothing.

        `doc` is the parsed JSON, or its text as str/bytes. The document is
        validated before any write transaction opens, so that the seconds a
        big file takes to check never hold the database's writer. Checking
        references against the customers already stored outside the write
        is sound because nothing deletes customers.

        On PostgreSQL the writes are one transaction (its row locks do not
        stop live calls from writing their events). SQLite has one writer for
        the whole file, so a document of more than BATCH_RECORDS records is
        written in batches of that size, each its own transaction, and a
        live call's event write waits for one batch at most (the writer lock
        is fair, see base.py). All or nothing still holds for a failure: the
        rows the import replaces are read first and put back, and the rows
        it created removed, if any batch fails. While such an import runs,
        readers may see the part of it written so far.
        """
        if isinstance(doc, str | bytes):
            doc = await asyncio.to_thread(parse_json, doc)
        async with self._read() as conn:
            known = await existing_keys(
                conn, schema.customers, "customer_id", self._tenant, referenced_customer_ids(doc)
            )
        # Pure CPU work that grows with the file: keep it off the event loop.
        validated = await asyncio.to_thread(validate_document, doc, known_customer_ids=known)
        try:
            if self.backend == "sqlite" and write.size(validated) > BATCH_RECORDS:
                return await self._write_in_batches(validated)
            async with self._write() as conn:
                return await write_document(conn, self._tenant, validated, convert.now_utc())
        finally:
            self._shared.knowledge.pop(self._tenant, None)

    async def _write_in_batches(self, doc: DataDocument) -> ImportReport:
        async with self._read() as conn:
            snapshot = await write.Snapshot.take(conn, self._tenant, doc)
        now = convert.now_utc()
        report = ImportReport()
        try:
            for part in write.split(doc, BATCH_RECORDS):
                async with self._write() as conn:
                    report = write.add(report, await write_document(conn, self._tenant, part, now))
        except BaseException:
            async with self._write() as conn:
                await snapshot.restore(conn)
            raise
        return report

    async def _import(self, conn: AsyncConnection, doc: object) -> ImportReport:
        """Validate and write inside the caller's transaction (seeding: small, and must be atomic)."""
        known = await existing_keys(
            conn, schema.customers, "customer_id", self._tenant, referenced_customer_ids(doc)
        )
        validated = await asyncio.to_thread(validate_document, doc, known_customer_ids=known)
        report = await write_document(conn, self._tenant, validated, convert.now_utc())
        self._shared.knowledge.pop(self._tenant, None)
        return report

    async def seed_demo_data(self) -> ImportReport | None:
        """Import the packaged demo data if this tenant's directory is empty.

        Returns what was imported, or None when the directory already had
        data. Two servers starting together must not both seed: SQLite's
        write lock (BEGIN IMMEDIATE) serialises them, and on PostgreSQL a
        per-tenant advisory lock does, so the second one finds data.
        """
        doc = await asyncio.to_thread(load_demo_document)
        async with self._write() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key, hashtext(:tenant))"),
                    {"key": _PG_SEED_LOCK, "tenant": self._tenant},
                )
            for table in schema.DIRECTORY_TABLES:
                found = await conn.execute(select(1).where(table.c.tenant_id == self._tenant).limit(1))
                if found.first() is not None:
                    return None
            return await self._import(conn, doc)
