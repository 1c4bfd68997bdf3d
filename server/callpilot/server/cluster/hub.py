"""One instance's Redis connections and identity.

Every key Callpilot writes is namespaced ``cp:<tenant>:…`` so tenants never
share a key, and one Redis can serve several deployments with distinct
`prefix`es.
"""

from __future__ import annotations

import logging
import socket
import uuid

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger("callpilot.cluster")


class RedisUnavailable(Exception):
    """Redis could not be reached; the message says where and what to check."""


class RedisHub:
    def __init__(self, url: str, *, prefix: str = "cp") -> None:
        self.url = url
        self.prefix = prefix
        self.instance_id = f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        # Commands and XADDs share a pool; blocking reads (XREAD BLOCK, BLPOP)
        # take connections of their own from the same pool, which is sized
        # for one reader per watched call plus headroom.
        self.redis: aioredis.Redis = aioredis.Redis.from_url(
            url, max_connections=512, health_check_interval=15, socket_connect_timeout=3
        )

    def key(self, tenant_id: str, *parts: str) -> str:
        return ":".join((self.prefix, tenant_id, *parts))

    def instance_key(self, *parts: str) -> str:
        return ":".join((self.prefix, "instance", self.instance_id, *parts))

    async def check(self) -> None:
        """Fail start-up with one clear line when Redis is not there."""
        try:
            await self.redis.ping()
        except (RedisError, OSError) as exc:
            raise RedisUnavailable(
                f"cannot reach Redis at {_safe(self.url)} (CALLPILOT_REDIS_URL): {exc}"
            ) from None

    async def aclose(self) -> None:
        await self.redis.aclose()


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.split('@', 1)[1]}"
