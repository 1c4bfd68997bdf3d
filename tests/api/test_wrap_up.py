"""SaveWrapUp over gRPC: saved, read back by GetCall, last write wins, tenant-scoped.

A real server with authentication on and two tenants: the wrap-up is
stamped with the saving key's subject, another tenant's call answers
NOT_FOUND exactly like an unknown call, and bad input names the field.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from callpilot.client import AsyncCallpilot, CallpilotError
from callpilot.v1 import assist_service_pb2 as pb
from callpilot.v1 import call_pb2
from support import ServerProcess, create_key


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, artifacts: Path
) -> Iterator[tuple[ServerProcess, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("wrapup")
    env = {
        "CALLPILOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'wrapup.sqlite'}",
        "CALLPILOT_DATA_DIR": str(tmp),
        "CALLPILOT_STT": "null",
        "CALLPILOT_AUTH": "on",
    }
    proc = ServerProcess(env, artifacts / "server-wrapup.log").start()
    yield proc, env
    proc.stop()


async def test_save_read_back_overwrite_and_tenant_scope(
    server: tuple[ServerProcess, dict[str, str]],
) -> None:
    proc, env = server
    integrator = create_key(env, "default", "integrator")
    agent = create_key(env, "default", "agent")
    other_agent = create_key(env, "globex", "agent")
    async with AsyncCallpilot(proc.address, api_key=integrator) as cp:
        call_id = (await cp.create_call(call_pb2.CallConfig())).call_id
    async with AsyncCallpilot(proc.address, api_key=agent) as cp:
        assert not (await cp.get_call(call_id)).HasField("wrap_up")
        # A live call can be wrapped up already.
        first = await cp.save_wrap_up(
            call_id,
            summary="Replacement headphones sent.",
            disposition=pb.DISPOSITION_FOLLOW_UP,
            follow_ups=["Check delivery on Friday"],
            notes="Customer prefers email.",
        )
        assert first.updated_by.startswith("key:")
        assert first.update_time.seconds > 0
        assert (await cp.get_call(call_id)).wrap_up == first
        # Ending the call keeps it; saving again replaces it (last write wins).
        await cp.end_call(call_id)
        second = await cp.save_wrap_up(
            call_id, summary="Resolved after all.", disposition=pb.DISPOSITION_RESOLVED
        )
        stored = (await cp.get_call(call_id)).wrap_up
        assert stored == second
        assert (
            stored.summary == "Resolved after all." and list(stored.follow_ups) == [] and stored.notes == ""
        )

        with pytest.raises(CallpilotError) as unknown:
            await cp.save_wrap_up("no-such-call", summary="x")
        assert unknown.value.code == grpc.StatusCode.NOT_FOUND and unknown.value.reason == "CALL_NOT_FOUND"

        with pytest.raises(CallpilotError) as bad:
            await cp.save_wrap_up(call_id, summary="x" * 4001, follow_ups=["ok", " "])
        assert bad.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert {v.field for v in bad.value.violations} == {"wrap_up.summary", "wrap_up.follow_ups[1]"}
        assert (await cp.get_call(call_id)).wrap_up == second, "a refused save changes nothing"

    async with AsyncCallpilot(proc.address, api_key=other_agent) as cp:
        with pytest.raises(CallpilotError) as foreign:
            await cp.save_wrap_up(call_id, summary="not mine")
        assert foreign.value.code == grpc.StatusCode.NOT_FOUND and foreign.value.reason == "CALL_NOT_FOUND"
    async with AsyncCallpilot(proc.address, api_key=agent) as cp:
        assert (await cp.get_call(call_id)).wrap_up == second, "another tenant changed nothing"
