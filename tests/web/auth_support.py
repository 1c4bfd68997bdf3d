"""A real `callpilot serve` with CALLPILOT_AUTH=on and keys made by `callpilot keys create`,
for the gateway's auth tests (grpc-web, browser calls, the agent app)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from support import VENV_BIN, ServerProcess


def create_key(env: dict[str, str], tenant: str, role: str) -> str:
    out = subprocess.run(
        [str(VENV_BIN / "callpilot"), "keys", "create", "--tenant", tenant, "--role", role],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout.strip()


@dataclass
class AuthServer:
    proc: ServerProcess
    integrator: str
    agent: str
    admin: str
    other_agent: str  # an agent of another tenant ("acme")


@contextmanager
def auth_server(tmp: Path, log: Path, **extra_env: str) -> Iterator[AuthServer]:
    env = {
        "CALLPILOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'auth.sqlite'}",
        "CALLPILOT_DATA_DIR": str(tmp),
        "CALLPILOT_STT": "null",
        "CALLPILOT_AUTH": "on",
        **extra_env,
    }
    proc = ServerProcess(env, log).start()
    try:
        yield AuthServer(
            proc,
            integrator=create_key(env, "default", "integrator"),
            agent=create_key(env, "default", "agent"),
            admin=create_key(env, "default", "admin"),
            other_agent=create_key(env, "acme", "agent"),
        )
    finally:
        proc.stop()
