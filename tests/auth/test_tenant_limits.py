"""Per-tenant limits: one tenant's flood is refused with RESOURCE_EXHAUSTED and does
not starve another tenant's calls."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
from callpilot.client import AsyncCallpilot, CallpilotError
from callpilot.v1 import call_pb2
from support import ROOT, ServerProcess, create_key


async def _code(coro: object) -> grpc.StatusCode:
    try:
        await coro  # type: ignore[misc]
    except CallpilotError as err:
        return err.code
    return grpc.StatusCode.OK


async def test_a_flooding_tenant_is_limited_and_the_other_is_not(tmp_path: Path) -> None:
    env = {
        "CALLPILOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'limits.sqlite'}",
        "CALLPILOT_DATA_DIR": str(tmp_path),
        "CALLPILOT_STT": "null",
        "CALLPILOT_AUTH": "on",
        "CALLPILOT_RATE_LIMIT_PER_S": "5",
        "CALLPILOT_RATE_LIMIT_BURST": "10",
        "CALLPILOT_MAX_CALLS_PER_TENANT": "2",
    }
    flood_key, calm_key = create_key(env, "flood", "admin"), create_key(env, "calm", "admin")
    proc = ServerProcess(env, ROOT / "artifacts" / "server-limits.log").start()
    try:
        async with (
            AsyncCallpilot(proc.address, api_key=flood_key) as flood,
            AsyncCallpilot(proc.address, api_key=calm_key) as calm,
        ):
            codes = await asyncio.gather(*(_code(flood.list_calls()) for _ in range(40)))
            assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes
            assert codes.count(grpc.StatusCode.OK) <= 12
            try:
                await flood.list_calls()
            except CallpilotError as err:
                assert err.code == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert err.reason == "RATE_LIMITED"
            # The other tenant is untouched by the flood.
            assert await _code(calm.list_calls()) == grpc.StatusCode.OK
            # Live calls per tenant: the flooding tenant's third call is refused, the other's is not.
            await asyncio.sleep(2.5)  # let the flooding tenant's bucket refill
            streams = [
                flood.stream_call(None, call_pb2.CallConfig(), end_when_audio_ends=False) for _ in range(2)
            ]
            for s in streams:
                await s.__aenter__()
                await asyncio.wait_for(s.__aiter__().__anext__(), 30)
            third = flood.stream_call(None, call_pb2.CallConfig(), end_when_audio_ends=False)
            refused = await _code(_first_event(third))
            assert refused == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert (
                await _code(
                    _first_event(calm.stream_call(None, call_pb2.CallConfig(), end_when_audio_ends=False))
                )
                == grpc.StatusCode.OK
            )
            for s in streams:
                await s.end()
                await s.__aexit__(None, None, None)
    finally:
        proc.stop()


async def _first_event(stream: object) -> None:
    async with stream as call:  # type: ignore[attr-defined]
        await asyncio.wait_for(call.__aiter__().__anext__(), 30)
        await call.end()
