"""Python side of `browser.mjs`: one headless Chromium per party, driven with JSON lines.

Each party gets its own Chromium process because the fake microphone file
(`--use-file-for-fake-audio-capture`) is a per-process flag, and its own
fresh profile directory. Every command has a deadline; `close()` always
ends the process (and its children) even when Chromium is wedged.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import subprocess
import wave
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("browser.mjs")
CHROMIUM = Path("/usr/bin/chromium")
CAPTURE_RATE = 48_000


class BrowserError(RuntimeError):
    pass


def capture_wav(speech: Path, out: Path, *, lead_silence_s: float, tail_silence_s: float = 1.0) -> Path:
    """The fake microphone file: 48 kHz mono 16-bit PCM (Chromium's native capture format).

    Chromium starts reading the file when getUserMedia opens the device,
    a moment before the connection is up, hence the leading silence.
    """
    subprocess.run(
        ["sox", str(speech), "-r", str(CAPTURE_RATE), "-c", "1", "-b", "16", str(out) + ".tmp.wav"],
        check=True,
        timeout=60,
    )
    with wave.open(str(out) + ".tmp.wav", "rb") as wav:
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    Path(str(out) + ".tmp.wav").unlink()
    lead = np.zeros(int(lead_silence_s * CAPTURE_RATE), dtype=np.int16)
    tail = np.zeros(int(tail_silence_s * CAPTURE_RATE), dtype=np.int16)
    with wave.open(str(out), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(CAPTURE_RATE)
        wav.writeframes(np.concatenate([lead, samples, tail]).tobytes())
    return out


def room_noise_wav(out: Path, seconds: float, *, level: float = 20.0) -> Path:
    """A quiet microphone (about -64 dBFS of noise): no speech, yet not digital silence."""
    rng = np.random.default_rng(7)
    samples = np.clip(rng.normal(0, level, int(seconds * CAPTURE_RATE)), -32768, 32767).astype(np.int16)
    with wave.open(str(out), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(CAPTURE_RATE)
        wav.writeframes(samples.tobytes())
    return out


class Browser:
    def __init__(self, audio: Path, profile: Path, log_path: Path) -> None:
        self.audio = audio
        self.profile = profile
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None
        self._ids = itertools.count(1)
        self._log: Any = None

    async def start(self, timeout: float = 60.0) -> Browser:
        self.profile.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115, ASYNC230 - tiny local file, closed in close()
        self.proc = await asyncio.create_subprocess_exec(
            "node",
            str(DRIVER),
            "--audio",
            str(self.audio),
            "--profile",
            str(self.profile),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=self._log,
            cwd=ROOT,
            start_new_session=True,  # its own process group: close() ends Chromium too
        )
        ready = await self._read(0, timeout)
        if ready != "ready":
            raise BrowserError(f"the browser driver did not start: {ready!r}")
        return self

    async def _read(self, want_id: int, timeout: float) -> Any:
        assert self.proc is not None and self.proc.stdout is not None
        while True:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
            if not line:
                raise BrowserError(f"the browser driver exited; see {self.log_path}")
            message = json.loads(line)
            if message.get("id") != want_id:
                continue
            if not message["ok"]:
                raise BrowserError(message["error"])
            return message.get("value")

    async def command(self, cmd: str, *, timeout: float = 60.0, **fields: Any) -> Any:
        assert self.proc is not None and self.proc.stdin is not None
        command_id = next(self._ids)
        self.proc.stdin.write((json.dumps({"id": command_id, "cmd": cmd, **fields}) + "\n").encode())
        await self.proc.stdin.drain()
        return await self._read(command_id, timeout)

    async def goto(self, url: str) -> None:
        await self.command("goto", url=url)

    async def click(self, selector: str) -> None:
        await self.command("click", selector=selector)

    async def eval(self, expr: str) -> Any:
        return await self.command("eval", expr=expr)

    async def wait_for(self, expr: str, timeout: float = 30.0) -> Any:
        return await self.command("waitFor", expr=expr, timeoutMs=int(timeout * 1000), timeout=timeout + 10)

    async def close_page(self) -> None:
        await self.command("closePage")

    async def close(self) -> None:
        proc = self.proc
        if proc is None:
            return
        self.proc = None
        if proc.returncode is None:
            with contextlib.suppress(Exception):
                assert proc.stdin is not None
                proc.stdin.write(b'{"id": -1, "cmd": "exit"}\n')
                await proc.stdin.drain()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await asyncio.wait_for(proc.wait(), 10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # any Chromium helper left behind
        if self._log is not None:
            self._log.close()
