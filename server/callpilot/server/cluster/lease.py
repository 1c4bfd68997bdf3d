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

A tenant's live calls across the cluster: every lease is also a member of
the tenant's sorted set ``cp:<tenant>:live``, scored with its expiry (Redis
server time, so instances' clocks do not matter) and renewed with it. Taking
a lease with a `limit` drops expired members, counts the rest and adds the
call in one script, so two instances cannot both take the last place; a dead
instance's calls leave the count when their leases expire. (The two keys of
a script share the tenant prefix but not a hash slot: a single Redis or a
primary/replica pair, not Redis Cluster.)
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

_NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""
# KEYS[1] = lease key, KEYS[2] = the tenant's live set; ARGV[1] = our id,
# ARGV[2] = ttl ms, ARGV[3] = call id, ARGV[4] = the tenant's limit (0: none).
# {1}: taken; {0, holder}: another instance holds it; {2, count}: the tenant is at its limit.
_ACQUIRE = (
    _NOW_MS
    + """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then
  return {0, holder}
end
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local limit = tonumber(ARGV[4])
if limit > 0 and not redis.call('ZSCORE', KEYS[2], ARGV[3]) then
  local live = redis.call('ZCARD', KEYS[2])
  if live >= limit then
    return {2, tostring(live)}
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
redis.call('ZADD', KEYS[2], now + ttl, ARGV[3])
redis.call('PEXPIRE', KEYS[2], 3 * ttl)
return {1, ''}
"""
)
# Same keys and ARGV[1..3]. 1: renewed; 2: taken back after Redis forgot it; 0: someone else holds it.
_RENEW = (
    _NOW_MS
    + """
local holder = redis.call('GET', KEYS[1])
local result = 0
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  result = 1
elseif not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  result = 2
end
if result > 0 then
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[3])
  redis.call('PEXPIRE', KEYS[2], 3 * tonumber(ARGV[2]))
end
return result
"""
)
# Same keys; ARGV[1] = our id, ARGV[2] = call id.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('ZREM', KEYS[2], ARGV[2])
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class TenantAtLimit(Exception):
    """The tenant already has `limit` live calls across the cluster."""

    def __init__(self, live: int, limit: int) -> None:
        super().__init__(f"{live} live calls across the cluster (limit {limit})")
        self.live = live
        self.limit = limit


class Leases:
    """The leases of this instance's live calls, and the loop that renews them."""

    def __init__(self, hub: RedisHub, *, on_lost: Callable[[str, str], None]) -> None:
        self._hub = hub
        self._held: dict[tuple[str, str], str] = {}
        self._on_lost = on_lost
        self._task: asyncio.Task[None] | None = None
        self._acquire: Any = hub.redis.register_script(_ACQUIRE)
        self._renew: Any = hub.redis.register_script(_RENEW)
        self._release: Any = hub.redis.register_script(_RELEASE)

    def key(self, tenant_id: str, call_id: str) -> str:
        return self._hub.key(tenant_id, "call", call_id, "owner")

    def live_key(self, tenant_id: str) -> str:
        return self._hub.key(tenant_id, "live")

    async def acquire(self, tenant_id: str, call_id: str, *, limit: int = 0) -> str | None:
        """Take the call; None on success, else the id of the instance that holds it.

        With `limit` > 0, raises TenantAtLimit when the tenant already has
        that many live calls across the cluster (this one not counted).
        """
        key = self.key(tenant_id, call_id)
        result = await self._acquire(
            keys=[key, self.live_key(tenant_id)],
            args=[self._hub.instance_id, LEASE_TTL_MS, call_id, limit],
        )
        code, detail = int(result[0]), _text(result[1])
        if code == 0:
            return detail
        if code == 2:
            raise TenantAtLimit(int(detail), limit)
        self._held[(tenant_id, call_id)] = key
        self._start()
        return None

    async def live_calls(self, tenant_id: str) -> int:
        """The tenant's live calls across the cluster (leases not yet expired)."""
        redis = self._hub.redis
        seconds, micros = await redis.time()
        now_ms = seconds * 1000 + micros // 1000
        return int(await redis.zcount(self.live_key(tenant_id), f"({now_ms}", "+inf"))

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
            await self._release(keys=[key, self.live_key(tenant_id)], args=[self._hub.instance_id, call_id])
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
            for (tenant_id, call_id), key in held:
                await self._renew(
                    keys=[key, self.live_key(tenant_id)],
                    args=[self._hub.instance_id, LEASE_TTL_MS, call_id],
                    client=pipe,
                )
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


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
