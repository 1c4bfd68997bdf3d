"""Survivors end the calls of an instance that died.

Every instance scans the live calls in the database every `SCAN_EVERY_S`.
A call that no instance holds a lease on (and that this instance does not
own) is a suspect; a suspect still unowned at a scan at least `REAP_AFTER_S`
later is ended by whichever instance first takes the call's reaper lock, with
reason OWNER_LOST: everything durable stays as it was, `call_ended` is
written after the last stored event, and watchers anywhere receive it.

`REAP_AFTER_S` is longer than a lease's TTL plus a renewal round, so a live
owner whose lease Redis forgot has renewed it before anyone reaps; with the
defaults a dead owner's calls end 10-25 s after its death (≤ 30 s).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from callpilot.server.cluster.hub import RedisHub
from callpilot.server.cluster.lease import LEASE_TTL_MS, Leases
from redis.exceptions import RedisError

log = logging.getLogger("callpilot.cluster.reaper")

SCAN_EVERY_S = 5.0
REAP_AFTER_S = LEASE_TTL_MS / 1000
REAPER_LOCK_MS = 60_000

ListLive = Callable[[], Awaitable[list[tuple[str, str]]]]
"""(tenant_id, call_id) of every call the database says is live, all tenants."""
EndOrphan = Callable[[str, str], Awaitable[None]]
"""End one call whose owner is gone (tenant_id, call_id)."""


class Reaper:
    def __init__(self, hub: RedisHub, leases: Leases, list_live: ListLive, end_orphan: EndOrphan) -> None:
        self._hub = hub
        self._leases = leases
        self._list_live = list_live
        self._end_orphan = end_orphan
        self._suspects: dict[tuple[str, str], float] = {}
        self._task: asyncio.Task[None] | None = None
        self.reaped: list[tuple[str, str]] = []

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="owner-reaper")

    async def scan(self, now: float | None = None) -> None:
        """One scan (the loop's body; public so tests can drive time)."""
        now = time.monotonic() if now is None else now
        live = await self._list_live()
        seen: set[tuple[str, str]] = set()
        for ids in live:
            if self._leases.holds(*ids):
                continue
            if await self._leases.owner(*ids) is not None:
                continue
            seen.add(ids)
            first = self._suspects.setdefault(ids, now)
            if now - first < REAP_AFTER_S:
                continue
            lock = self._hub.key(ids[0], "call", ids[1], "reaper")
            if not await self._hub.redis.set(lock, self._hub.instance_id, nx=True, px=REAPER_LOCK_MS):
                continue
            log.warning("call %s lost its owner; ending it (OWNER_LOST)", ids[1])
            try:
                await self._end_orphan(*ids)
                self.reaped.append(ids)
            except Exception:
                log.exception("could not end orphaned call %s", ids[1])
        self._suspects = {ids: t for ids, t in self._suspects.items() if ids in seen}

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(SCAN_EVERY_S)
            try:
                await self.scan()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                # Without Redis nobody can tell a dead owner from a live one: reap nothing.
                self._suspects.clear()
                log.warning("owner scan skipped (Redis unavailable): %s", exc)
            except Exception:
                log.exception("owner scan failed")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
