"""Fixtures for the browser-call tests: one real server, real gateways, synthesised voices.

Everything runs on loopback: the gateways run with CALLPILOT_ICE_LOOPBACK=1
and this test process enables the same mode for its own aiortc peers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from callpilot.gateway.webrtc import loopback
from support import ServerProcess, concat_wavs, synth
from webrtc.processes import TURN_SECRET, TURN_TTL_S, GatewayProcess

CUSTOMER_LINES = [
    "Hi, my name is Maria Garcia.",
    "I am calling about my order seven eight nine oh one, I would like a refund.",
]
AGENT_LINE = "Thank you Maria, let me look up that order for you."
# The second sentence is long so the tab can be closed while it is being said.
CUT_LINES = [
    "I am calling about my order seven eight nine oh one.",
    "The headphones arrived broken and the left side makes a loud crackling noise all the time, "
    "so I would like to send them back and get all of my money returned as soon as possible please.",
]


@pytest.fixture(scope="session", autouse=True)
def _loopback_ice() -> None:
    loopback.enable()


@pytest.fixture(scope="session")
def webrtc_server(tmp_path_factory: pytest.TempPathFactory, artifacts: Path) -> Iterator[ServerProcess]:
    """`callpilot serve` with Whisper and the local assistant on a fresh SQLite database."""
    data = tmp_path_factory.mktemp("webrtc-server")
    proc = ServerProcess(
        {
            "CALLPILOT_DATABASE_URL": f"sqlite+aiosqlite:///{data / 'callpilot.db'}",
            "CALLPILOT_DATA_DIR": str(data),
            "CALLPILOT_SHUTDOWN_GRACE_S": "20",
        },
        artifacts / "server-webrtc.log",
    ).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def gateway(webrtc_server: ServerProcess, artifacts: Path) -> Iterator[GatewayProcess]:
    """The gateway on loopback ICE with the default silence timeout."""
    proc = GatewayProcess(
        webrtc_server.address, {"CALLPILOT_ICE_LOOPBACK": "1"}, artifacts / "gateway-webrtc.log"
    ).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def quick_gateway(webrtc_server: ServerProcess, artifacts: Path) -> Iterator[GatewayProcess]:
    """A gateway with a 3 s silence timeout and a (never contacted) TURN server configured."""
    proc = GatewayProcess(
        webrtc_server.address,
        {
            "CALLPILOT_ICE_LOOPBACK": "1",
            "CALLPILOT_SILENCE_TIMEOUT_S": "3",
            "CALLPILOT_STUN_URLS": "stun:127.0.0.1:3478",
            "CALLPILOT_TURN_URLS": "turn:127.0.0.1:3478?transport=udp,turn:127.0.0.1:3478?transport=tcp",
            "CALLPILOT_TURN_SECRET": TURN_SECRET,
            "CALLPILOT_TURN_TTL_S": str(TURN_TTL_S),
            "CALLPILOT_ALLOWED_ORIGINS": "https://agents.example.com",
        },
        artifacts / "gateway-webrtc-quick.log",
    ).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def voices(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """16 kHz mono speech: the customer (flite kal), the agent (flite slt), the cut-off customer."""
    d = tmp_path_factory.mktemp("webrtc-speech")
    customer = concat_wavs(
        [synth(line, d / f"customer{i}.wav") for i, line in enumerate(CUSTOMER_LINES)],
        d / "customer.wav",
        gap_s=1.2,
    )
    agent = synth(AGENT_LINE, d / "agent.wav", voice="flite:slt")
    cut = concat_wavs(
        [synth(line, d / f"cut{i}.wav") for i, line in enumerate(CUT_LINES)], d / "cut.wav", gap_s=1.5
    )
    return {"customer": customer, "agent": agent, "cut": cut}
