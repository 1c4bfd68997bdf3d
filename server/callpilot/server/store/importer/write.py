"""Writing a validated import document: every table through the one upsert helper.

`write_document` upserts a (part of a) document inside the caller's
transaction and counts what it created and replaced. `split` cuts a
document into batches for SQLite (see loading.py: its single writer would
otherwise be held for the whole import), and `Snapshot` is what lets a
batched import still be all or nothing: the rows it is about to replace,
restored if a later batch fails.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from callpilot.server.store import schema
from callpilot.server.store.importer.errors import ImportReport
from callpilot.server.store.importer.normalize import phone_digits
from callpilot.server.store.importer.validate import DataDocument
from callpilot.server.store.knowledge import fold
from callpilot.server.store.upsert import upsert
from sqlalchemy import Table, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

# Keeps IN (...) lists well under SQLite's bound-parameter limit.
CHUNK = 500

#: The directory tables an import writes, with their key column and the
#: document section and record attribute that key comes from.
_KEYED: tuple[tuple[Table, str, str, str], ...] = (
    (schema.customers, "customer_id", "customers", "id"),
    (schema.orders, "order_number", "orders", "number"),
    (schema.tickets, "ticket_id", "tickets", "id"),
    (schema.policies, "policy_type", "policies", "type"),
    (schema.articles, "article_id", "articles", "id"),
)


def _chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


async def existing_keys(
    conn: AsyncConnection, table: Table, key: str, tenant_id: str, keys: Collection[str]
) -> set[str]:
    """Which of `keys` already exist in `table` for the tenant."""
    found: set[str] = set()
    column = table.c[key]
    for chunk in _chunks(sorted(keys)):
        rows = await conn.execute(select(column).where(table.c.tenant_id == tenant_id, column.in_(chunk)))
        found.update(str(value) for value in rows.scalars())
    return found


def _keys(doc: DataDocument, section: str, attribute: str) -> list[str]:
    return [str(getattr(record, attribute)) for record in getattr(doc, section)]


def _rows(tenant_id: str, doc: DataDocument, now: datetime) -> dict[str, list[dict[str, object]]]:
    """The rows of every table, keyed by table name."""
    return {
        "customers": [
            {
                "tenant_id": tenant_id,
                "customer_id": c.id,
                "name": c.name,
                "name_folded": fold(c.name),
                "email": c.email,
                "email_lower": c.email.lower(),
                "phone": c.phone,
                "phone_digits": phone_digits(c.phone),
                "tier": c.tier,
                "status": c.status,
                "updated_at": now,
            }
            for c in doc.customers
        ],
        "orders": [
            {
                "tenant_id": tenant_id,
                "order_number": o.number,
                "customer_id": o.customer_id,
                "status": o.status,
                "total_cents": o.total,
                "currency_code": o.currency,
                "order_time": o.order_date,
                "delivered_time": o.delivered_date,
                "updated_at": now,
            }
            for o in doc.orders
        ],
        "order_items": [
            {
                "tenant_id": tenant_id,
                "order_number": o.number,
                "line_no": line_no,
                "sku": it.sku,
                "name": it.name,
                "quantity": it.quantity,
                "unit_price_cents": it.unit_price,
            }
            for o in doc.orders
            for line_no, it in enumerate(o.items, start=1)
        ],
        "tickets": [
            {
                "tenant_id": tenant_id,
                "ticket_id": t.id,
                "customer_id": t.customer_id,
                "subject": t.subject,
                "status": t.status,
                "create_time": t.created_at,
                "updated_at": now,
            }
            for t in doc.tickets
        ],
        "policies": [
            {
                "tenant_id": tenant_id,
                "policy_type": p.type,
                "title": p.title,
                "body": p.body,
                "updated_at": now,
            }
            for p in doc.policies
        ],
        "articles": [
            {
                "tenant_id": tenant_id,
                "article_id": a.id,
                "title": a.title,
                "body": a.body,
                "tags": list(a.tags),
                "updated_at": now,
            }
            for a in doc.articles
        ],
    }


async def _delete_items(conn: AsyncConnection, tenant_id: str, order_numbers: Sequence[str]) -> None:
    items = schema.order_items
    for chunk in _chunks(order_numbers):
        await conn.execute(
            delete(items).where(items.c.tenant_id == tenant_id, items.c.order_number.in_(chunk))
        )


async def write_document(
    conn: AsyncConnection, tenant_id: str, doc: DataDocument, now: datetime
) -> ImportReport:
    """Upsert a validated document inside the caller's transaction."""
    created = updated = 0
    rows = _rows(tenant_id, doc, now)
    for table, key, section, attribute in _KEYED:
        ids = _keys(doc, section, attribute)
        existing = await existing_keys(conn, table, key, tenant_id, ids)
        updated += len(existing)
        created += len(ids) - len(existing)
        await upsert(conn, table, rows[section], ("tenant_id", key))
        if table is schema.orders:
            # An upserted order's lines are replaced, not merged: the file is the truth.
            await _delete_items(conn, tenant_id, ids)
            if rows["order_items"]:
                await conn.execute(schema.order_items.insert(), rows["order_items"])
    return ImportReport(
        customers=len(doc.customers),
        orders=len(doc.orders),
        tickets=len(doc.tickets),
        policies=len(doc.policies),
        articles=len(doc.articles),
        created=created,
        updated=updated,
    )


