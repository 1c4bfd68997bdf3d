"""A taken port stops `callpilot serve` and `callpilot gateway` with one line and a non-zero exit.

The real commands run as subprocesses against a port held by a socket the
test opens (another program) and against a second server or gateway on the
port of a running one (gRPC's SO_REUSEPORT would otherwise let a second
server start silently and share the port).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from callpilot.server.app import CallpilotServer
from callpilot.server.config import Settings
from support import GatewayProcess, ServerProcess

CALLPILOT = str(Path(sys.executable).parent / "callpilot")


@pytest.fixture
def held_port() -> Iterator[int]:
    """A loopback port another program listens on for the whole test."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def _serve(port: int, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CALLPILOT_HOST": "127.0.0.1",
        "CALLPILOT_PORT": str(port),
        "CALLPILOT_STT": "null",
        "CALLPILOT_DATA_DIR": str(data_dir),
    }
    # A bounded run: a server that starts anyway would time out and fail the test.
    return subprocess.run([CALLPILOT, "serve"], env=env, capture_output=True, text=True, timeout=120)


def _gateway(port: int) -> subprocess.CompletedProcess[str]:
    command = [CALLPILOT, "gateway", "--host", "127.0.0.1", "--port", str(port), "--server", "127.0.0.1:9"]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def _one_line_about(result: subprocess.CompletedProcess[str], port: int) -> None:
    assert result.returncode == 1, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("callpilot: cannot listen on ") and f":{port}" in lines[0]
    assert "Address already in use" in lines[0] and "Traceback" not in result.stderr
    assert "serving on" not in result.stdout


def test_serve_on_a_port_another_program_holds(held_port: int, tmp_path: Path) -> None:
    _one_line_about(_serve(held_port, tmp_path), held_port)


def test_second_serve_on_the_same_port_refuses(tmp_path: Path) -> None:
    first = ServerProcess(
        {"CALLPILOT_STT": "null", "CALLPILOT_DATA_DIR": str(tmp_path / "first")}, tmp_path / "first.log"
    ).start()
    try:
        _one_line_about(_serve(first.port, tmp_path / "second"), first.port)
    finally:
        assert first.stop() == 0  # the first server was untouched and shuts down cleanly


def test_gateway_on_a_port_another_program_holds(held_port: int) -> None:
    _one_line_about(_gateway(held_port), held_port)


def test_second_gateway_on_the_same_port_refuses(tmp_path: Path) -> None:
    first = GatewayProcess("127.0.0.1:9", tmp_path / "gateway.log").start()
    try:
        _one_line_about(_gateway(first.port), first.port)
    finally:
        first.stop()


async def test_grpc_itself_refuses_a_second_server_on_the_port(tmp_path: Path) -> None:
    """Past the start-up check (a race), gRPC's own bind refuses: SO_REUSEPORT is off for the server."""
    first = CallpilotServer(Settings(port=0, stt="null", data_dir=tmp_path / "first", shutdown_grace_s=1))
    await first.start()
    second = CallpilotServer(
        Settings(port=first.port, stt="null", data_dir=tmp_path / "second", shutdown_grace_s=1)
    )
    try:
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{first.port}: the port is in use"):
            await second.start()
    finally:
        await second.stop()
        await first.stop()


def test_unavailable_cuda_and_redis_are_one_line_errors(tmp_path: Path) -> None:
    import os
    import subprocess

    from support import VENV_BIN, free_port

    for extra, expected in (
        ({"CALLPILOT_WHISPER_DEVICE": "cuda"}, "CUDA"),
        ({"CALLPILOT_STT": "null", "CALLPILOT_REDIS_URL": f"redis://127.0.0.1:{free_port()}"}, "Redis"),
    ):
        result = subprocess.run(
            [str(VENV_BIN / "callpilot"), "serve"],
            env={**os.environ, "CALLPILOT_PORT": "0", "CALLPILOT_DATA_DIR": str(tmp_path), **extra},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], result.stderr
