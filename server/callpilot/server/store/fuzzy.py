"""The store's side of matching what was heard (`directory.FuzzyDirectory`).

Both reads are plain indexed SQL; the scoring (phonetic keys, edit distance)
happens in `context.matching`, so every directory gets the same rules.

* `customer_names` returns the tenant's (id, name) pairs, bounded by
  `limit` (a name index for scoring in memory: a few hundred kilobytes for
  tens of thousands of customers).
* `order_rows` looks up a bounded list of candidate order numbers (the
  one-edit variants of a number as heard) with one `IN` query on the
  primary key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncConnection

from . import schema

__all__ = ["MAX_ORDER_NUMBERS", "NAME_INDEX_LIMIT", "customer_names", "order_rows"]

NAME_INDEX_LIMIT = 20000
"""Customers scored for one name; larger directories should narrow the search first."""
MAX_ORDER_NUMBERS = 500
"""Order numbers one lookup may ask for (a 10-digit number has ~200 one-edit variants)."""


async def customer_names(conn: AsyncConnection, tenant: str, limit: int) -> list[tuple[str, str]]:
    c = schema.customers.c
    rows = (
        await conn.execute(
            select(c.customer_id, c.name)
            .where(c.tenant_id == tenant)
            .order_by(c.customer_id)
            .limit(max(0, min(limit, NAME_INDEX_LIMIT)))
        )
    ).all()
    return [(str(r.customer_id), str(r.name)) for r in rows]


async def order_rows(conn: AsyncConnection, tenant: str, numbers: Sequence[str]) -> Sequence[Row[Any]]:
    wanted = list(dict.fromkeys(n for n in numbers if n))[:MAX_ORDER_NUMBERS]
    if not wanted:
        return []
    o = schema.orders.c
    return (
        await conn.execute(
            select(schema.orders)
            .where(o.tenant_id == tenant, o.order_number.in_(wanted))
            .order_by(o.order_number)
        )
    ).all()
