"""Alembic environment for the store's migrations.

`Store.open` runs migrations on a connection it already holds and hands it
over in `config.attributes["connection"]`; that path needs no alembic.ini.
The other branch serves developers running the alembic command line (for
example `alembic revision --autogenerate`) with a config from
`callpilot.server.store.migrate.alembic_config(url)`.
"""

from __future__ import annotations

import asyncio

from alembic import context
from callpilot.server.store.engine import create_engine
from callpilot.server.store.migrate import configure_and_run, configure_offline_and_run
from sqlalchemy.engine import Connection


async def _run_online(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(configure_and_run)
    finally:
        await engine.dispose()


def _main() -> None:
    connection = context.config.attributes.get("connection")
    if isinstance(connection, Connection):
        configure_and_run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection and no sqlalchemy.url: build the config with alembic_config(url)")
    if context.is_offline_mode():
        configure_offline_and_run(url)
    else:
        asyncio.run(_run_online(url))


_main()
