"""`callpilot gateway` as a subprocess, exactly as a user runs it (see tests/support.py)."""

from __future__ import annotations

from pathlib import Path

import support
from support import free_port

# The TURN configuration of the tests' "quick" gateway (no TURN server is ever contacted).
TURN_SECRET = "test-turn-secret"
TURN_TTL_S = 120

__all__ = ["TURN_SECRET", "TURN_TTL_S", "GatewayProcess", "free_port"]


class GatewayProcess(support.GatewayProcess):
    """The shared gateway process, configured by environment variables."""

    def __init__(self, server: str, env: dict[str, str], log_path: Path) -> None:
        super().__init__(server, log_path, env=env)
