"""Alembic migrations of the store, shipped inside the package.

They are applied by `Store.open` (upgrade to head) with a configuration built
in code, so deployments need no alembic.ini; see `callpilot.server.store.migrate`.
"""
