"""Fixtures for the fault suite: real servers on each backend, with metrics."""

from __future__ import annotations

from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database on each backend (PostgreSQL: a fresh tenant-free database per test)."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'faults.sqlite'}"
    from support import create_pg_database, drop_pg_database, run_async

    url = run_async(create_pg_database())
    assert isinstance(url, str)
    request.addfinalizer(lambda: run_async(drop_pg_database(url)))
    return url
