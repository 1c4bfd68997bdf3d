"""Admission under a burst: 30 concurrent calls against CALLPILOT_MAX_CALLS=5.

Exactly five are admitted, for StreamCall and for CreateCall alike; the
other 25 get RESOURCE_EXHAUSTED with a RetryInfo. Ending the calls frees
their slots (a new burst is admitted again) and the active-calls gauge
returns to zero, never below (EndCall on a created, never-streamed call).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
from callpilot.client.errors import CallpilotError
from callpilot.v1 import assist_service_pb2 as pb
from callpilot.v1 import assist_service_pb2_grpc as pb_grpc
from callpilot.v1 import call_pb2
from faults_support import gauge, wait_no_active
from support import ServerProcess, free_port

LIMIT = 5
BURST = 30
STEP_S = 60.0
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


async def _stream_burst(stub: pb_grpc.AssistServiceStub) -> tuple[list[str], list[CallpilotError]]:
    """Open BURST streams at once, hold the admitted ones until every stream has an answer."""
    release = asyncio.Event()
    admitted: list[str] = []
    refused: list[CallpilotError] = []
    answered = asyncio.Semaphore(0)

    async def one() -> None:
        async def feed():  # type: ignore[no-untyped-def]
            yield pb.StreamCallRequest(config=call_pb2.CallConfig(labels={"test": "overload"}))
            await release.wait()
            yield pb.StreamCallRequest(control=pb.CallControl(end_of_call=pb.EndOfCall()))

        call = stub.StreamCall(feed())
        try:
            async for response in call:
                if response.event.HasField("call_started"):
                    admitted.append(response.event.call_id)
                    answered.release()
        except grpc.aio.AioRpcError as err:
            refused.append(CallpilotError.from_rpc_error(err))
            answered.release()

    tasks = [asyncio.create_task(one()) for _ in range(BURST)]
    for _ in range(BURST):
        await answered.acquire()
    release.set()
    await asyncio.gather(*tasks)
    return admitted, refused


async def _create_burst(stub: pb_grpc.AssistServiceStub) -> tuple[list[str], list[CallpilotError]]:
    async def one() -> str | CallpilotError:
        try:
            response = await stub.CreateCall(pb.CreateCallRequest(config=call_pb2.CallConfig()))
        except grpc.aio.AioRpcError as err:
            return CallpilotError.from_rpc_error(err)
        return response.call.call_id

    results = await asyncio.gather(*(one() for _ in range(BURST)))
    return [r for r in results if isinstance(r, str)], [r for r in results if not isinstance(r, str)]


def _check_refusals(refused: list[CallpilotError]) -> None:
    assert len(refused) == BURST - LIMIT
    for err in refused:
        assert err.code == grpc.StatusCode.RESOURCE_EXHAUSTED, err
        assert err.retry_delay_s is not None and err.retry_delay_s > 0
        assert err.metadata.get("setting") == "CALLPILOT_MAX_CALLS"


async def _run(address: str, metrics_port: int) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.AssistServiceStub(channel)
        admitted, refused = await _stream_burst(stub)
        assert len(admitted) == LIMIT, admitted
        _check_refusals(refused)
        assert await wait_no_active(stub, STEP_S) == []

        # The streams' slots are free again; CreateCall is limited the same way.
        created, refused = await _create_burst(stub)
        assert len(created) == LIMIT
        _check_refusals(refused)
        for call_id in created:
            await stub.EndCall(pb.EndCallRequest(call_id=call_id))
        assert gauge(metrics_port, "callpilot_active_calls") == 0

        # EndCall gave the created calls' slots back.
        created, refused = await _create_burst(stub)
        assert len(created) == LIMIT
        for call_id in created:
            await stub.EndCall(pb.EndCallRequest(call_id=call_id))
        assert gauge(metrics_port, "callpilot_active_calls") == 0


def test_a_burst_of_30_against_a_limit_of_5(database_url: str, tmp_path: Path) -> None:
    backend = "sqlite" if database_url.startswith("sqlite") else "postgres"
    metrics_port = free_port()
    env = {
        "CALLPILOT_DATABASE_URL": database_url,
        "CALLPILOT_DATA_DIR": str(tmp_path),
        "CALLPILOT_STT": "null",
        "CALLPILOT_MAX_CALLS": str(LIMIT),
        "CALLPILOT_METRICS_PORT": str(metrics_port),
    }
    server = ServerProcess(env, ARTIFACTS / f"server-overload-{backend}.log").start()
    try:
        asyncio.run(asyncio.wait_for(_run(server.address, metrics_port), STEP_S * 2))
    finally:
        server.stop()
