"""WatchFloor on a real in-process server (null STT, text turns): a snapshot,
then a second call starting and an alert firing live while a call streams;
a reconnection gets a fresh snapshot with what it missed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import pytest
from callpilot.client import AsyncCallpilot
from callpilot.server.app import CallpilotServer
from callpilot.server.config import Settings
from callpilot.server.store import Store
from callpilot.v1 import call_pb2, common_pb2, events_pb2, floor_service_pb2, floor_service_pb2_grpc

CUSTOMER = common_pb2.SPEAKER_ROLE_CUSTOMER


@pytest.fixture
async def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[CallpilotServer]:
    monkeypatch.setenv("CALLPILOT_ALERT_CUSTOMER_PHRASES", "speak to a manager|cancel my account")
    monkeypatch.setenv("CALLPILOT_ALERT_REQUIRED_AGENT_PHRASES", "")
    settings = Settings.from_env(
        {},
        port=0,
        data_dir=tmp_path,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
        stt="null",
        shutdown_grace_s=5.0,
    )
    srv = CallpilotServer(settings)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


Update = floor_service_pb2.WatchFloorResponse


async def next_matching(
    stream: grpc.aio.UnaryStreamCall[floor_service_pb2.WatchFloorRequest, Update],
    predicate: Callable[[Update], bool],
    seen: list[Update],
) -> Update:
    async with asyncio.timeout(30):
        while True:
            update = await stream.read()
            assert update is not grpc.aio.EOF, f"the floor stream ended after {seen}"
            seen.append(update)
            if predicate(update):
                return update


def event_of(kind: str, call_id: str) -> Callable[[Update], bool]:
    return lambda u: u.HasField("event") and u.event.call_id == call_id and u.event.HasField(kind)  # type: ignore[arg-type]


async def test_floor_sees_a_second_call_and_a_live_alert_then_resumes_with_a_snapshot(
    server: CallpilotServer,
) -> None:
    async with AsyncCallpilot(f"127.0.0.1:{server.port}") as cp:
        floor = floor_service_pb2_grpc.FloorServiceStub(cp.channel)
        watch = floor.WatchFloor(floor_service_pb2.WatchFloorRequest())
        seen: list[Update] = []
        first = await next_matching(watch, lambda u: True, seen)
        assert first.HasField("snapshot") and list(first.snapshot.calls) == []

        call_a = cp.stream_call(None, call_pb2.CallConfig(), end_when_audio_ends=False, timeout=60)
        async with call_a, contextlib.AsyncExitStack() as stack:
            await call_a.send_text(CUSTOMER, "Hi, my name is Maria Garcia, I am calling about order 78901.")
            started_a = await next_matching(
                watch, lambda u: u.HasField("event") and u.event.HasField("call_started"), seen
            )
            id_a = started_a.event.call_id
            await next_matching(watch, event_of("context", id_a), seen)

            # The second call starts while the first streams.
            call_b = cp.stream_call(None, call_pb2.CallConfig(), end_when_audio_ends=False, timeout=60)
            await stack.enter_async_context(call_b)
            await call_b.send_text(CUSTOMER, "Hello, I have a question about shipping.")
            started_b = await next_matching(
                watch,
                lambda u: (
                    u.HasField("event") and u.event.HasField("call_started") and u.event.call_id != id_a
                ),
                seen,
            )
            id_b = started_b.event.call_id

            await call_a.send_text(CUSTOMER, "This is ridiculous. I want to speak to a manager right now!")
            alert_update = await next_matching(watch, event_of("alert", id_a), seen)
            alert = alert_update.event.alert
            assert alert.kind == events_pb2.ALERT_KIND_CUSTOMER_PHRASE
            assert alert.phrase == "speak to a manager" and "manager" in alert.reason
            # The floor forwards no transcripts; sequences of a call only go up.
            assert not any(u.HasField("event") and u.event.HasField("transcript") for u in seen)

            # The alert is durable, in the call's own log, after the segment that triggered it.
            async with await Store.open(server.settings.effective_database_url) as store:
                stored = await store.read_events(id_a, 1)
            segments = {e.transcript.segment_id: e.sequence for e in stored if e.HasField("transcript")}
            alerts = [e for e in stored if e.HasField("alert")]
            assert [a.alert.alert_id for a in alerts] == [alert.alert_id]
            assert segments[alert.segment_id] < alerts[0].sequence
            assert "manager" in next(
                e.transcript.text
                for e in stored
                if e.HasField("transcript") and e.transcript.segment_id == alert.segment_id
            )

            # A reconnection starts with a fresh snapshot holding both calls and the alert.
            watch.cancel()
            again = floor.WatchFloor(floor_service_pb2.WatchFloorRequest())
            snapshot = (await next_matching(again, lambda u: True, [])).snapshot
            by_id = {c.call.call_id: c for c in snapshot.calls}
            assert set(by_id) == {id_a, id_b}
            assert [a.alert_id for a in by_id[id_a].alerts] == [alert.alert_id]
            assert by_id[id_a].context.customer.name == "Maria Garcia"
            assert by_id[id_a].last_sequence >= alerts[0].sequence

            await call_b.end()
            async for _ in call_b:
                pass
            ended = await next_matching(again, event_of("call_ended", id_b), [])
            assert ended.event.sequence > by_id[id_b].last_sequence
            again.cancel()
            await call_a.end()
            async for _ in call_a:
                pass
