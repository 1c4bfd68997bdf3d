"""The gateway reaches a TLS server with a private CA, and with mutual TLS.

A real `callpilot serve` with a certificate signed by a CA made at test time
(tests/tls_support.py); the gateway app runs in this process and a grpc-web
request goes through it to the server. Trusting the wrong CA is refused.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from callpilot.gateway.app import create_app
from callpilot.gateway.config import GatewayConfigError, GatewaySettings
from callpilot.gateway.grpcweb.wire import encode_frame, parse_frames
from callpilot.v1 import directory_service_pb2
from support import ROOT, ServerProcess
from tls_support import TlsFiles, make_tls_files
from web.procs import free_port

ARTIFACTS = ROOT / "artifacts"
BINARY = {"Content-Type": "application/grpc-web+proto", "X-Grpc-Web": "1"}


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("gateway-tls"))


async def _get_order_through(settings: GatewaySettings) -> tuple[int, list[bytes]]:
    """grpc-web GetOrder through a gateway with `settings`: the grpc-status and the messages."""
    app = create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", settings.port).start()
        body = encode_frame(directory_service_pb2.GetOrderRequest(order_number="78901").SerializeToString())
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http,
            http.post(
                f"http://127.0.0.1:{settings.port}/callpilot.v1.DirectoryService/GetOrder",
                data=body,
                headers=BINARY,
            ) as reply,
        ):
            raw = await reply.read()
            headers = {k.lower(): v for k, v in reply.headers.items()}
    finally:
        await runner.cleanup()
    frames = parse_frames(raw)
    trailers = [f for f in frames if f.is_trailer]
    if not trailers:
        return int(headers["grpc-status"]), []
    lines = trailers[0].payload.decode().split("\r\n")
    status = int(dict(line.split(":", 1) for line in lines if line)["grpc-status"])
    return status, [f.payload for f in frames if not f.is_trailer]


@pytest.mark.parametrize("mutual", [False, True])
async def test_the_gateway_reaches_a_tls_server_with_a_private_ca(
    tls: TlsFiles, tmp_path: Path, mutual: bool
) -> None:
    env = {
        "CALLPILOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'tls.sqlite'}",
        "CALLPILOT_DATA_DIR": str(tmp_path),
        "CALLPILOT_STT": "null",
        "CALLPILOT_SEED_DEMO": "true",
        "CALLPILOT_TLS_CERT": str(tls.server_cert),
        "CALLPILOT_TLS_KEY": str(tls.server_key),
        **({"CALLPILOT_TLS_CLIENT_CA": str(tls.ca)} if mutual else {}),
    }
    proc = ServerProcess(env, ARTIFACTS / f"server-gateway-tls-{mutual}.log").start()
    client = {"server_client_cert": tls.client_cert, "server_client_key": tls.client_key} if mutual else {}
    try:
        # A plain host:port with a CA file set means TLS.
        trusted = GatewaySettings(
            port=free_port(), server=f"localhost:{proc.port}", server_ca_file=tls.ca, **client
        )
        trusted.check()
        status, [message] = await _get_order_through(trusted)
        assert status == 0
        assert directory_service_pb2.GetOrderResponse.FromString(message).order.order_number == "78901"
        # The wrong CA: the server's certificate is not trusted, nothing gets through.
        wrong = GatewaySettings(
            port=free_port(), server=f"https://localhost:{proc.port}", server_ca_file=tls.other_ca, **client
        )
        assert (await _get_order_through(wrong))[0] == 14  # UNAVAILABLE
        if mutual:
            anonymous = GatewaySettings(
                port=free_port(), server=f"localhost:{proc.port}", server_ca_file=tls.ca
            )
            assert (await _get_order_through(anonymous))[0] == 14
    finally:
        proc.stop()


def test_half_a_client_certificate_or_a_missing_file_is_a_clear_error(tls: TlsFiles, tmp_path: Path) -> None:
    with pytest.raises(
        GatewayConfigError, match="CALLPILOT_SERVER_CLIENT_CERT and CALLPILOT_SERVER_CLIENT_KEY"
    ):
        GatewaySettings(server_client_cert=tls.client_cert).check()
    with pytest.raises(GatewayConfigError, match=r"CALLPILOT_SERVER_CA_FILE=.*no such file"):
        GatewaySettings(server_ca_file=tmp_path / "missing.pem").check()
