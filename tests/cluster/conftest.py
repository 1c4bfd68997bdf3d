"""Fixtures for the multi-instance tests: the machine's Redis, and throw-away ones."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from callpilot.server.cluster.hub import RedisHub
from redis_support import RedisProcess

REDIS_URL = os.environ.get("CALLPILOT_TEST_REDIS_URL", "redis://127.0.0.1:6379")


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test alone, so tests never see each other's keys."""
    return f"cptest-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def hubs(prefix: str) -> AsyncIterator[tuple[RedisHub, RedisHub]]:
    """Two instances' hubs on the same Redis."""
    a, b = RedisHub(REDIS_URL, prefix=prefix), RedisHub(REDIS_URL, prefix=prefix)
    await a.check()
    try:
        yield a, b
    finally:
        keys = [k async for k in a.redis.scan_iter(match=f"{prefix}:*")]
        if keys:
            await a.redis.delete(*keys)
        await a.aclose()
        await b.aclose()


@pytest.fixture
def own_redis() -> Iterator[RedisProcess]:
    proc = RedisProcess()
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()
