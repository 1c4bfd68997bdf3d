"""The wrap-up panel saves through the API and the floor's read-only desk.

Headless Chromium against a real server and gateway: an ended call's
wrap-up is refused with a visible error (edits kept), saved, seen again on
a fresh page (from GetCall) and over gRPC; `/calls/ID?readonly=1` (what
the floor links to) says it is a supervisor view and offers no actions.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from callpilot.client import AsyncCallpilot
from callpilot.v1 import assist_service_pb2 as pb
from support import ServerProcess
from web.procs import JS_DIR, GatewayProcess, last_json_line, run_node, text_call


async def _ended_call(address: str) -> str:
    events = await text_call(address)
    assert events and events[-1].HasField("call_ended")
    return events[0].call_id


async def _stored(address: str, call_id: str) -> pb.WrapUp:
    async with AsyncCallpilot(address) as cp:
        return (await cp.get_call(call_id)).wrap_up


@pytest.mark.chromium
def test_wrap_up_saved_reloaded_and_read_only(
    web_server: ServerProcess, gateway: GatewayProcess, artifacts: Path
) -> None:
    # A call of its own: the shared finished call's wrap-up stays unsaved for the other page tests.
    call_id = asyncio.run(_ended_call(web_server.address))
    result = run_node(
        [str(JS_DIR / "wrap_up_desk.mjs"), gateway.url, call_id],
        timeout=120,
        log_path=artifacts / "wrap-up-desk.log",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = last_json_line(result.stdout)
    (artifacts / "wrap-up-desk.json").write_text(json.dumps(seen, indent=2))

    refused = seen["refused"]
    assert refused["save"] == "error" and "wrap_up.summary" in refused["saveText"]
    assert len(refused["summary"]) == 4001, "a refused save keeps the edits"

    expected = {
        "summary": "Refund agreed for order 78901.",
        "disposition": "escalated",
        "followUps": ["Email the return label"],
        "notes": "Prefers email.",
    }
    for view in ("saved", "reloaded", "readonly"):
        assert {k: seen[view][k] for k in expected} == expected, view
        assert seen[view]["save"] == "saved" and seen[view]["saveText"].startswith("Saved"), view

    stored = asyncio.run(_stored(web_server.address, call_id))
    assert stored.summary == expected["summary"]
    assert stored.disposition == pb.DISPOSITION_ESCALATED
    assert list(stored.follow_ups) == expected["followUps"] and stored.notes == expected["notes"]

    readonly = seen["readonly"]
    assert "Supervisor view" in readonly["banner"] and "read-only" in readonly["banner"]
    assert readonly["suggestions"] >= 1
    # Only the customer search stays (a lookup, not an action on the call).
    assert readonly["buttons"] == ["Search"], "the supervisor's view offers no actions"
    assert readonly["summaryReadOnly"] and readonly["followUpInputs"] == 0
    assert seen["errors"] == []
