"""Test support: real speech, real server processes, real databases.

Speech is synthesised with espeak-ng at test time; servers are started as
`callpilot serve` subprocesses on an ephemeral loopback port, exactly as a
user runs them, and stopped with SIGTERM at teardown.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
import wave
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_URL_BASE = "postgresql+asyncpg://postgres@127.0.0.1:5432/"

SERVING_RE = re.compile(r"serving on (\S+):(\d+)")


def synth(text: str, path: Path, *, voice: str = "flite:kal", rate: int = 16000, speed: int = 150) -> Path:
    """Speak `text` into a 16-bit mono WAV at `rate`.

    `voice` is "flite:NAME" or an espeak-ng voice ("en-us", "en-us+f3").
    flite's kal voice is the default because Whisper transcribes it far
    more reliably than espeak-ng's (spoken digits especially).
    """
    raw = path.with_suffix(".tts.wav")
    if voice.startswith("flite:"):
        cmd = ["flite", "-voice", voice.removeprefix("flite:"), "-t", text, "-o", str(raw)]
    else:
        cmd = ["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text]
    subprocess.run(cmd, check=True, timeout=60)
    # -D: no dither. sox dithers with a randomly seeded generator by default,
    # so every run would synthesise slightly different audio, and Whisper base
    # is borderline on some sentences ("refund" -> "riff on" about 1 run in 7).
    # The same text must always give the same samples.
    subprocess.run(
        ["sox", "-D", str(raw), "-r", str(rate), "-c", "1", "-b", "16", str(path)], check=True, timeout=60
    )
    raw.unlink()
    return path


def silence_wav(path: Path, seconds: float, rate: int = 16000) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(b"\0\0" * int(seconds * rate))
    return path


def concat_wavs(parts: Iterable[Path], out: Path, *, gap_s: float = 1.0, rate: int = 16000) -> Path:
    """Join mono WAVs of one rate with `gap_s` of silence between them."""
    chunks: list[np.ndarray] = []
    gap = np.zeros(int(gap_s * rate), dtype=np.int16)
    for part in parts:
        with wave.open(str(part), "rb") as wav:
            assert wav.getframerate() == rate and wav.getnchannels() == 1
            chunks.append(np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16))
        chunks.append(gap)
    with wave.open(str(out), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(np.concatenate(chunks).tobytes())
    return out


def stereo_wav(left: Path, right: Path, out: Path, rate: int = 16000) -> Path:
    """Interleave two mono WAVs (padded to the same length) into one stereo WAV."""
    arrays = []
    for part in (left, right):
        with wave.open(str(part), "rb") as wav:
            arrays.append(np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16))
    n = max(len(a) for a in arrays)
    padded = [np.pad(a, (0, n - len(a))) for a in arrays]
    with wave.open(str(out), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(np.stack(padded, axis=1).astype(np.int16).tobytes())
    return out


def free_port() -> int:
    """A loopback port that was free a moment ago (prefer port 0 where a command reports its port)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class CallpilotProcess:
    """A `callpilot` command in a subprocess, ready once it prints "serving on HOST:PORT".

    Every command reports the address it actually bound, so tests start
    servers on port 0 and read the port back: no race for a free port.
    """

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.address = ""
        self.port = 0
        self.starts = 0
        self._log: Any = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout: float = 120.0) -> CallpilotProcess:
        full_env = {**os.environ, **self.env}
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "callpilot"), *self.command()],
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=ROOT,
        )
        self.starts += 1
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        os.set_blocking(self.proc.stdout.fileno(), False)
        buffer = b""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.command()[0]} exited with {self.proc.returncode}; see {self.log_path}"
                )
            chunk = self.proc.stdout.read()
            if chunk:
                buffer += chunk
                match = SERVING_RE.search(buffer.decode(errors="replace"))
                if match:
                    self.address = f"{match.group(1)}:{match.group(2)}"
                    self.port = int(match.group(2))
                    return self
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"{self.command()[0]} did not start within {timeout}s; see {self.log_path}")

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: the process dies mid-stream, as in a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is None:
            return None
        self.terminate()
        try:
            code: int | None = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None
        return code


class ServerProcess(CallpilotProcess):
    """`callpilot serve` on an ephemeral loopback port."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        super().__init__({"CALLPILOT_PORT": "0", **env}, log_path)

    def command(self) -> list[str]:
        return ["serve"]

    def start(self, timeout: float = 120.0) -> ServerProcess:
        super().start(timeout)
        return self


class GatewayProcess(CallpilotProcess):
    """`callpilot gateway` for a server; a restart reuses the port it first bound."""

    def __init__(
        self, server: str, log_path: Path, *, env: dict[str, str] | None = None, port: int = 0
    ) -> None:
        super().__init__(env or {}, log_path)
        self.server = server
        self.port = port

    def command(self) -> list[str]:
        return ["gateway", "--host", "127.0.0.1", "--port", str(self.port), "--server", self.server]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    base = url

    def start(self, timeout: float = 60.0) -> GatewayProcess:
        super().start(timeout)
        return self


async def create_pg_database() -> str:
    """A fresh PostgreSQL database for one test session; returns its SQLAlchemy URL."""
    import asyncpg

    name = f"callpilot_test_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return PG_URL_BASE + name


async def drop_pg_database(url: str) -> None:
    import asyncpg

    name = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def run_async(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def create_key(env: dict[str, str], tenant: str, role: str) -> str:
    """`callpilot keys create` against the database in `env`, as an operator bootstraps keys; the secret."""
    out = subprocess.run(
        [str(VENV_BIN / "callpilot"), "keys", "create", "--tenant", tenant, "--role", role],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout.strip()
