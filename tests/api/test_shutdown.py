"""SIGTERM drains: health goes NOT_SERVING, new calls get UNAVAILABLE, live
calls flush their finals into the store, and the process exits in time."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc
import pytest
from callpilot.client import AsyncCallpilot, CallpilotError, WavFile
from callpilot.server.app import CallpilotServer
from callpilot.server.config import Settings
from callpilot.v1 import call_pb2, common_pb2, events_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support import ServerProcess


async def test_drain_refuses_new_calls(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {},
        port=0,
        data_dir=tmp_path,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
        stt="null",
        shutdown_grace_s=5.0,
    )
    server = CallpilotServer(settings)
    await server.start()
    try:
        async with AsyncCallpilot(f"127.0.0.1:{server.port}") as cp:
            live = cp.stream_call(None, call_pb2.CallConfig(), end_when_audio_ends=False)
            events: list[events_pb2.CallEvent] = []
            async with live:
                await live.send_text(common_pb2.SPEAKER_ROLE_CUSTOMER, "I need help with order 78901")
                iterator = live.__aiter__()
                while not any(e.HasField("suggestion_completed") for e in events):
                    events.append(await asyncio.wait_for(iterator.__anext__(), 30))

                await server.begin_drain()
                health = health_pb2_grpc.HealthStub(cp.channel)
                status = await health.Check(health_pb2.HealthCheckRequest(service=""))
                assert status.status == health_pb2.HealthCheckResponse.NOT_SERVING
                with pytest.raises(CallpilotError) as info:
                    await cp.create_call()
                assert info.value.code == grpc.StatusCode.UNAVAILABLE
                with pytest.raises(CallpilotError) as info:
                    async with cp.stream_call(None, call_pb2.CallConfig()) as other:
                        _ = [e async for e in other]
                assert info.value.code == grpc.StatusCode.UNAVAILABLE
                # Reads still work while draining.
                assert (await cp.get_call(events[0].call_id)).call.call_id == events[0].call_id

                stop = asyncio.create_task(server.stop())
                async for event in iterator:
                    events.append(event)
                await asyncio.wait_for(stop, 30)
        assert events[-1].call_ended.reason == call_pb2.CALL_END_REASON_SERVER_SHUTDOWN
    finally:
        await server.stop()


async def test_sigterm_flushes_finals(tmp_path: Path, support_call_wav: Path, artifacts: Path) -> None:
    env = {
        "CALLPILOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
        "CALLPILOT_DATA_DIR": str(tmp_path),
        "CALLPILOT_SHUTDOWN_GRACE_S": "15",
    }
    proc = ServerProcess(env, artifacts / "server-sigterm.log").start()
    events: list[events_pb2.CallEvent] = []
    try:
        signalled = 0.0
        async with (
            AsyncCallpilot(proc.address) as cp,
            cp.stream_call(WavFile(support_call_wav, realtime=True)) as call,
        ):
            async for event in call:
                events.append(event)
                # Terminate mid-call, right after the first final: the
                # customer is still speaking the next sentence.
                if not signalled and event.HasField("transcript") and event.transcript.is_final:
                    await asyncio.sleep(1.8)
                    proc.terminate()
                    signalled = time.monotonic()
        code = await asyncio.to_thread(proc.wait, 30)
        assert code == 0
        assert time.monotonic() - signalled < 20
    finally:
        proc.stop()
    assert events[-1].call_ended.reason == call_pb2.CALL_END_REASON_SERVER_SHUTDOWN
    finals = [e.transcript.text for e in events if e.HasField("transcript") and e.transcript.is_final]
    assert len(finals) >= 2, "the utterance in progress at SIGTERM was flushed as a final"

    restarted = ServerProcess(env, artifacts / "server-sigterm.log").start()
    try:
        async with AsyncCallpilot(restarted.address) as cp:
            stored = await cp.get_call(events[0].call_id)
        assert [t.text for t in stored.transcript] == finals
        assert stored.call.state == call_pb2.CALL_STATE_ENDED
    finally:
        restarted.stop()
