"""Engines for the two supported backends, set up so neither surprises us.

SQLite needs the most care: the stdlib driver's legacy transaction handling
neither begins a transaction before a SELECT nor around DDL, which breaks
read-then-write atomicity and transactional migrations. We take BEGIN over
ourselves, and writers use BEGIN IMMEDIATE so that two writers queue on the
busy timeout instead of one failing with "database is locked" when it tries
to upgrade a read lock. WAL lets readers proceed while a writer commits.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from callpilot.server.errors import ConfigError
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import Pool, StaticPool

#: Execution option that marks a connection as about to write (SQLite: BEGIN IMMEDIATE).
WRITE_OPTION = "callpilot_write"

SQLITE_BUSY_TIMEOUT_MS = 10_000
#: Connections a SQLite file pool keeps open (and may add again on top, briefly).
SQLITE_POOL_SIZE = 16
DEFAULT_DB_FILENAME = "callpilot.db"


def default_sqlite_url(data_dir: Path) -> str:
    """The URL of the database used when none is configured: a file in `data_dir`."""
    return URL.create(
        "sqlite+aiosqlite", database=str(Path(data_dir).expanduser().resolve() / DEFAULT_DB_FILENAME)
    ).render_as_string()


def normalize_url(url: str) -> URL:
    """Accept the URL spellings people paste (postgres://, sqlite://) but only async drivers.

    A sync driver would block the event loop on every query, so it is a
    configuration error rather than something to tolerate.
    """
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ConfigError(f"invalid database URL {url!r}: {exc}") from exc
    backend = parsed.get_backend_name()
    driver = parsed.get_driver_name() if "+" in parsed.drivername else ""
    if backend in ("postgresql", "postgres"):
        if driver not in ("", "asyncpg"):
            raise ConfigError(
                f"database driver {parsed.drivername!r} is not supported",
                hints=["use postgresql+asyncpg://user@host:5432/dbname"],
            )
        return parsed.set(drivername="postgresql+asyncpg")
    if backend == "sqlite":
        if driver not in ("", "aiosqlite"):
            raise ConfigError(
                f"database driver {parsed.drivername!r} is not supported",
                hints=["use sqlite+aiosqlite:///path/to/callpilot.db"],
            )
        return parsed.set(drivername="sqlite+aiosqlite")
    raise ConfigError(
        f"unsupported database {backend!r} in {parsed.render_as_string()!r}",
        hints=["use sqlite+aiosqlite:///path/to/file.db or postgresql+asyncpg://user@host/db"],
    )


def sqlite_file(url: URL) -> Path | None:
    """The database file a SQLite URL points at, or None for in-memory databases."""
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database)


def is_single_connection(url: URL) -> bool:
    """True for a private in-memory SQLite database, which lives in one connection."""
    return (
        url.get_backend_name() == "sqlite"
        and sqlite_file(url) is None
        and "file:" not in (url.database or "")
    )


def create_engine(url: str | URL) -> AsyncEngine:
    """An async engine for `url` with the backend-specific setup described above."""
    parsed = normalize_url(url) if isinstance(url, str) else url
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    return create_async_engine(
        parsed,
        pool_pre_ping=True,
        connect_args={"timeout": 10, "server_settings": {"application_name": "callpilot"}},
    )


def _sqlite_engine(url: URL) -> AsyncEngine:
    kwargs: dict[str, Any] = {}
    if is_single_connection(url):
        # A plain in-memory database exists per connection, so every checkout
        # must share the one connection or each would see an empty database.
        kwargs["poolclass"] = StaticPool
    else:
        # Keep the connections a busy server reads on: the default (5 kept, 10
        # overflow) closed and reopened one per burst of reads, and each aiosqlite
        # connection is a new thread plus PRAGMAs on the event loop's path.
        kwargs["pool_size"] = SQLITE_POOL_SIZE
        kwargs["max_overflow"] = SQLITE_POOL_SIZE
    engine = create_async_engine(url, **kwargs)
    event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
    event.listen(engine.sync_engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, connection_record: Any) -> None:
    # Turn off the driver's own BEGIN handling; _sqlite_on_begin does it instead.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    if conn.get_execution_options().get(WRITE_OPTION):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")


# One writer turn per SQLite file pool, whoever writes through it (the store, the
# webhook outbox): keyed by the pool, which every execution_options() copy shares.
_WRITER_TURNS: weakref.WeakKeyDictionary[Pool, asyncio.Lock] = weakref.WeakKeyDictionary()


def writer_turn(engine: AsyncEngine) -> asyncio.Lock | None:
    """The in-process FIFO lock SQLite writers of `engine` take before BEGIN IMMEDIATE.

    Why: a SQLite file has one writer. Writers of one process that meet on
    the file's lock instead wait in SQLite's busy handler, which sleeps in
    growing steps (up to 100 ms) and gives up with "database is locked" after
    the busy timeout; on this lock they queue fairly and wait as long as it
    takes. Other processes still meet on the file's lock. None on PostgreSQL
    (row locks) and for a private in-memory database (one connection, taken
    in turns by the store).
    """
    if engine.dialect.name != "sqlite" or is_single_connection(engine.url):
        return None
    pool = engine.sync_engine.pool
    turn = _WRITER_TURNS.get(pool)
    if turn is None:
        turn = _WRITER_TURNS[pool] = asyncio.Lock()
    return turn


@asynccontextmanager
async def write_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A write transaction (BEGIN IMMEDIATE on SQLite) taken in this process's writer turn."""
    turn = writer_turn(engine)
    writer = engine.execution_options(**{WRITE_OPTION: True})
    if turn is None:
        async with writer.begin() as conn:
            yield conn
        return
    async with turn, writer.begin() as conn:
        yield conn
