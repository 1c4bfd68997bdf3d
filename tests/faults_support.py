"""Helpers shared by the fault tests: metrics scraping and call-state polling."""

from __future__ import annotations

import asyncio
import re
import urllib.request

from callpilot.v1 import assist_service_pb2 as pb
from callpilot.v1 import assist_service_pb2_grpc as pb_grpc
from callpilot.v1 import call_pb2


def gauge(metrics_port: int, name: str) -> float:
    """One gauge's value from the server's Prometheus endpoint."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as response:
        text = response.read().decode()
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} not exported"
    return float(match.group(1))


async def active_calls(stub: pb_grpc.AssistServiceStub) -> list[str]:
    ids: list[str] = []
    token = ""
    while True:
        page = await stub.ListCalls(
            pb.ListCallsRequest(page_size=100, page_token=token, state=call_pb2.CALL_STATE_ACTIVE)
        )
        ids.extend(c.call_id for c in page.calls)
        token = page.next_page_token
        if not token:
            return ids


async def wait_no_active(stub: pb_grpc.AssistServiceStub, timeout: float) -> list[str]:
    """Poll until no call is ACTIVE; returns those still active at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        left = await active_calls(stub)
        if not left or loop.time() > deadline:
            return left
        await asyncio.sleep(0.25)
