"""The one upsert of the SQL store: INSERT … ON CONFLICT DO UPDATE.

SQLite and PostgreSQL spell it the same way but SQLAlchemy builds it from
each dialect's own `insert`, so every upsert (directory import, context
snapshots) goes through this helper instead of branching on the dialect.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection


async def upsert(
    conn: AsyncConnection,
    table: Table,
    rows: Sequence[Mapping[str, object]],
    keys: Sequence[str],
    *,
    only_if_greater: str | None = None,
) -> None:
    """Insert `rows`; a row whose `keys` exist replaces every other column.

    With `only_if_greater`, an existing row is replaced only when the new
    row's value of that column is greater (a late, older write loses).
    An empty `rows` is a no-op.
    """
    if not rows:
        return
    stmt = postgresql.insert(table) if conn.dialect.name == "postgresql" else sqlite.insert(table)
    where = None if only_if_greater is None else table.c[only_if_greater] < stmt.excluded[only_if_greater]
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c[k] for k in keys],
        set_={c.name: stmt.excluded[c.name] for c in table.c if c.name not in keys},
        where=where,
    )
    await conn.execute(stmt, list(rows))
