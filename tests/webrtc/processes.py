"""`callpilot gateway` as a subprocess, exactly as a user runs it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

from support import ROOT, VENV_BIN

# The TURN configuration of the tests' "quick" gateway (no TURN server is ever contacted).
TURN_SECRET = "test-turn-secret"
TURN_TTL_S = 120

SERVING_RE = re.compile(r"callpilot gateway: serving on (\S+):(\d+)")


def free_port() -> int:
    """A loopback port that was free a moment ago (the gateway prints its configured port, not a bound one)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class GatewayProcess:
    def __init__(self, server: str, env: dict[str, str], log_path: Path) -> None:
        self.server = server
        self.env = env
        self.log_path = log_path
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> GatewayProcess:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                str(VENV_BIN / "callpilot"),
                "gateway",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--server",
                self.server,
            ],
            env={**os.environ, **self.env},
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=ROOT,
        )
        assert self.proc.stdout is not None
        os.set_blocking(self.proc.stdout.fileno(), False)
        deadline = time.monotonic() + timeout
        buffer = b""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.proc.returncode}; see {self.log_path}")
            chunk = self.proc.stdout.read()
            if chunk:
                buffer += chunk
                if SERVING_RE.search(buffer.decode(errors="replace")):
                    return self
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"gateway did not start within {timeout}s; see {self.log_path}")

    def stop(self, timeout: float = 40.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(10)
        self._log.close()
        self.proc = None
        return code
