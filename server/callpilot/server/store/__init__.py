"""Persistence: the directory (customers, orders, tickets, policies,
knowledge) and the calls with their durable event log, on SQLite or
PostgreSQL.

Typical use in the server::

    store = await Store.open(settings.database_url or default_sqlite_url(data_dir), seed_demo=True)
    ...
    await store.close()
"""

from callpilot.server.store.engine import default_sqlite_url, normalize_url
from callpilot.server.store.importer import (
    DataDocument,
    DataImportError,
    ImportReport,
    validate_document,
)
from callpilot.server.store.migrate import alembic_config, head_revision
from callpilot.server.store.store import DEFAULT_TENANT, Store, load_demo_document

__all__ = [
    "DEFAULT_TENANT",
    "DataDocument",
    "DataImportError",
    "ImportReport",
    "Store",
    "alembic_config",
    "default_sqlite_url",
    "head_revision",
    "load_demo_document",
    "normalize_url",
    "validate_document",
]
