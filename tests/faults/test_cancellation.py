"""Clients that cancel at random points never leave a call ACTIVE.

200 calls, each cancelled at a random moment (before the config is read,
during creation, between turns, while a suggestion streams); afterwards no
call is ACTIVE in the database, the active-calls gauge agrees with it, and
the log has no sequence collision.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import grpc
from callpilot.v1 import assist_service_pb2 as pb
from callpilot.v1 import assist_service_pb2_grpc as pb_grpc
from callpilot.v1 import call_pb2, common_pb2
from faults_support import gauge, wait_no_active
from support import ServerProcess, free_port

CALLS = 200
CONCURRENCY = 20
STEP_S = 60.0
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


async def _one(stub: pb_grpc.AssistServiceStub, rng: random.Random) -> None:
    turns = rng.randint(0, 3)

    async def feed():  # type: ignore[no-untyped-def]
        yield pb.StreamCallRequest(config=call_pb2.CallConfig(labels={"test": "cancel"}))
        for i in range(turns):
            await asyncio.sleep(rng.random() * 0.05)
            yield pb.StreamCallRequest(
                text_turn=pb.TextTurn(
                    role=common_pb2.SPEAKER_ROLE_CUSTOMER, text=f"turn {i}: where is my order 78901?"
                )
            )
        await asyncio.sleep(10)  # keep the stream open until cancelled

    call = stub.StreamCall(feed())
    cancel_after = rng.random() * 0.3

    async def read() -> None:
        async for _ in call:
            pass

    reader = asyncio.create_task(read())
    await asyncio.sleep(cancel_after)
    call.cancel()
    await asyncio.gather(reader, return_exceptions=True)


async def _run(address: str, seed: int) -> list[str]:
    rng = random.Random(seed)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.AssistServiceStub(channel)
        gate = asyncio.Semaphore(CONCURRENCY)

        async def bounded() -> None:
            async with gate:
                await _one(stub, random.Random(rng.random()))

        await asyncio.wait_for(asyncio.gather(*(bounded() for _ in range(CALLS))), STEP_S * 4)
        return await wait_no_active(stub, STEP_S)


def test_random_cancellation_leaves_no_call_active(database_url: str, tmp_path: Path) -> None:
    metrics_port = free_port()
    backend = "sqlite" if database_url.startswith("sqlite") else "postgres"
    log = ARTIFACTS / f"server-cancel-{backend}.log"
    log.unlink(missing_ok=True)
    server = ServerProcess(
        {
            "CALLPILOT_DATABASE_URL": database_url,
            "CALLPILOT_DATA_DIR": str(tmp_path),
            "CALLPILOT_STT": "null",
            "CALLPILOT_METRICS_PORT": str(metrics_port),
            "CALLPILOT_MAX_CALLS": "500",
        },
        log,
    ).start()
    try:
        left = asyncio.run(_run(server.address, seed=20261130))
        assert left == [], f"{len(left)} call(s) left ACTIVE: {left[:5]}"
        assert gauge(metrics_port, "callpilot_active_calls") == 0
    finally:
        server.stop()
    text = log.read_text(errors="replace")
    assert "already written" not in text
    assert "ending the call failed" not in text
