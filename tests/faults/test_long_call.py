"""A call larger than gRPC's 4 MiB message limit, and 40 watchers on it.

500 agent turns of ~9.6 KB (within the 10000-character limit) make a
transcript of ~4.8 MiB. GetCall returns its first page with a token and the
SDK reads the rest with ListTranscript: the whole call comes back, in order.
Then 40 watchers replay the live call from its first event and stay on it:
the server's resident memory (from /proc) grows by far less than the 40
copies of the call a whole-call replay would hold. The watcher caps hold: a
41st watcher of the call, and watchers past the server's cap, get
RESOURCE_EXHAUSTED with a RetryInfo; caps are released when watchers leave.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
from callpilot.client import AsyncCallpilot
from callpilot.client.errors import CallpilotError
from callpilot.v1 import assist_service_pb2 as pb
from callpilot.v1 import assist_service_pb2_grpc as pb_grpc
from callpilot.v1 import call_pb2, common_pb2
from support import ServerProcess

TURNS = 500
PER_CALL = 40
PER_SERVER = 45
STEP_S = 120.0
# 40 whole-call replays would hold 40 x 4.8 MiB of events (the defect: ~280 MiB).
RSS_GROWTH_BOUND_MIB = 80
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _turn(i: int) -> str:
    return f"agent turn {i}: " + "we are checking the delivery status for you " * 217


async def _watch(
    stub: pb_grpc.AssistServiceStub, call_id: str, until: int, caught_up: asyncio.Event
) -> CallpilotError | None:
    """Watch from the start; set `caught_up` at sequence `until`, then stay idle until cancelled."""
    try:
        async for response in stub.WatchCall(pb.WatchCallRequest(call_id=call_id, from_sequence=1)):
            if response.event.sequence >= until:
                caught_up.set()
    except grpc.aio.AioRpcError as err:
        caught_up.set()
        return CallpilotError.from_rpc_error(err)
    return None


def _check_refused(err: CallpilotError | None, setting: str) -> None:
    assert err is not None, "a watcher over the cap was admitted"
    assert err.code == grpc.StatusCode.RESOURCE_EXHAUSTED and err.retry_delay_s
    assert err.metadata.get("setting") == setting


async def _run(server: ServerProcess) -> None:
    hold = asyncio.Event()
    sent = asyncio.Queue[pb.StreamCallRequest]()
    await sent.put(pb.StreamCallRequest(config=call_pb2.CallConfig()))
    for i in range(TURNS):
        await sent.put(
            pb.StreamCallRequest(text_turn=pb.TextTurn(role=common_pb2.SPEAKER_ROLE_AGENT, text=_turn(i)))
        )

    async def feed():  # type: ignore[no-untyped-def]
        while not sent.empty():
            yield sent.get_nowait()
        await hold.wait()

    async with grpc.aio.insecure_channel(server.address) as channel, AsyncCallpilot(server.address) as cp:
        stub = pb_grpc.AssistServiceStub(channel)
        stream = stub.StreamCall(feed())
        finals = 0
        call_id = ""
        async for response in stream:
            call_id = response.event.call_id
            if response.event.HasField("transcript"):
                finals += 1
                if finals == TURNS:
                    break

        # GetCall alone is one page; the SDK joins the rest: the whole call comes back.
        first = await stub.GetCall(pb.GetCallRequest(call_id=call_id))
        assert first.transcript_next_page_token and len(first.transcript) < TURNS
        whole = await cp.get_call(call_id)
        assert [s.text for s in whole.transcript] == [_turn(i) for i in range(TURNS)]
        assert whole.ByteSize() > 4 * 1024 * 1024
        last = whole.call.last_sequence

        # 40 watchers replay the live call and stay on it.
        assert server.proc is not None
        before = _rss_mib(server.proc.pid)
        flags = [asyncio.Event() for _ in range(PER_CALL)]
        watchers = [asyncio.create_task(_watch(stub, call_id, last, flag)) for flag in flags]
        for flag in flags:
            await flag.wait()
        assert not any(w.done() for w in watchers), [w.result() for w in watchers if w.done()]
        growth = _rss_mib(server.proc.pid) - before
        assert growth < RSS_GROWTH_BOUND_MIB, f"40 watchers added {growth:.0f} MiB"

        # The 41st watcher of the call is refused.
        _check_refused(await _watch(stub, call_id, last, asyncio.Event()), "CALLPILOT_MAX_WATCHERS_PER_CALL")

        # Another call: the server-wide cap refuses the 46th watcher.
        other = stub.StreamCall(_hold_open(hold))
        other_id = (await other.read()).event.call_id
        more = [asyncio.Event() for _ in range(PER_SERVER - PER_CALL)]
        extra = [asyncio.create_task(_watch(stub, other_id, 1, flag)) for flag in more]
        for flag in more:
            await flag.wait()
        assert not any(w.done() for w in extra)
        _check_refused(await _watch(stub, other_id, 1, asyncio.Event()), "CALLPILOT_MAX_WATCHERS")

        # Watchers that leave give their places back.
        for task in watchers + extra:
            task.cancel()
        await asyncio.gather(*watchers, *extra, return_exceptions=True)
        readmitted = asyncio.Event()
        again = asyncio.create_task(_watch(stub, call_id, last, readmitted))
        await readmitted.wait()
        assert not again.done()
        again.cancel()
        hold.set()
        stream.cancel()
        other.cancel()


async def _hold_open(hold: asyncio.Event):  # type: ignore[no-untyped-def]
    yield pb.StreamCallRequest(config=call_pb2.CallConfig())
    await hold.wait()


def test_a_call_over_4_mib_and_40_watchers(database_url: str, tmp_path: Path) -> None:
    backend = "sqlite" if database_url.startswith("sqlite") else "postgres"
    env = {
        "CALLPILOT_DATABASE_URL": database_url,
        "CALLPILOT_DATA_DIR": str(tmp_path),
        "CALLPILOT_STT": "null",
        "CALLPILOT_MAX_WATCHERS_PER_CALL": str(PER_CALL),
        "CALLPILOT_MAX_WATCHERS": str(PER_SERVER),
    }
    server = ServerProcess(env, ARTIFACTS / f"server-long-call-{backend}.log").start()
    try:
        asyncio.run(asyncio.wait_for(_run(server), STEP_S * 2))
    finally:
        server.stop()
