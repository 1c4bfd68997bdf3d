"""The docker-compose topology, run as local processes: Docker cannot run here.

The `keys` one-shot, `server-a`, `server-b` and `gateway` run with the
command and environment read from docker-compose.yml (compose_local.py
replaces only hostnames, listen addresses and ports) on a throw-away
PostgreSQL database and a throw-away redis-server, exactly as the services
would on theirs. Two test-only settings are added, and nothing else:
`CALLPILOT_STT=null` (speech is not what this checks, and two Whisper
servers would take the shared machine's two cores) and a temporary
`CALLPILOT_DATA_DIR` (the image sets its own). coturn is not run; its
configuration is checked by tests/webrtc/test_compose.py.

Then a call goes through the topology: the bootstrapped integrator key
streams a call into server A; an agent key (created the way the compose file
documents) watches it on server B and through the gateway's grpc-web proxy,
and ends it on B. Authentication is really on: grpc-web without a key is
refused. Then server A stops, and the gateway (whose target names both
replicas, as `dns:///server` does in compose) still answers from B.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import grpc
import pytest
from callpilot.client import AsyncCallpilot, CallpilotError
from callpilot.gateway.grpcweb.wire import encode_frame, parse_frames
from callpilot.v1 import assist_service_pb2, call_pb2, common_pb2, events_pb2
from deploy.compose_local import ComposeProcess, Localiser, interpolate, load
from redis_support import RedisProcess
from support import ROOT, VENV_BIN, create_pg_database, drop_pg_database, run_async

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

# What the interpolated variables stand for here (a deployment sets its own).
COMPOSE_ENV = {
    "CALLPILOT_TURN_SECRET": "0123456789abcdef0123456789abcdef",
    "CALLPILOT_PUBLIC_HOST": "127.0.0.1",
    "CALLPILOT_PUBLIC_IP": "127.0.0.1",
    "BOOTSTRAP_TENANT": "acme",
}
ARTIFACTS = ROOT / "artifacts"
STEP_S = 30.0
WATCH = "/callpilot.v1.AssistService/WatchCall"
GET_CALL = "/callpilot.v1.AssistService/GetCall"
GRPC_WEB = {"Content-Type": "application/grpc-web+proto", "X-Grpc-Web": "1"}


@dataclass
class Topology:
    integrator_key: str
    agent_key: str
    server_a: ComposeProcess
    server_b: ComposeProcess
    gateway: ComposeProcess


def _one_shot(argv: list[str], env: dict[str, str]) -> str:
    """Run a one-shot service's command to completion; its stdout (the key)."""
    done = subprocess.run(
        [str(VENV_BIN / "callpilot"), *argv[1:]],
        env={"PATH": str(VENV_BIN) + ":/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture
def topology(tmp_path: Path) -> Iterator[Topology]:
    ARTIFACTS.mkdir(exist_ok=True)
    compose = load()
    services = compose["services"]
    url = run_async(create_pg_database())
    assert isinstance(url, str)
    redis = RedisProcess()
    redis.start()
    local = Localiser(database_url=url, redis_url=redis.url)
    test_only = {"CALLPILOT_STT": "null", "CALLPILOT_DATA_DIR": str(tmp_path)}
    started: list[ComposeProcess] = []
    try:
        # The one-shot `keys` service: the first integrator key, printed once.
        keys = services["keys"]
        keys_argv, keys_env = local.command(keys, COMPOSE_ENV), local.environment(keys, COMPOSE_ENV)
        integrator = _one_shot(keys_argv, keys_env)
        # An agent key, as the compose file's header says: the same command with --role agent.
        agent_argv = list(keys_argv)
        agent_argv[agent_argv.index("--role") + 1] = "agent"
        agent = _one_shot(agent_argv, keys_env)
        servers = []
        for name in ("server-a", "server-b"):
            service = services[name]
            env = {**local.environment(service, COMPOSE_ENV), **test_only}
            proc = ComposeProcess(local.command(service, COMPOSE_ENV), env, ARTIFACTS / f"compose-{name}.log")
            proc.start()
            started.append(proc)
            servers.append(proc)
            local.servers.append(proc.address)
        gw = services["gateway"]
        gateway = ComposeProcess(
            local.command(gw, COMPOSE_ENV),
            local.environment(gw, COMPOSE_ENV),
            ARTIFACTS / "compose-gateway.log",
        )
        gateway.start(60)
        started.append(gateway)
        yield Topology(integrator, agent, servers[0], servers[1], gateway)
    finally:
        for proc in reversed(started):
            proc.stop()
        redis.stop()
        run_async(drop_pg_database(url))


def test_the_localised_services_are_the_compose_ones() -> None:
    """The processes run what the compose file says, with only hosts and ports changed."""
    services = load()["services"]
    local = Localiser(
        database_url="postgresql+asyncpg://postgres@127.0.0.1:5432/x", redis_url="redis://127.0.0.1:7000"
    )
    local.servers = ["127.0.0.1:1", "127.0.0.1:2"]
    for name in ("server-a", "server-b"):
        env = local.environment(services[name], COMPOSE_ENV)
        assert env["CALLPILOT_AUTH"] == "on"
        assert env["CALLPILOT_REDIS_URL"] == "redis://127.0.0.1:7000/0"
        assert env["CALLPILOT_DATABASE_URL"] == local.database_url
        assert local.command(services[name], COMPOSE_ENV) == [
            "callpilot",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
        ]
    gateway = local.command(services["gateway"], COMPOSE_ENV)
    assert gateway[-2:] == ["--server", "ipv4:127.0.0.1:1,127.0.0.1:2"]
    assert interpolate(services["keys"]["command"][4], COMPOSE_ENV) == "acme"
    with pytest.raises(AssertionError, match="unknown gRPC target"):
        local.target("elsewhere:50051")


async def _grpc_web(http: aiohttp.ClientSession, base: str, path: str, message: bytes, key: str | None):
    headers = {**GRPC_WEB, **({"authorization": f"Bearer {key}"} if key else {})}
    async with http.post(base + path, data=encode_frame(message), headers=headers) as r:
        assert r.status == 200
        return r.headers.get("grpc-status"), parse_frames(await r.read())


async def test_a_call_through_the_compose_topology(topology: Topology) -> None:
    assert topology.integrator_key.startswith("cp_") and topology.agent_key.startswith("cp_")
    base = f"http://127.0.0.1:{topology.gateway.port}"
    async with (
        AsyncCallpilot(topology.server_a.address, api_key=topology.integrator_key) as on_a,
        AsyncCallpilot(topology.server_b.address, api_key=topology.agent_key) as on_b,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=STEP_S)) as http,
    ):
        # Authentication is on in both replicas: no key, no call.
        async with AsyncCallpilot(topology.server_b.address, api_key="") as anonymous:
            with pytest.raises(CallpilotError) as refused:
                await anonymous.list_calls()
            assert refused.value.code == grpc.StatusCode.UNAUTHENTICATED
        config = call_pb2.CallConfig(customer_hint=call_pb2.CustomerHint(customer_id="C-1001"))
        async with on_a.stream_call(None, config, end_when_audio_ends=False) as call:
            events = call.__aiter__()
            async with asyncio.timeout(STEP_S):
                started = await anext(events)
                while not started.HasField("call_started"):
                    started = await anext(events)
            request = assist_service_pb2.WatchCallRequest(call_id=started.call_id, from_sequence=1)
            # Watched through the gateway (grpc-web, agent key) until the call ends …
            through_gateway = asyncio.create_task(
                _grpc_web(http, base, WATCH, request.SerializeToString(), topology.agent_key)
            )
            # … and on B with the SDK.
            watched: list[events_pb2.CallEvent] = []
            watcher = on_b.watch_call(started.call_id, from_sequence=1, resume=False).__aiter__()
            await call.send_text(common_pb2.SPEAKER_ROLE_CUSTOMER, "Hi, where is my order 78901?")
            async with asyncio.timeout(STEP_S):
                async for event in watcher:
                    watched.append(event)
                    if event.HasField("suggestion_completed"):
                        break
            ended = await on_b.end_call(started.call_id, "wrap-up on B")
            assert ended.end_reason == call_pb2.CALL_END_REASON_END_CALL_RPC
            async with asyncio.timeout(STEP_S):
                watched.extend([event async for event in watcher])
        status, frames = await through_gateway
        # Without a key the gateway's grpc-web request is refused by the server behind it.
        anonymous_status, _ = await _grpc_web(http, base, WATCH, request.SerializeToString(), None)
        # One replica gone: the gateway's dns:/// (here ipv4:) target moves to the other one.
        topology.server_a.stop()
        get = assist_service_pb2.GetCallRequest(call_id=started.call_id).SerializeToString()
        after_a: list[str] = []
        async with asyncio.timeout(STEP_S):
            while not after_a or after_a[-1] != "0":
                if after_a:
                    await asyncio.sleep(0.2)  # UNAVAILABLE while the channel reconnects
                got_status, got = await _grpc_web(http, base, GET_CALL, get, topology.agent_key)
                trailer_of_get = next((f.payload.decode() for f in got if f.is_trailer), "")
                after_a.append(got_status or trailer_of_get.split("grpc-status:", 1)[1].split()[0].strip())
        [got_message] = [f.payload for f in got if not f.is_trailer]
        got_call = assist_service_pb2.GetCallResponse.FromString(got_message)
        assert [s.text for s in got_call.transcript] == ["Hi, where is my order 78901?"]
        assert set(after_a) <= {"0", str(grpc.StatusCode.UNAVAILABLE.value[0])}, after_a
    # B saw the call A owns, and so did the agent app's path through the gateway.
    assert watched[-1].HasField("call_ended")
    finals = [e.transcript.text for e in watched if e.HasField("transcript") and e.transcript.is_final]
    assert finals == ["Hi, where is my order 78901?"]
    messages = [f.payload for f in frames if not f.is_trailer]
    trailer = next(f.payload.decode() for f in frames if f.is_trailer)
    assert status in (None, "0") and "grpc-status:0" in trailer.replace(" ", "")
    via_gateway = [assist_service_pb2.WatchCallResponse.FromString(m).event for m in messages]
    assert via_gateway[0].HasField("call_started") and via_gateway[-1].HasField("call_ended")
    assert [e.sequence for e in via_gateway if e.durable] == [e.sequence for e in watched if e.durable]
    assert anonymous_status == str(grpc.StatusCode.UNAUTHENTICATED.value[0])
