"""Authentication end to end: a real `callpilot serve` with auth on, keys made by
`callpilot keys create`, and the SDK as a client."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from callpilot.client import AsyncCallpilot, CallpilotError
from callpilot.v1 import call_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support import ROOT, VENV_BIN, ServerProcess, create_key
from tls_support import TlsFiles, make_tls_files

ARTIFACTS = ROOT / "artifacts"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def authed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, dict[str, str], Path]]:
    tmp = tmp_path_factory.mktemp("auth")
    env = {
        "CALLPILOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'auth.sqlite'}",
        "CALLPILOT_DATA_DIR": str(tmp),
        "CALLPILOT_STT": "null",
        "CALLPILOT_AUTH": "on",
    }
    log = ARTIFACTS / "server-auth.log"
    log.unlink(missing_ok=True)
    proc = ServerProcess(env, log).start()
    yield proc, env, log
    proc.stop()


async def _status(coro: object) -> tuple[grpc.StatusCode, str]:
    try:
        await coro  # type: ignore[misc]
    except CallpilotError as err:
        return err.code, err.reason
    return grpc.StatusCode.OK, ""


async def test_every_rejection_has_its_status_and_reason(
    authed: tuple[ServerProcess, dict[str, str], Path],
) -> None:
    proc, env, log = authed
    integrator = create_key(env, "default", "integrator")
    agent = create_key(env, "default", "agent")
    async with AsyncCallpilot(proc.address, api_key="") as anonymous:
        assert await _status(anonymous.list_calls()) == (
            grpc.StatusCode.UNAUTHENTICATED,
            "MISSING_CREDENTIALS",
        )
        # Health and reflection need no credential (load balancers, grpcurl).
        health = await health_pb2_grpc.HealthStub(anonymous.channel).Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.SERVING
    forged = integrator[:-3] + ("xyz" if not integrator.endswith("xyz") else "abc")
    async with AsyncCallpilot(proc.address, api_key=forged) as bad:
        assert await _status(bad.create_call()) == (grpc.StatusCode.UNAUTHENTICATED, "INVALID_API_KEY")
    async with AsyncCallpilot(proc.address, api_key="cp_short") as malformed:
        assert await _status(malformed.create_call()) == (
            grpc.StatusCode.UNAUTHENTICATED,
            "MALFORMED_API_KEY",
        )
    async with AsyncCallpilot(proc.address, api_key="eyJhbGciOiJIUzI1NiJ9.e30.x") as jwt_off:
        assert (await _status(jwt_off.list_calls()))[0] == grpc.StatusCode.UNAUTHENTICATED
    async with (
        AsyncCallpilot(proc.address, api_key=integrator) as cp_in,
        AsyncCallpilot(proc.address, api_key=agent) as cp_agent,
    ):
        call = await cp_in.create_call(call_pb2.CallConfig())
        assert await _status(cp_agent.create_call()) == (
            grpc.StatusCode.PERMISSION_DENIED,
            "ROLE_NOT_ALLOWED",
        )
        assert await _status(cp_in.list_calls()) == (grpc.StatusCode.PERMISSION_DENIED, "ROLE_NOT_ALLOWED")
        assert (await cp_agent.get_call(call.call_id)).call.call_id == call.call_id
    text = log.read_text(errors="replace")
    for secret in (integrator, agent, forged):
        assert secret.rsplit("_", 1)[1] not in text, "a key's secret reached the log"


async def test_a_revoked_key_stops_working(authed: tuple[ServerProcess, dict[str, str], Path]) -> None:
    from callpilot.server.auth import keys as keys_module

    proc, env, _ = authed
    agent = create_key(env, "default", "agent")
    async with AsyncCallpilot(proc.address, api_key=agent) as cp:
        await cp.list_calls()
        key_id = agent.split("_")[1]
        revoke = await asyncio.create_subprocess_exec(
            str(VENV_BIN / "callpilot"), "keys", "revoke", key_id, env={**os.environ, **env}
        )
        assert await asyncio.wait_for(revoke.wait(), 60) == 0
        # Verified keys are cached for CACHE_TTL_S; the revocation holds after that.
        await asyncio.sleep(keys_module.CACHE_TTL_S + 0.5)
        assert await _status(cp.list_calls()) == (grpc.StatusCode.UNAUTHENTICATED, "API_KEY_REVOKED")


def test_the_api_key_variable_is_read_by_the_cli(authed: tuple[ServerProcess, dict[str, str], Path]) -> None:
    proc, env, _ = authed
    agent = create_key(env, "default", "agent")
    base = {**os.environ, "CALLPILOT_SERVER": proc.address}
    refused = subprocess.run(
        [str(VENV_BIN / "callpilot"), "calls", "list"], env=base, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode != 0 and "authentication" in refused.stderr
    ok = subprocess.run(
        [str(VENV_BIN / "callpilot"), "calls", "list"],
        env={**base, "CALLPILOT_API_KEY": agent},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    flag = subprocess.run(
        [str(VENV_BIN / "callpilot"), "calls", "list", "--api-key", agent],
        env=base,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert flag.returncode == 0, flag.stderr


@pytest.mark.parametrize("mutual", [False, True])
async def test_tls_end_to_end(tls: TlsFiles, tmp_path: Path, mutual: bool) -> None:
    env = {
        "CALLPILOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'tls.sqlite'}",
        "CALLPILOT_DATA_DIR": str(tmp_path),
        "CALLPILOT_STT": "null",
        "CALLPILOT_TLS_CERT": str(tls.server_cert),
        "CALLPILOT_TLS_KEY": str(tls.server_key),
        **({"CALLPILOT_TLS_CLIENT_CA": str(tls.ca)} if mutual else {}),
    }
    proc = ServerProcess(env, ARTIFACTS / f"server-tls-{mutual}.log").start()
    target = f"https://localhost:{proc.port}"
    try:
        client_cert = {"cert_file": tls.client_cert, "key_file": tls.client_key} if mutual else {}
        async with AsyncCallpilot(target, ca_file=tls.ca, **client_cert) as cp:  # type: ignore[arg-type]
            assert (await cp.create_call()).call_id
        # A server whose certificate we cannot verify, or plaintext to a TLS port: refused.
        async with AsyncCallpilot(target, ca_file=tls.other_ca, **client_cert) as wrong:  # type: ignore[arg-type]
            assert (await _status(wrong.list_calls()))[0] == grpc.StatusCode.UNAVAILABLE
        async with AsyncCallpilot(f"localhost:{proc.port}") as plain:
            assert (await _status(plain.list_calls()))[0] == grpc.StatusCode.UNAVAILABLE
        if mutual:
            async with AsyncCallpilot(target, ca_file=tls.ca) as anonymous:
                assert (await _status(anonymous.list_calls()))[0] == grpc.StatusCode.UNAVAILABLE
    finally:
        proc.stop()


def test_refuses_to_start_open_on_a_public_address(tmp_path: Path) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [str(VENV_BIN / "callpilot"), "serve"],
        env={
            **os.environ,
            "CALLPILOT_HOST": "0.0.0.0",
            "CALLPILOT_PORT": "0",
            "CALLPILOT_DATA_DIR": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "CALLPILOT_AUTH=on" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert time.monotonic() - started < 120


async def test_jwt_from_an_identity_provider(tmp_path: Path) -> None:
    import time as _time

    import jwt as pyjwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "idp.pem").write_bytes(pem)
    env = {
        "CALLPILOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'jwt.sqlite'}",
        "CALLPILOT_DATA_DIR": str(tmp_path),
        "CALLPILOT_STT": "null",
        "CALLPILOT_AUTH": "on",
        "CALLPILOT_JWT_PUBLIC_KEY": str(tmp_path / "idp.pem"),
        "CALLPILOT_JWT_AUDIENCE": "callpilot-desk",
        "CALLPILOT_JWT_ISSUER": "https://idp.example",
    }
    proc = ServerProcess(env, ARTIFACTS / "server-jwt.log").start()
    now = int(_time.time())

    def token(**over: object) -> str:
        claims: dict[str, object] = {
            "sub": "agent-42",
            "aud": "callpilot-desk",
            "iss": "https://idp.example",
            "exp": now + 600,
            "iat": now,
            "tenant": "default",
            "role": "agent",
        }
        claims.update(over)
        return pyjwt.encode(claims, key, algorithm="ES256")

    try:
        async with AsyncCallpilot(proc.address, api_key=token()) as agent:
            await agent.list_calls()
            assert await _status(agent.create_call()) == (
                grpc.StatusCode.PERMISSION_DENIED,
                "ROLE_NOT_ALLOWED",
            )
        for bad, reason in (
            (token(exp=now - 60), "TOKEN_EXPIRED"),
            (token(aud="someone-else"), "WRONG_AUDIENCE"),
            (token(iss="https://evil.example"), "WRONG_ISSUER"),
        ):
            async with AsyncCallpilot(proc.address, api_key=bad) as refused:
                assert await _status(refused.list_calls()) == (grpc.StatusCode.UNAUTHENTICATED, reason)
    finally:
        proc.stop()


async def test_a_refused_stream_reports_its_status_not_internal(
    authed: tuple[ServerProcess, dict[str, str], Path],
) -> None:
    """grpcio's asyncio client can turn an early refusal into INTERNAL (grpc/grpc#36066); the
    server reads the first message before refusing, so clients see UNAUTHENTICATED every time."""
    proc, _env, _log = authed
    codes = set()
    for _ in range(20):
        async with AsyncCallpilot(proc.address, api_key="cpj_" + "A" * 43) as cp:
            try:
                async with cp.stream_call(None, call_pb2.CallConfig(), end_when_audio_ends=False) as call:
                    _ = [e async for e in call]
            except CallpilotError as err:
                codes.add((err.code, err.reason))
    assert codes == {(grpc.StatusCode.UNAUTHENTICATED, "INVALID_JOIN_TOKEN")}
