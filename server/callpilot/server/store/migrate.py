"""Applying the packaged Alembic migrations without an alembic.ini on disk.

The Config is built in code and points at the `migrations` directory inside
this package, so an installed wheel migrates its own database at start-up.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command, context
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from callpilot.server.store.engine import WRITE_OPTION
from callpilot.server.store.schema import metadata
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Arbitrary constant: serialises concurrent start-ups migrating one PostgreSQL database.
_PG_MIGRATION_LOCK = 0x43_50_4C_54  # "CPLT"


def alembic_config(url: str | None = None) -> Config:
    """A Config for the packaged migrations; pass `url` for command-line style use."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        # ConfigParser interpolates '%', which URL-encoded passwords contain.
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    """The revision a fully migrated database is at."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError("no migrations found in the package")
    return head


def configure_and_run(connection: Connection) -> None:
    """Run pending migrations on `connection` (called from env.py inside alembic)."""
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds tables instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def configure_offline_and_run(url: str) -> None:
    """Emit the migrations as SQL (alembic --sql) for DBAs who apply them by hand."""
    context.configure(url=url, target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def _upgrade(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def current_revision(connection: Connection) -> str | None:
    """The revision the database on `connection` is at, None when unmigrated."""
    return MigrationContext.configure(connection).get_current_revision()


async def upgrade_to_head(engine: AsyncEngine) -> None:
    """Bring the database to the latest schema in one transaction.

    Alembic is synchronous, so it runs through `run_sync` on the async
    connection (the driver stays async). It reads its few small script files
    synchronously; that happens once at open, never on a request path.
    """
    async with engine.connect() as conn:
        await conn.execution_options(**{WRITE_OPTION: True})
        async with conn.begin():
            if conn.dialect.name == "postgresql":
                await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
            await conn.run_sync(_upgrade)
