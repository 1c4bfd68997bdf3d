"""GetInsights over gRPC on a real in-process server: the figures of the
calls it handled, and bad ranges refused with a BadRequest naming the field."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from callpilot.client import AsyncCallpilot, CallpilotError
from callpilot.server.app import CallpilotServer
from callpilot.server.config import Settings
from callpilot.v1 import call_pb2, common_pb2, insights_service_pb2, insights_service_pb2_grpc
from google.protobuf import duration_pb2, timestamp_pb2


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[CallpilotServer]:
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


def _ts(when: datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(when)
    return out


async def test_insights_of_handled_calls_and_refused_ranges(server: CallpilotServer) -> None:
    before = datetime.now(UTC) - timedelta(minutes=1)
    async with AsyncCallpilot(f"127.0.0.1:{server.port}") as cp:
        for _ in range(2):
            call = cp.stream_call(None, call_pb2.CallConfig(), end_when_audio_ends=False, timeout=60)
            async with call:
                await call.send_text(common_pb2.SPEAKER_ROLE_CUSTOMER, "I need a refund for order 78901")
                await call.end()
                _ = [e async for e in call]
        stub = insights_service_pb2_grpc.InsightsServiceStub(cp.channel)
        after = datetime.now(UTC) + timedelta(minutes=1)
        response = await stub.GetInsights(
            insights_service_pb2.GetInsightsRequest(
                start_time=_ts(before), end_time=_ts(after), bucket=duration_pb2.Duration(seconds=60)
            )
        )
        assert response.total.calls == 2 and response.total.ended_calls == 2
        assert sum(b.figures.calls for b in response.buckets) == 2
        assert len(response.buckets) == 3
        assert response.total.HasField("handle_time_p90")

        refused = [
            insights_service_pb2.GetInsightsRequest(end_time=_ts(after)),
            insights_service_pb2.GetInsightsRequest(start_time=_ts(after), end_time=_ts(before)),
            insights_service_pb2.GetInsightsRequest(
                start_time=_ts(before), end_time=_ts(after), bucket=duration_pb2.Duration(seconds=1)
            ),
        ]
        for request, field in zip(refused, ["start_time", "end_time", "bucket"], strict=True):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.GetInsights(request)
            error = CallpilotError.from_rpc_error(info.value)
            assert error.code == grpc.StatusCode.INVALID_ARGUMENT
            assert [v.field for v in error.violations] == [field], error
