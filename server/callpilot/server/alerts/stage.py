"""The alert stage of a live call: the engine, its clock and its timer.

The session calls `observe(event)` with every event it emitted and emits
the alerts returned (as durable `alert` events, so they are in the call's
log with their triggering segment); time-based rules (silence, missing
required phrase, a write tool waiting) fire from a timer task that wakes at
the engine's `next_due()` and emits through the same callback. The timer is
woken on each observed event and stops once `close()` is called. At most one timer task exists per call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from callpilot.server.alerts.engine import AlertEngine
from callpilot.server.alerts.rules import AlertRules
from callpilot.v1 import events_pb2

log = logging.getLogger("callpilot.alerts")

Emit = Callable[[events_pb2.Alert], Awaitable[object]]


class AlertStage:
    """Alerts of one live call."""

    def __init__(self, rules: AlertRules, emit: Emit, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._engine = AlertEngine(rules, start=clock())
        self._emit = emit
        self._timer: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._closed = False

    def observe(self, event: events_pb2.CallEvent) -> list[events_pb2.Alert]:
        """The alerts `event` fires now; the caller emits them. Re-arms the timer."""
        if self._closed or event.HasField("alert"):
            return []
        alerts = self._engine.observe(event, self._clock())
        self._arm()
        return alerts

    def _arm(self) -> None:
        # A new event can bring the next due time forward (a write tool now
        # waits): wake the sleeping timer rather than cancel it, so an alert
        # being emitted is never cut off half-way.
        self._wake.set()
        if self._timer is None or self._timer.done():
            self._timer = asyncio.get_running_loop().create_task(self._run_timer())

    async def _run_timer(self) -> None:
        while not self._closed:
            due = self._engine.next_due()
            if due is None:
                return
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, due - self._clock()))
            if self._closed:
                return
            for alert in self._engine.tick(self._clock()):
                try:
                    await self._emit(alert)
                except Exception:
                    # The call may be ending; an alert is advisory and never ends a call.
                    log.warning("could not emit alert %s", alert.alert_id, exc_info=True)

    async def close(self) -> None:
        """Stop the timer, letting an alert being emitted finish (idempotent).

        The session closes the stage before it emits `call_ended`, so no
        alert ever follows the end of a call in its log.
        """
        self._closed = True
        self._wake.set()
        timer, self._timer = self._timer, None
        if timer is not None and timer is not asyncio.current_task():
            await asyncio.gather(timer, return_exceptions=True)
