"""Fixtures for the connector tests: real server and gateway processes, synthesised voices.

Protocol tests run against a server with CALLPILOT_STT=null (no speech
recognition needed to check the wire protocol); the end-to-end tests (slow)
use Whisper and the local assistant, like a real deployment.
"""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import GatewayProcess, ServerProcess, synth

TWILIO_TOKEN = "test-twilio-auth-token-0123456789"
AUDIOHOOK_SECRET = b"test-audiohook-client-secret-0123"
API_KEY = "cp_test_connector_key"

CUSTOMER_LINES = [
    "Hi, my name is Maria Garcia.",
    "I am calling about my order seven eight nine oh one, I would like a refund.",
]
AGENT_LINE = "Thank you Maria, let me look up that order for you."


def _server(tmp: Path, log: Path, stt: str) -> ServerProcess:
    return ServerProcess(
        {
            "CALLPILOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'callpilot.db'}",
            "CALLPILOT_DATA_DIR": str(tmp),
            "CALLPILOT_SHUTDOWN_GRACE_S": "20",
            "CALLPILOT_STT": stt,
        },
        log,
    )


def gateway_process(server: ServerProcess, log: Path) -> GatewayProcess:
    return GatewayProcess(
        server.address,
        log,
        env={
            "CALLPILOT_TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
            "CALLPILOT_AUDIOHOOK_CLIENT_SECRET": base64.b64encode(AUDIOHOOK_SECRET).decode(),
        },
    )


@pytest.fixture(scope="session")
def null_server(tmp_path_factory: pytest.TempPathFactory, artifacts: Path) -> Iterator[ServerProcess]:
    proc = _server(tmp_path_factory.mktemp("connectors-null"), artifacts / "server-connectors.log", "null")
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def gateway(null_server: ServerProcess, artifacts: Path) -> Iterator[GatewayProcess]:
    proc = gateway_process(null_server, artifacts / "gateway-connectors.log").start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def whisper_server(tmp_path_factory: pytest.TempPathFactory, artifacts: Path) -> Iterator[ServerProcess]:
    proc = _server(
        tmp_path_factory.mktemp("connectors-whisper"), artifacts / "server-connectors-whisper.log", "whisper"
    )
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def whisper_gateway(whisper_server: ServerProcess, artifacts: Path) -> Iterator[GatewayProcess]:
    proc = gateway_process(whisper_server, artifacts / "gateway-connectors-whisper.log").start()
    yield proc
    proc.stop()


def mulaw(wav: Path) -> bytes:
    """A WAV as raw G.711 μ-law at 8 kHz mono (sox, no dither: the same text gives the same bytes)."""
    out = wav.with_suffix(".ul")
    subprocess.run(
        ["sox", "-D", str(wav), "-r", "8000", "-c", "1", "-e", "mu-law", "-t", "raw", str(out)],
        check=True,
        timeout=60,
    )
    return out.read_bytes()


@pytest.fixture(scope="session")
def conversation(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    """(customer, agent) μ-law tracks of one call, equal length, the agent answering after the customer."""
    d = tmp_path_factory.mktemp("connector-speech")
    gap = b"\xff" * 8000  # 1 s
    customer = gap.join(mulaw(synth(line, d / f"customer{i}.wav")) for i, line in enumerate(CUSTOMER_LINES))
    agent = mulaw(synth(AGENT_LINE, d / "agent.wav", voice="flite:slt"))
    customer_track = b"\xff" * 4000 + customer + b"\xff" * (len(agent) + 12000)
    agent_track = b"\xff" * (4000 + len(customer) + 6000) + agent + b"\xff" * 6000
    n = max(len(customer_track), len(agent_track))
    return customer_track.ljust(n, b"\xff"), agent_track.ljust(n, b"\xff")


def tone(seconds: float, hz: float = 440.0) -> bytes:
    """A μ-law sine: audio that is not silence, for the protocol tests."""
    import numpy as np

    t = np.arange(int(seconds * 8000)) / 8000
    pcm = (np.sin(2 * np.pi * hz * t) * 8000).astype(np.int16)
    return bytes(_mulaw_encode(pcm))


def _mulaw_encode(pcm: object) -> bytes:
    """G.711 μ-law encoding (the standard segment/mantissa form)."""
    import numpy as np

    x = np.asarray(pcm, dtype=np.int32)
    sign = np.where(x < 0, 0x80, 0)
    mag = np.minimum(np.abs(x), 32635) + 0x84
    exponent = np.floor(np.log2(mag)).astype(np.int32) - 7
    mantissa = (mag >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8).tobytes()
