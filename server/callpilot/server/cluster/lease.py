"""Which instance owns a live call: a lease in Redis, renewed while the call lives.

The instance that holds a call's StreamCall owns its session and is the only
one that writes its events. Ownership is the key ``cp:<tenant>:call:<id>:owner``
holding the owner's instance id with a TTL of `LEASE_TTL_MS`; the owner
renews every lease it holds every `RENEW_EVERY_S` in one pipelined round.

Fencing: a lease alone cannot stop a paused owner from writing after it
lost the lease, so writes are fenced by the event log itself: sequences are
unique in the database, and the instance that takes a call over continues
from the last stored sequence, so a stale owner's next write collides and
that owner stops. The lease decides who may start; the sequence decides who
may write.

If Redis forgets a key (restarted without persistence), the owner takes it
back on its next renewal (SET NX); a survivor only reaps a call whose owner
key stayed absent across `reaper.REAP_AFTER_S`, longer than a renewal round.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from callpilot.server.cluster.hub import RedisHub
from redis.exceptions import RedisError

log = logging.getLogger("callpilot.cluster.lease")

LEASE_TTL_MS = 10_000
RENEW_EVERY_S = 3.0

# KEYS[1] = lease key, ARGV[1] = our id, ARGV[2] = ttl ms.
# 1: renewed; 2: taken back after Redis forgot it; 0: someone else holds it.
_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Leases:
    """The leases of this instance's live calls, and the loop that renews them."""

    def __init__(self, hub: RedisHub, *, on_lost: Callable[[str, str], None]) -> None:
        self._hub = hub
        self._held: dict[tuple[str, str], str] = {}
        self._on_lost = on_lost
        self._task: asyncio.Task[None] | None = None
        self._renew: Any = hub.redis.register_script(_RENEW)
        self._release: Any = hub.redis.register_script(_RELEASE)

    def key(self, tenant_id: str, call_id: str) -> str:
        return self._hub.key(tenant_id, "call", call_id, "owner")

    async def acquire(self, tenant_id: str, call_id: str) -> str | None:
        """Take the call; None on success, else the id of the instance that holds it."""
        key = self.key(tenant_id, call_id)
        me = self._hub.instance_id
        redis = self._hub.redis
        if await redis.set(key, me, nx=True, px=LEASE_TTL_MS):
            self._held[(tenant_id, call_id)] = key
            self._start()
            return None
        holder = await redis.get(key)
        if holder is None:  # expired between the two commands: try once more
            return await self.acquire(tenant_id, call_id)
        holder_id = holder.decode() if isinstance(holder, bytes) else str(holder)
        if holder_id == me:
            self._held[(tenant_id, call_id)] = key
            return None
        return holder_id

    async def owner(self, tenant_id: str, call_id: str) -> str | None:
        value = await self._hub.redis.get(self.key(tenant_id, call_id))
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    async def release(self, tenant_id: str, call_id: str) -> None:
        key = self._held.pop((tenant_id, call_id), None)
        if key is None:
            return
        try:
            await self._release(keys=[key], args=[self._hub.instance_id])
        except (RedisError, OSError) as exc:
            log.warning("could not release the lease of call %s (it expires by itself): %s", call_id, exc)

    def holds(self, tenant_id: str, call_id: str) -> bool:
        return (tenant_id, call_id) in self._held

    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop(), name="lease-renewal")

    async def renew_all(self) -> None:
        """One renewal round (the loop's body; public so tests can drive it)."""
        held = list(self._held.items())
        if not held:
            return
        async with self._hub.redis.pipeline(transaction=False) as pipe:
            for _ids, key in held:
                await self._renew(keys=[key], args=[self._hub.instance_id, LEASE_TTL_MS], client=pipe)
            results = await pipe.execute()
        for (ids, _key), result in zip(held, results, strict=True):
            if int(result) == 0 and ids in self._held:
                del self._held[ids]
                log.error("lost the lease of call %s to another instance; it stops writing", ids[1])
                self._on_lost(*ids)

    async def _loop(self) -> None:
        while self._held:
            await asyncio.sleep(RENEW_EVERY_S)
            try:
                await self.renew_all()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("lease renewal failed (calls go on; retrying): %s", exc)

    async def aclose(self) -> None:
        for tenant_id, call_id in list(self._held):
            await self.release(tenant_id, call_id)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