def size(doc: DataDocument) -> int:
    """Records in a document (an order counts with its items)."""
    return (
        len(doc.customers)
        + sum(1 + len(o.items) for o in doc.orders)
        + len(doc.tickets)
        + len(doc.policies)
        + len(doc.articles)
    )


def split(doc: DataDocument, batch: int) -> list[DataDocument]:
    """Consecutive parts of at most about `batch` records, in the document's order.

    Customers come before the orders and tickets that reference them, as in
    the document, so every part's references exist once earlier parts are in.
    """
    empty = DataDocument((), (), (), (), ())
    parts: list[DataDocument] = []
    current: dict[str, list[Any]] = {}
    weight = 0
    for section in ("customers", "orders", "tickets", "policies", "articles"):
        for record in getattr(doc, section):
            current.setdefault(section, []).append(record)
            weight += 1 + len(record.items) if section == "orders" else 1
            if weight >= batch:
                parts.append(replace(empty, **{k: tuple(v) for k, v in current.items()}))
                current, weight = {}, 0
    if current or not parts:
        parts.append(replace(empty, **{k: tuple(v) for k, v in current.items()}))
    return parts


def add(a: ImportReport, b: ImportReport) -> ImportReport:
    return ImportReport(
        customers=a.customers + b.customers,
        orders=a.orders + b.orders,
        tickets=a.tickets + b.tickets,
        policies=a.policies + b.policies,
        articles=a.articles + b.articles,
        created=a.created + b.created,
        updated=a.updated + b.updated,
    )


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The rows an import will replace, and the keys it will write: enough to undo it."""

    tenant_id: str
    keys: Mapping[str, list[str]]
    rows: Mapping[str, list[dict[str, object]]]

    @classmethod
    async def take(cls, conn: AsyncConnection, tenant_id: str, doc: DataDocument) -> Snapshot:
        keys: dict[str, list[str]] = {}
        rows: dict[str, list[dict[str, object]]] = {}
        tables = [*_KEYED, (schema.order_items, "order_number", "orders", "number")]
        for table, key, section, attribute in tables:
            ids = _keys(doc, section, attribute)
            keys[table.name] = ids
            found: list[dict[str, object]] = []
            for chunk in _chunks(ids):
                result = await conn.execute(
                    select(table).where(table.c.tenant_id == tenant_id, table.c[key].in_(chunk))
                )
                found.extend(dict(r._mapping) for r in result)
            rows[table.name] = found
        return cls(tenant_id, keys, rows)

    async def restore(self, conn: AsyncConnection) -> None:
        """Put back what was there: rows the import created go, the ones it replaced return.

        Rows that existed before are overwritten in place (never deleted), so
        nothing that references them is disturbed.
        """
        key_of = {table.name: key for table, key, _, _ in _KEYED}
        await _delete_items(conn, self.tenant_id, self.keys["orders"])
        # Children before parents on the way out.
        for name in ("tickets", "orders", "customers", "policies", "articles"):
            table = schema.metadata.tables[name]
            column = table.c[key_of[name]]
            before = {str(row[key_of[name]]) for row in self.rows[name]}
            created = [k for k in self.keys[name] if k not in before]
            for chunk in _chunks(created):
                await conn.execute(
                    delete(table).where(table.c.tenant_id == self.tenant_id, column.in_(chunk))
                )
        for name in ("customers", "orders", "tickets", "policies", "articles"):
            await upsert(conn, schema.metadata.tables[name], self.rows[name], ("tenant_id", key_of[name]))
        if self.rows["order_items"]:
            await conn.execute(schema.order_items.insert(), self.rows["order_items"])
