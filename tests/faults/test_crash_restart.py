"""kill -9 mid-call and restart, ten times: nothing acknowledged is lost.

Each round streams text turns and counts a final as acknowledged once the
server has sent it back; then the server is killed with SIGKILL and
restarted on the same database. Afterwards every call of every round has
ended, every acknowledged final is in its transcript exactly once, and a
watcher resuming from any sequence receives `call_ended`.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import grpc
from callpilot.v1 import assist_service_pb2 as pb
from callpilot.v1 import assist_service_pb2_grpc as pb_grpc
from callpilot.v1 import call_pb2, common_pb2
from faults_support import wait_no_active
from support import ServerProcess

ROUNDS = 10
STEP_S = 60.0
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


async def _stream_until_kill(
    address: str, rng: random.Random, server: ServerProcess
) -> tuple[str, list[str], int]:
    """Stream turns, acknowledge finals, then SIGKILL the server mid-call.

    Returns the call, the finals acknowledged and the last durable sequence the client saw.
    """
    acked: list[str] = []
    seen = 0
    call_id = ""
    turns = [f"round {rng.randint(0, 10**9)} turn {i}, my order is 78901" for i in range(rng.randint(1, 4))]
    kill_after = rng.randint(1, len(turns))
    sent = asyncio.Queue[pb.StreamCallRequest]()
    await sent.put(pb.StreamCallRequest(config=call_pb2.CallConfig()))

    async def feed():  # type: ignore[no-untyped-def]
        while True:
            yield await sent.get()

    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.AssistServiceStub(channel)
        call = stub.StreamCall(feed())
        await sent.put(
            pb.StreamCallRequest(text_turn=pb.TextTurn(role=common_pb2.SPEAKER_ROLE_CUSTOMER, text=turns[0]))
        )
        next_turn = 1
        try:
            async for response in call:
                event = response.event
                if event.durable:
                    seen = max(seen, event.sequence)
                if event.HasField("call_started"):
                    call_id = event.call_id
                if event.HasField("transcript") and event.transcript.is_final:
                    acked.append(event.transcript.text)
                    if len(acked) >= kill_after:
                        server.kill()
                        break
                    if next_turn < len(turns):
                        await sent.put(
                            pb.StreamCallRequest(
                                text_turn=pb.TextTurn(
                                    role=common_pb2.SPEAKER_ROLE_CUSTOMER, text=turns[next_turn]
                                )
                            )
                        )
                        next_turn += 1
        except grpc.aio.AioRpcError:
            pass
        call.cancel()
    return call_id, acked, seen


async def _check(address: str, rounds: list[tuple[str, list[str], int]]) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.AssistServiceStub(channel)
        assert await wait_no_active(stub, STEP_S) == []
        for call_id, acked, seen in rounds:
            got = await stub.GetCall(pb.GetCallRequest(call_id=call_id))
            assert got.call.state == call_pb2.CALL_STATE_ENDED
            texts = [segment.text for segment in got.transcript]
            for text in acked:
                assert texts.count(text) == 1, (call_id, text, texts)
            last = got.call.last_sequence
            # Resuming from anything the client saw before the crash (or earlier) reaches call_ended.
            for start in sorted({1, max(1, seen // 2), seen, seen + 1, last}):
                events = [
                    r.event
                    async for r in stub.WatchCall(
                        pb.WatchCallRequest(call_id=call_id, from_sequence=start), timeout=STEP_S
                    )
                ]
                assert events and events[-1].HasField("call_ended"), (call_id, start)
                sequences = [e.sequence for e in events if e.durable]
                assert sequences == sorted(set(sequences)), "a durable event was repeated or out of order"


def test_sigkill_and_restart_ten_times(database_url: str, tmp_path: Path) -> None:
    rng = random.Random(7)
    backend = "sqlite" if database_url.startswith("sqlite") else "postgres"
    log = ARTIFACTS / f"server-crash-{backend}.log"
    log.unlink(missing_ok=True)
    env = {
        "CALLPILOT_DATABASE_URL": database_url,
        "CALLPILOT_DATA_DIR": str(tmp_path),
        "CALLPILOT_STT": "null",
    }
    rounds: list[tuple[str, list[str], int]] = []
    for _ in range(ROUNDS):
        server = ServerProcess(env, log).start()
        try:
            call_id, acked, seen = asyncio.run(
                asyncio.wait_for(_stream_until_kill(server.address, rng, server), STEP_S)
            )
        finally:
            server.stop()
        assert call_id and acked
        rounds.append((call_id, acked, seen))
    server = ServerProcess(env, log).start()
    try:
        asyncio.run(asyncio.wait_for(_check(server.address, rounds), STEP_S * 3))
    finally:
        server.stop()
