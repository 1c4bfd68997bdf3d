"""Driving a stream up to its switch to the fallback engine (shared by the fallback tests)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from callpilot.server.stt.base import SpeechEvent, SpeechEventKind, STTStream


async def switch_over(
    stream: STTStream, push: Awaitable[None]
) -> tuple[asyncio.Task[None], list[SpeechEvent]]:
    """Consume `stream` in a task, await `push`, and return once the DEGRADED event has come.

    Returns the consumer task (it ends when the stream does) and the events list it fills.
    """
    events: list[SpeechEvent] = []
    switched = asyncio.Event()

    async def consume() -> None:
        async for ev in stream:
            events.append(ev)
            if ev.kind is SpeechEventKind.DEGRADED:
                switched.set()

    consumer = asyncio.create_task(consume())
    await push
    async with asyncio.timeout(20):
        await switched.wait()
    return consumer, events
