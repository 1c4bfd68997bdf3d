"""Reading connector calls back from the server through the public SDK."""

from __future__ import annotations

import asyncio
import time

from callpilot.client import AsyncCallpilot
from callpilot.v1 import assist_service_pb2, call_pb2
from support import CallpilotProcess


async def find_call(address: str, label: str, value: str, timeout: float = 20.0) -> call_pb2.Call | None:
    """The call whose `labels[label] == value` (None if there is none within `timeout`)."""
    deadline = time.monotonic() + timeout
    async with AsyncCallpilot(address) as cp:
        while True:
            async for call in cp.iter_calls():
                if call.config.labels.get(label) == value:
                    return call
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(0.2)


async def ended_call(address: str, call_id: str, timeout: float = 60.0) -> assist_service_pb2.GetCallResponse:
    """The call once it has ended (the server stored its last finals)."""
    deadline = time.monotonic() + timeout
    async with AsyncCallpilot(address) as cp:
        while True:
            response = await cp.get_call(call_id)
            if response.call.state == call_pb2.CALL_STATE_ENDED:
                return response
            assert time.monotonic() < deadline, f"call {call_id} did not end within {timeout}s"
            await asyncio.sleep(0.2)


def log_has(proc: CallpilotProcess, text: str, timeout: float = 10.0) -> bool:
    """Whether the process's log file gets a line containing `text` within `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in proc.log_path.read_text(errors="replace"):
            return True
        time.sleep(0.1)
    return False
