"""Fixtures shared by the integration and end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support import ServerProcess, create_pg_database, drop_pg_database, run_async

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    url = run_async(create_pg_database())
    assert isinstance(url, str)
    yield url
    run_async(drop_pg_database(url))


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database URL on each backend; the suite runs once per backend."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('sqlite') / 'callpilot.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture(scope="session")
def server(
    backend: str, tmp_path_factory: pytest.TempPathFactory, artifacts: Path
) -> Iterator[ServerProcess]:
    """A real `callpilot serve` (Whisper, local assistant) on the backend's database."""
    data = tmp_path_factory.mktemp("server-data")
    name = "sqlite" if backend.startswith("sqlite") else "postgres"
    proc = ServerProcess(
        {
            "CALLPILOT_DATABASE_URL": backend,
            "CALLPILOT_DATA_DIR": str(data),
            "CALLPILOT_SHUTDOWN_GRACE_S": "20",
        },
        artifacts / f"server-{name}.log",
    ).start()
    yield proc
    proc.stop()
